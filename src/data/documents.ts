import * as path from "node:path";
import { DataError, UsageError } from "../errors";
import { joinDocs, readText, selectStories, splitTinyStories, storyRange, TINYSTORIES_SEPARATOR, wikitextRows } from "./text";

/**
 * Text → documents, the one place where a calibration, training or evaluation text is read and cut into
 * documents: TinyStories dumps (stories separated by `<|endoftext|>`) become one document per story, an
 * optional 1-based story range selects some of them, and any other text is one document. Perplexity adds
 * its protocols (documents / wikitext / file, docs/method.md "Perplexity") on top: evaluationText().
 * Windows are cut from the documents elsewhere (data/windows.ts).
 */

/** The documents of one text: a TinyStories dump's stories, else the text itself. */
export function splitDocuments(text: string): string[] {
  return text.includes(TINYSTORIES_SEPARATOR) ? splitTinyStories(text) : [text];
}

export interface DocumentSource {
  /** One text. */
  text?: string;
  /** Text files, read in order; their documents are concatenated. */
  files?: string | string[];
  /** 1-based inclusive story range over all documents, e.g. "1-200". */
  stories?: string;
}

export interface Documents {
  /** Non-blank documents after the story range. */
  docs: string[];
  /** The files read (absolute paths), empty for a text. */
  files: string[];
  source: "text" | "files";
  /** The story range as given, null for all. */
  stories: string | null;
  /** 0-based number of the first document kept (for naming documents in leakage warnings). */
  firstDoc: number;
}

/**
 * Read the documents of a text or of files. `empty` is the DataError message for an empty text, `noDocs`
 * (default `empty`) the one when no non-blank document remains.
 */
export function readDocuments(src: DocumentSource, messages: { empty: string; noDocs?: string }): Documents {
  if (src.text !== undefined && src.files !== undefined) throw new UsageError("give text or files, not both");
  let docs: string[];
  let files: string[] = [];
  let source: Documents["source"];
  if (src.text !== undefined) {
    if (typeof src.text !== "string" || src.text.trim() === "") throw new DataError(messages.empty);
    docs = splitDocuments(src.text);
    source = "text";
  } else {
    files = (Array.isArray(src.files) ? src.files : [src.files as string]).map((f) => path.resolve(f));
    if (files.length === 0) throw new UsageError("files: expected at least one file");
    docs = files.flatMap((f) => splitDocuments(readText(f)));
    source = "files";
  }
  let firstDoc = 0;
  if (src.stories !== undefined) {
    const r = storyRange(src.stories);
    docs = selectStories(docs, r.from, r.to);
    firstDoc = r.from;
  }
  docs = docs.filter((d) => d.trim() !== "");
  if (docs.length === 0) throw new DataError(messages.noDocs ?? messages.empty);
  return { docs, files, source, stories: src.stories ?? null, firstDoc };
}

/**
 * How a text becomes the one token stream perplexity is computed on (docs/method.md, "Perplexity"):
 * "documents" (default): WikiText `.raw` files by the row protocol, TinyStories dumps split into stories
 * and joined with "\n\n" (the `<|endoftext|>` separators are not scored), any other text as it is;
 * "wikitext": the row protocol for any file; "file": the text exactly as read, separators included.
 */
export type PplProtocol = "documents" | "wikitext" | "file";
export const PPL_PROTOCOLS: readonly PplProtocol[] = ["documents", "wikitext", "file"];

/** Refuse an unknown perplexity protocol; returns the protocol (default "documents"). */
export function checkProtocol(protocol: PplProtocol | undefined): PplProtocol {
  const p = protocol ?? "documents";
  if (!PPL_PROTOCOLS.includes(p)) throw new UsageError(`ppl: protocol must be ${PPL_PROTOCOLS.join(", ")}, got ${JSON.stringify(p)}`);
  return p;
}

export interface EvaluationText {
  /** The text the token stream is made of. */
  text: string;
  /** How it was made (protocol and documents), for reports. */
  how: string;
  /** A label naming the text. */
  source: string;
  /** The documents the text holds (for leakage checks). */
  docs: string[];
  /** 0-based number of the first document (story range). */
  firstDoc: number;
}

/** An evaluation text (file or text) under its perplexity protocol. */
export function evaluationText(spec: { text?: string; file?: string; stories?: string; protocol?: PplProtocol }): EvaluationText {
  const protocol = checkProtocol(spec.protocol);
  const raw = spec.file !== undefined ? readText(spec.file) : (spec.text as string);
  const name = spec.file !== undefined ? path.basename(spec.file) : "text";
  const isStories = raw.includes(TINYSTORIES_SEPARATOR);
  const wikitext = protocol === "wikitext" || (protocol === "documents" && spec.file !== undefined && /\.raw$/.test(spec.file));
  if (spec.stories !== undefined && (protocol !== "documents" || wikitext || !isStories)) {
    throw new UsageError(`ppl: a story range applies to a TinyStories text under the "documents" protocol (${name} ${isStories ? `with protocol "${protocol}"` : "has no <|endoftext|> separators"})`);
  }
  if (wikitext) {
    const text = joinDocs(wikitextRows(raw));
    return { text, how: 'wikitext: rows joined with "\\n\\n"', source: `${name} (WikiText rows)`, docs: [text], firstDoc: 0 };
  }
  if (protocol === "documents" && isStories) {
    let stories = splitTinyStories(raw);
    const all = stories.length;
    let firstDoc = 0;
    if (spec.stories) {
      const r = storyRange(spec.stories);
      stories = selectStories(stories, r.from, r.to);
      firstDoc = r.from;
    }
    const how = `documents: ${spec.stories ? `stories ${spec.stories} of ${all}` : `${all} stories`} joined with "\\n\\n"`;
    return { text: joinDocs(stories), how, source: `${name} (stories ${spec.stories ?? "all"})`, docs: stories, firstDoc };
  }
  const how = protocol === "file" ? "file: the text as read, one document" : "documents: one document";
  return { text: raw, how, source: name, docs: splitDocuments(raw), firstDoc: 0 };
}
