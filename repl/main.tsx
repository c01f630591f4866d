/**
 * Starts the REPL on a terminal. Ink is loaded first and the prompt painted before the library (and
 * TensorFlow.js) is touched, so the first paint does not wait for a model; `--model` is loaded as the
 * first command, with its own progress line.
 */
import * as fs from "node:fs";
import { App } from "./app";
import type { Runner } from "./blocks";
import { colorEnabled } from "./color";
import { History, defaultHistoryFile } from "./history";
import { loadInk } from "./ink";

export interface StartOptions {
  /** Model to load before the first prompt. */
  model?: string;
  /** Builds the command executor (called once, after the first paint is scheduled). */
  runner: Runner;
  /** History file; default $XDG_CONFIG_HOME/sdmprune/history or ~/.config/sdmprune/history; null = memory only. */
  historyFile?: string | null;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
}

/** Runs until the user exits; resolves with the process exit code. */
export async function startRepl(opts: StartOptions): Promise<number> {
  const stdin = opts.stdin ?? process.stdin;
  const stdout = opts.stdout ?? process.stdout;
  if (!stdin.isTTY) {
    process.stderr.write("error: sdmprune repl needs an interactive terminal (stdin is not a TTY); use the other sdmprune commands in scripts\n");
    return 2;
  }
  const { render } = await loadInk(true);
  const history = new History(opts.historyFile === undefined ? defaultHistoryFile() : opts.historyFile);
  const color = colorEnabled(stdout);
  const initial = opts.model ? [`load ${quote(opts.model)}`] : [];
  // SDMPRUNE_REPL_TIMING=FILE records when the first frame was written (ms since the process started, and
  // the CPU time spent until then), for the start-up measurement in the end-to-end test.
  const timingFile = process.env.SDMPRUNE_REPL_TIMING;
  let painted = false;
  const onRender = () => {
    if (painted || !timingFile) return;
    painted = true;
    const cpu = process.cpuUsage();
    try {
      fs.writeFileSync(timingFile, JSON.stringify({ firstPaintMs: Math.round(performance.now()), cpuMs: Math.round((cpu.user + cpu.system) / 1000) }));
    } catch {
      // a diagnostic only
    }
  };
  const instance = render(<App runner={opts.runner} history={history} color={color} initialCommands={initial} />, {
    stdin,
    stdout,
    exitOnCtrlC: false,
    patchConsole: true,
    onRender,
  });
  await instance.waitUntilExit();
  return 0;
}

/** Quotes a path for the REPL's own word splitter. */
export function quote(s: string): string {
  return s.replace(/([\s'"\\])/g, "\\$1");
}

