/**
 * Command history persisted across runs in the user's config directory
 * ($XDG_CONFIG_HOME/sdmprune/history, else ~/.config/sdmprune/history), one command per line.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const MAX_ENTRIES = 1000;

export function defaultHistoryFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), ".config");
  return path.join(base, "sdmprune", "history");
}

export class History {
  private items: string[];

  /** `file` null keeps history in memory only (tests, unwritable homes). */
  constructor(readonly file: string | null) {
    this.items = [];
    if (file) {
      try {
        this.items = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim().length > 0).slice(-MAX_ENTRIES);
      } catch {
        // No history yet (or unreadable): start empty rather than refuse to start the REPL.
      }
    }
  }

  get entries(): readonly string[] {
    return this.items;
  }

  /** Records a command (not blanks, not an immediate repeat) and appends it to the file. */
  add(line: string): void {
    const l = line.replace(/[\r\n]+/g, " ").trim();
    if (!l || this.items[this.items.length - 1] === l) return;
    this.items.push(l);
    if (this.items.length > MAX_ENTRIES) this.items.splice(0, this.items.length - MAX_ENTRIES);
    if (!this.file) return;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      fs.appendFileSync(this.file, l + "\n");
    } catch {
      // A read-only config dir must not break the REPL; history then lasts for this run only.
    }
  }
}
