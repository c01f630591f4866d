import { SdmpruneError } from "../errors";
import { commands, loadCommand } from "./registry";

const HEADER = `sdmprune: structured MLP pruning of LLaMA-family models (SDMPrune self-distillation Taylor importance)`;

function overview(): string {
  const cmds = commands();
  const width = Math.max(0, ...cmds.map((c) => c.name.length));
  const lines = cmds.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `${HEADER}\n\nUsage: sdmprune COMMAND [options]   (sdmprune COMMAND --help for details)\n\nCommands:\n${lines.join("\n")}\n\nEnvironment:\n  SDMPRUNE_BACKEND=tensorflow|webgpu|wasm|cpu   force a TensorFlow.js backend (default: best that loads)\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(overview());
    return name ? 0 : 1;
  }
  const cmd = loadCommand(name);
  if (!cmd) {
    process.stderr.write(`error: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(cmd.usage.endsWith("\n") ? cmd.usage : cmd.usage + "\n");
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof SdmpruneError || (err instanceof Error && String((err as { code?: string }).code ?? "").startsWith("ERR_PARSE_ARGS_"))) {
      process.stderr.write(`error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
