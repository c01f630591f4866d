import type { Command } from "./command";
import { infoCommand } from "./commands/info";
import { convertCommand } from "./commands/convert";
import { generateCommand } from "./commands/generate";
import { pplCommand } from "./commands/ppl";
import { scoresCommand } from "./commands/scores";
import { pruneCommand } from "./commands/prune";
import { evalCommand } from "./commands/eval";
import { replCommand } from "./commands/repl";
import { recoverCommand } from "./commands/recover";
import { demoCommand } from "./commands/demo";

// Each command lives in its own file under ./commands; add one line here per command.
export function commands(): Command[] {
  return [
    infoCommand,
    convertCommand,
    generateCommand,
    pplCommand,
    scoresCommand,
    pruneCommand,
    evalCommand,
    replCommand,
    recoverCommand,
    demoCommand,
  ];
}
