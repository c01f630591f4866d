import * as path from "node:path";
import type { Command } from "../command";
import { MODEL_FLAG, flagHelp, parseFlags } from "../flags";

const FLAGS = { model: { ...MODEL_FLAG.model, help: `model to load at start (${MODEL_FLAG.model.help})` } } as const;

const USAGE = `Usage: sdmprune repl [--model PATH]

Interactive terminal session (Ink): load a model, calibrate, score, prune, undo, evaluate, generate
and save, one command at a time, with progress bars and Ctrl-C to cancel a running job.
Type "help" inside for the commands. History is kept in $XDG_CONFIG_HOME/sdmprune/history
(default ~/.config/sdmprune/history). NO_COLOR=1 turns colour off.

${flagHelp(FLAGS, 15)}`;

/** The part of repl/main the CLI calls (repl/ is compiled separately, to dist/repl, so it is typed here). */
interface ReplEntry {
  startRepl(opts: { model?: string; runner: unknown }): Promise<number>;
  createRunner(lib: { openSession(path: string): Promise<unknown> }): unknown;
}

export const replCommand: Command = {
  name: "repl",
  summary: "interactive terminal REPL over one pruning session",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
    // Built: dist/cli/commands → dist/repl (compiled from repl/ by repl/tsconfig.json). Under tsx: src → ../repl.
    const libRoot = path.resolve(__dirname, "..", "..");
    const replDir = path.basename(libRoot) === "src" ? path.join(libRoot, "..", "repl") : path.join(libRoot, "repl");
    const entry = require(path.join(replDir, "index")) as ReplEntry;
    // The library (and TensorFlow.js) is required on the first `load`, after the prompt is on screen.
    const runner = entry.createRunner({
      openSession: async (p: string) => {
        const { Session } = require("../../session") as typeof import("../../session");
        return Session.load(p);
      },
    });
    return entry.startRepl({ model: values.model, runner });
  },
};
