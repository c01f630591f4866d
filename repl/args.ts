/**
 * Splitting a REPL line into words (shell-like quoting, so paths and prompts may contain spaces) and
 * reading typed flag values. Every failure is an ArgError whose message says what was expected and what
 * was found, so the REPL can print it under the command.
 */
export class ArgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArgError";
  }
}

export interface Word {
  text: string;
  /** Offset of the word's first character in the line (for completion). */
  start: number;
  /** True when the word was (partly) quoted: it is never read as a flag. */
  quoted: boolean;
}

/** Words of `line`: whitespace separates, '…' and "…" group, backslash escapes the next character. */
export function splitWords(line: string): Word[] {
  const words: Word[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) break;
    const start = i;
    let text = "";
    let quoted = false;
    while (i < line.length && !/\s/.test(line[i])) {
      const c = line[i];
      if (c === "'" || c === '"') {
        quoted = true;
        const end = line.indexOf(c, i + 1);
        if (end < 0) throw new ArgError(`unterminated ${c === "'" ? "single" : "double"} quote starting at column ${i + 1}`);
        text += line.slice(i + 1, end);
        i = end + 1;
      } else if (c === "\\" && i + 1 < line.length) {
        text += line[i + 1];
        i += 2;
      } else {
        text += c;
        i++;
      }
    }
    words.push({ text, start, quoted });
  }
  return words;
}

/**
 * "range" is a layer range START:END, 0-based with END exclusive (the library's [start, end) and the CLI's
 * --layers); "stories" is a TinyStories range A-B, 1-based inclusive (as people count stories, and as
 * the CLI's --stories). One spelling per concept, the same in the REPL, the CLI and the library.
 */
export type FlagType = "int" | "posint" | "number" | "string" | "bool" | "range" | "stories" | "list";

/** Options the REPL once spelled differently: the old spelling is refused with the new one named. */
const RENAMED: Record<string, string> = { t: "temperature", tokens: "max-new-tokens" };

/** Levenshtein distance, for "did you mean". */
export function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

/** The known name closest to `name` (a prefix, or at most 2 edits away), for "did you mean". */
export function closest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.startsWith(name) ? 0 : distance(name, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= 2 ? best : undefined;
}

export interface FlagSpec {
  type: FlagType;
  /** Placeholder shown in usage, e.g. "N". */
  value?: string;
  help: string;
  /** Completion hint: this flag's value is a file path. */
  path?: boolean;
}

export type FlagValue = number | string | boolean | [number, number] | string[];

export interface ParsedArgs {
  positionals: Word[];
  flags: Record<string, FlagValue>;
}

/** Parses `--name value`, `--name=value` and boolean `--name` against `specs`; the rest are positionals. */
export function parseFlags(cmd: string, words: Word[], specs: Record<string, FlagSpec>): ParsedArgs {
  const positionals: Word[] = [];
  const flags: Record<string, FlagValue> = {};
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w.quoted || !w.text.startsWith("--") || w.text === "--") {
      positionals.push(w);
      continue;
    }
    const eq = w.text.indexOf("=");
    const name = w.text.slice(2, eq < 0 ? undefined : eq);
    const spec = specs[name];
    if (!spec) {
      const known = Object.keys(specs);
      if (RENAMED[name] && specs[RENAMED[name]]) throw new ArgError(`${cmd}: --${name} is spelled --${RENAMED[name]} (as in the CLI)`);
      const near = closest(name, known);
      throw new ArgError(
        `${cmd}: unknown option --${name}${near ? ` (did you mean --${near}?)` : ""}; expected ${known.length ? known.map((k) => `--${k}`).join(", ") : "no options"}`,
      );
    }
    if (spec.type === "bool") {
      if (eq >= 0) throw new ArgError(`${cmd}: --${name} takes no value, got "${w.text.slice(eq + 1)}"`);
      flags[name] = true;
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = w.text.slice(eq + 1);
    else {
      const next = words[i + 1];
      if (!next) throw new ArgError(`${cmd}: --${name} expects ${describe(spec)}, got nothing`);
      raw = next.text;
      i++;
    }
    flags[name] = readValue(cmd, `--${name}`, raw, spec);
  }
  return { positionals, flags };
}

export function describe(spec: FlagSpec): string {
  switch (spec.type) {
    case "int":
      return "an integer";
    case "posint":
      return "a positive integer";
    case "number":
      return "a number";
    case "range":
      return "a layer range START:END (0-based, end exclusive) like 1:4";
    case "stories":
      return "a story range A-B (1-based, inclusive) like 1-200";
    case "list":
      return "a comma-separated list";
    case "bool":
      return "no value";
    default:
      return spec.value ?? "a value";
  }
}

export function readValue(cmd: string, what: string, raw: string, spec: FlagSpec): FlagValue {
  const bad = () => new ArgError(`${cmd}: ${what} expects ${describe(spec)}, got "${raw}"`);
  switch (spec.type) {
    case "int":
    case "posint": {
      if (!/^[+-]?\d+$/.test(raw)) throw bad();
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || (spec.type === "posint" && n <= 0)) throw bad();
      return n;
    }
    case "number": {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) throw bad();
      return n;
    }
    case "range": {
      const dash = /^(\d+)-(\d+)$/.exec(raw);
      if (dash) throw new ArgError(`${cmd}: ${what} expects START:END (0-based, end exclusive, as in the CLI), got "${raw}"; layers ${dash[1]} to ${dash[2]} are ${dash[1]}:${Number(dash[2]) + 1}`);
      const m = /^(\d+):(\d+)$/.exec(raw);
      if (!m) throw bad();
      const a = Number(m[1]);
      const b = Number(m[2]);
      if (b <= a) throw new ArgError(`${cmd}: ${what} expects START:END with START < END, got "${raw}"`);
      return [a, b];
    }
    case "stories": {
      // Checked here for the shape only; the library checks it against the text's story count.
      if (!/^\d+-\d+$/.test(raw)) throw bad();
      return raw;
    }
    case "list": {
      const items = raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
      if (items.length === 0) throw bad();
      return items;
    }
    default:
      return raw;
  }
}
