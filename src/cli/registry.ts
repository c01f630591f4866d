import type { Command } from "./command";

// Command modules are required only when used: most of them pull in TensorFlow.js, and `sdmprune repl`
// must paint its prompt before any of that loads. Add one line per command (file under ./commands).
const LOADERS: Record<string, () => Command> = {
  info: () => require("./commands/info").infoCommand,
  convert: () => require("./commands/convert").convertCommand,
  generate: () => require("./commands/generate").generateCommand,
  ppl: () => require("./commands/ppl").pplCommand,
  scores: () => require("./commands/scores").scoresCommand,
  prune: () => require("./commands/prune").pruneCommand,
  eval: () => require("./commands/eval").evalCommand,
  repl: () => require("./commands/repl").replCommand,
  recover: () => require("./commands/recover").recoverCommand,
  demo: () => require("./commands/demo").demoCommand,
  compare: () => require("./commands/compare").compareCommand,
  speed: () => require("./commands/speed").speedCommand,
};

export function loadCommand(name: string): Command | undefined {
  return Object.hasOwn(LOADERS, name) ? LOADERS[name]() : undefined;
}

/** Every command, loaded (for the overview in `sdmprune --help`). */
export function commands(): Command[] {
  return Object.values(LOADERS).map((load) => load());
}
