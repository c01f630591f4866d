/**
 * Starts the REPL on a terminal. Ink is loaded first and the prompt painted before the library (and
 * TensorFlow.js) is touched, so the first paint does not wait for a model; `--model` is loaded as the
 * first command, with its own progress line.
 */
import * as React from "react";
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
  const instance = render(<App runner={opts.runner} history={history} color={color} initialCommands={initial} />, {
    stdin,
    stdout,
    exitOnCtrlC: false,
    patchConsole: true,
  });
  await instance.waitUntilExit();
  return 0;
}

/** Quotes a path for the REPL's own word splitter. */
export function quote(s: string): string {
  return s.replace(/([\s'"\\])/g, "\\$1");
}

void React;
