import { isDeepStrictEqual } from "node:util";
import { FormatError } from "../errors";

/**
 * Replace the values of top-level keys in a JSON object's text, leaving every other byte as it was. Why not
 * parse and re-serialise: JSON.stringify writes 10.0 as 10, and transformers 5 validates config fields
 * strictly (`final_logit_softcapping: 10` is refused: "expected float, got int"), so a config written back
 * must keep the original spelling of every number it does not change. Keys that are absent are inserted
 * first. The result is checked by parsing it.
 */
export function patchJsonText(text: string, values: Record<string, unknown>, source: string): string {
  const spans = new Map<string, [number, number]>();
  let i = 0;
  let depth = 0;
  let start = -1;
  const skipString = (p: number): number => {
    p++;
    while (p < text.length && text[p] !== '"') p += text[p] === "\\" ? 2 : 1;
    return p + 1;
  };
  const skipValue = (p: number): number => {
    if (text[p] === '"') return skipString(p);
    if (text[p] === "{" || text[p] === "[") {
      let d = 0;
      while (p < text.length) {
        const ch = text[p];
        if (ch === '"') {
          p = skipString(p);
          continue;
        }
        if (ch === "{" || ch === "[") d++;
        if (ch === "}" || ch === "]") {
          d--;
          if (d === 0) return p + 1;
        }
        p++;
      }
      return p;
    }
    while (p < text.length && !/[,}\]\s]/.test(text[p])) p++;
    return p;
  };
  while (i < text.length) {
    const ch = text[i];
    if (ch === "{") {
      depth++;
      if (depth === 1) start = i;
      i++;
    } else if (ch === '"' && depth === 1) {
      const end = skipString(i);
      const key = JSON.parse(text.slice(i, end)) as string;
      let p = end;
      while (/\s/.test(text[p])) p++;
      if (text[p] !== ":") throw new FormatError(`${source}: cannot patch config text (no ':' after key ${key})`);
      p++;
      while (/\s/.test(text[p])) p++;
      const vEnd = skipValue(p);
      spans.set(key, [p, vEnd]);
      i = vEnd;
    } else if (ch === "}") {
      depth--;
      i++;
    } else i++;
  }
  if (start < 0) throw new FormatError(`${source}: not a JSON object`);
  const edits = Object.entries(values)
    .filter(([k]) => spans.has(k))
    .map(([k, v]) => ({ span: spans.get(k)!, text: JSON.stringify(v) }))
    .sort((a, b) => b.span[0] - a.span[0]);
  let out = text;
  for (const e of edits) out = out.slice(0, e.span[0]) + e.text + out.slice(e.span[1]);
  const missing = Object.entries(values).filter(([k]) => !spans.has(k));
  if (missing.length > 0) {
    const ins = missing.map(([k, v]) => `\n  ${JSON.stringify(k)}: ${JSON.stringify(v)},`).join("");
    const empty = /^\{\s*\}/.test(out.slice(start));
    out = out.slice(0, start + 1) + (empty ? ins.replace(/,$/, "") : ins) + out.slice(start + 1);
  }
  const want = { ...(JSON.parse(text) as Record<string, unknown>), ...values };
  if (!isDeepStrictEqual(JSON.parse(out), want)) throw new FormatError(`${source}: patching the config text did not give the expected object`);
  return out;
}
