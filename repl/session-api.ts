/**
 * The part of the library's `Session` the REPL calls. repl/ is compiled on its own (to dist/repl) and
 * receives the real Session from the CLI at run time, so it imports src/ for types only: `import type`
 * vanishes from the emitted JavaScript, and repl/tsconfig.json reads those types from the library's
 * declarations (a project reference), so nothing of src/ is compiled or loaded here.
 */
import type { Session } from "../src/session";

/** The Session methods the REPL uses; a narrower object (a test double) fits as long as these match. */
export type ReplSession = Pick<
  Session,
  | "backend"
  | "info"
  | "calibrate"
  | "score"
  | "scoreSummary"
  | "sensitivity"
  | "prune"
  | "sdmprune"
  | "recover"
  | "undo"
  | "history"
  | "evaluate"
  | "generate"
  | "save"
  | "saveScores"
  | "loadScores"
  | "mergeScores"
  | "dispose"
>;

/** What `info()` carries besides its table (widths, parameters, calibration state). */
export type SessionInfo = ReturnType<Session["info"]>["raw"];

/** What the CLI hands the REPL: how to open a session (the library is loaded on first use). */
export interface ReplLibrary {
  openSession(path: string): Promise<ReplSession>;
  /** Shared data folder (models/, data/) for defaults such as the TinyStories calibration text. */
  sharedDir?: string | null;
}
