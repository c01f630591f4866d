// The package's root export (`import { Session } from "sdmprune"`): the Session, its result tables, the
// errors it throws and the types of its options and results. The building blocks the Session composes
// (model, io, data, importance, eval, train, plot, engine) are in "sdmprune/all" (src/index.ts, which is also
// what notebooks import as "./src"); docs/api.md lists the tiers.
export {
  Session,
  criterionNeeds,
  PPL_PROTOCOLS,
  type LoadOptions, type CalibrateOptions, type CalibrationInfo, type ScoreOptions, type ScoreReport, type PruneOptions, type PruneReport,
  type SdmpruneOptions, type SdmpruneReport, type PplSpec, type PplProtocol, type PplRecord, type EvaluateOptions, type EvaluationRecord,
  type EvaluationTable, type SensitivityTable, type InfoTable, type SessionInfo, type SaveOptions,
} from "./session";
export { Table, type Cell, type TableOptions } from "./table";
export { SdmpruneError, FormatError, ConfigError, DataError, UsageError, CancelledError, NumericError } from "./errors";
export type { ProgressEvent, RunOptions, TextTokenizer } from "./types";
export { CRITERIA, type Criterion } from "./importance";
export type { PruneStep } from "./history";
export type { ProvenanceLink, ProvenanceFile } from "./provenance";
export type { SessionRecoverOptions, RecoverResult } from "./train/recover";
