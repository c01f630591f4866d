import { main } from "../../src/cli/main";

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Run `fn` while capturing everything written to stdout and stderr. */
export async function captureOutput(fn: () => Promise<number>): Promise<CliResult> {
  let out = "";
  let err = "";
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => ((out += String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  try {
    const code = await fn();
    return { code, out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

/** Run the CLI in-process, capturing stdout and stderr. */
export function cli(args: string[]): Promise<CliResult> {
  return captureOutput(() => main(args));
}
