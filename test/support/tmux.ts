import { execFileSync, spawnSync } from "node:child_process";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A tmux pane driven the way a person over SSH would type: keys sent as text and Enter separately, each after
 * the previous output is on screen.
 */
export function tmuxPane(session: string) {
  const tmux = (...args: string[]): string => execFileSync("tmux", args, { encoding: "utf8" });
  /** The pane with its scrollback, escapes stripped. */
  const screen = (): string => tmux("capture-pane", "-p", "-J", "-t", session, "-S", "-3000");
  /** The visible pane only. */
  const visible = (): string => tmux("capture-pane", "-p", "-t", session);
  async function waitFor(pred: (s: string) => boolean, what: string, timeoutMs = 120000, read = screen): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const s = read();
      if (pred(s)) return s;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; screen:\n${visible()}`);
      await sleep(50);
    }
  }
  /** A finished command leaves the prompt as the last prompt line with no job hint below it. */
  const idle = (s: string): boolean => !s.includes("(Ctrl-C to cancel)") && !s.includes("cancelling…");
  async function send(line: string): Promise<void> {
    tmux("send-keys", "-t", session, "-l", line);
    await sleep(200);
    tmux("send-keys", "-t", session, "Enter");
  }
  const count = (s: string, m: string) => s.split(m).length - 1;
  /**
   * Runs a command and waits until one more `marker` is on screen and the prompt is back; returns what this command
   * printed: the screen from its echoed line (the last before the new marker; the output may repeat the line) on.
   */
  async function run(line: string, marker: string, timeoutMs?: number): Promise<string> {
    const n = count(screen(), marker);
    await send(line);
    const s = await waitFor((x) => count(x, marker) > n && idle(visible()), `"${marker}" after ${line}`, timeoutMs);
    return s.slice(s.lastIndexOf(line, s.lastIndexOf(marker)));
  }
  return { tmux, screen, visible, waitFor, idle, send, run };
}

/** Skips the suite loudly when tmux is missing; under CI (which installs it) that is a failure. */
export function requireTmux(ctx: Mocha.Context): void {
  if (spawnSync("tmux", ["-V"]).status === 0) return;
  if (process.env.CI) throw new Error("tmux is required under CI (installed by .ci/run)");
  console.warn("\n  !!! SKIPPING: tmux not installed (apt-get install -y tmux) !!!\n");
  ctx.skip();
}
