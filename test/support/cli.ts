import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { main } from "../../src/cli/main";

const ROOT = path.resolve(__dirname, "..", "..");

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

/**
 * Run the built binary (`node bin/sdmprune.js`, which runs dist/) in a child process, as a user would. The timeout
 * keeps a hung child from hanging the whole run; a killed child reports code -1 and says why in `err`.
 */
export function spawnCli(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, "bin", "sdmprune.js"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  const err = r.error ? `${r.stderr ?? ""}\n${r.error.message}` : r.stderr;
  return { code: r.status ?? -1, out: r.stdout, err };
}
