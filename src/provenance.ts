import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "./errors";
import { readJsonFile } from "./io/json";

/**
 * Where a model directory came from, back to the original model: every directory sdmprune writes (prune,
 * recover, convert, Session.save) holds `provenance.json` with the chain, newest link first, the original
 * model last. Each link carries the full record of its step (pruning.json or recovery.json contents, or
 * the conversion settings), so a converted copy of a recovered copy of a pruned model still says which
 * calibration text, story range, seed and criterion produced it. docs/formats.md describes the file.
 */

export const PROVENANCE_FILE = "provenance.json";

export interface ProvenanceLink {
  /** What produced `path`: the original model, a pruning session, a recovery run or a conversion. */
  kind: "original" | "prune" | "recover" | "convert" | "save";
  /** The model path (directory or .gguf file) this link describes. */
  path: string;
  time?: string;
  /** The step's own record: pruning.json / recovery.json contents, or the conversion settings. */
  record?: Record<string, unknown>;
}

export interface ProvenanceFile {
  format: "sdmprune-provenance";
  version: 1;
  chain: ProvenanceLink[];
}

function readJson(file: string): Record<string, unknown> {
  return readJsonFile(file) as Record<string, unknown>;
}

/**
 * The chain of `modelPath` (newest first, ending at the original model). Only the folder the user named is
 * read: for a directory, its provenance.json, else its pruning.json / recovery.json (directories written
 * before provenance.json existed); a model without any of them is its own original.
 */
export function readLineage(modelPath: string): ProvenanceLink[] {
  const abs = path.resolve(modelPath);
  let isDir = false;
  try {
    isDir = fs.statSync(abs).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) return [{ kind: "original", path: abs }];
  const prov = path.join(abs, PROVENANCE_FILE);
  if (fs.existsSync(prov)) {
    const j = readJson(prov);
    if (j.format !== "sdmprune-provenance" || !Array.isArray(j.chain) || j.chain.length === 0) {
      throw new FormatError(`${prov}: expected {"format": "sdmprune-provenance", "chain": [...]} with at least one link`);
    }
    return j.chain as ProvenanceLink[];
  }
  const pruning = path.join(abs, "pruning.json");
  if (fs.existsSync(pruning)) {
    const rec = readJson(pruning);
    const src = (rec.source as { path?: string } | undefined)?.path;
    return [{ kind: "prune", path: abs, record: rec }, ...(src ? [{ kind: "original" as const, path: src }] : [])];
  }
  const recovery = path.join(abs, "recovery.json");
  if (fs.existsSync(recovery)) {
    const rec = readJson(recovery);
    const base = typeof rec.base === "string" ? rec.base : null;
    return [{ kind: "recover", path: abs, record: rec }, ...(base ? [{ kind: "original" as const, path: base }] : [])];
  }
  return [{ kind: "original", path: abs }];
}

/** provenance.json contents for an output at `out` made by `link` from a model with chain `parent`. */
export function provenanceFile(out: string, link: Omit<ProvenanceLink, "path" | "time">, parent: ProvenanceLink[]): ProvenanceFile {
  return { format: "sdmprune-provenance", version: 1, chain: [{ ...link, path: path.resolve(out), time: new Date().toISOString() }, ...parent] };
}

/** Pruning steps recorded along a chain (oldest first), e.g. to say what a loaded model already went through. */
export function priorPruningSteps(chain: ProvenanceLink[]): { path: string; rule: string; label?: string }[] {
  const out: { path: string; rule: string; label?: string }[] = [];
  for (const link of [...chain].reverse()) {
    const hist = link.record && Array.isArray((link.record as { history?: unknown }).history) ? ((link.record as { history: { rule?: string; label?: string }[] }).history) : [];
    for (const h of hist) out.push({ path: link.path, rule: String(h.rule ?? "?"), label: h.label });
  }
  return out;
}
