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

export type FlagType = "int" | "posint" | "number" | "string" | "bool" | "range" | "list";

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
      throw new ArgError(
        `${cmd}: unknown option --${name}; expected ${known.length ? known.map((k) => `--${k}`).join(", ") : "no options"}`,
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
      return "a layer range like 2-5 or 3";
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
      const m = /^(\d+)(?:-(\d+))?$/.exec(raw);
      if (!m) throw bad();
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a) throw new ArgError(`${cmd}: ${what} expects a range a-b with a <= b, got "${raw}"`);
      return [a, b];
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
