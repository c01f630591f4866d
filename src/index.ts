// sdmprune public API. The Session is the entry point; the rest are the stateless building blocks it composes.
// core: session, pruning bookkeeping, recipe, results, errors, shared types (session helper)
export {
  Session,
  type LoadOptions, type CalibrateOptions, type CalibrationInfo, type ScoreOptions, type ScoreReport, type PruneOptions, type PruneReport,
  type SdmpruneOptions, type SdmpruneReport, type PplSpec, type PplProtocol, type PplRecord, PPL_PROTOCOLS, type EvaluateOptions as SessionEvaluateOptions, type EvaluationRecord,
  type EvaluationTable, type SensitivityTable, type InfoTable, type SessionInfo, type SaveOptions,
} from "./session";
export { resolvePrune, roundKeep, resolveLayerRange, selectChannels, sliceMlp, topKIndices, floorCount, accounting, type PruneSpec, type ResolvedPrune, type Allocation, type PruneAccounting } from "./prune";
export { PruneHistory, type PruneStep } from "./history";
export { PAPER_TABLE, STAGE1_KEEP_FRACTION, paperSettings, stage1Keep, keepForTarget, planSdmprune, type PaperSetting, type RecipePlan } from "./recipe";
export { layerSensitivity, type SensitivityResult, type SensitivityOptions } from "./sensitivity";
export { distribution, quantileSorted, spearman, keptSetAgreement, type Distribution } from "./stats";
export { Table, type Cell, type TableOptions } from "./table";
export { SdmpruneError, FormatError, ConfigError, DataError, UsageError, CancelledError, NumericError } from "./errors";
export type { ProgressEvent, RunOptions, TextTokenizer } from "./types";
export { Rng } from "./rng";
export { parseConfig, intermediateSizes, withIntermediateSizes, paramCounts, MODEL_TYPES, CONFIG_FIELDS, type LlamaConfig, type ModelConfig, type ModelType, type RopeScaling, type ParamCounts } from "./model/config";
export { hookPoints, zeroAblate, maskChannels, combineHooks, type Hook, type Hooks } from "./model/hooks";
export { FAMILIES } from "./model/registry";
export type { Family, FieldRole } from "./model/family";
// data + evaluation (data/eval helper)
export { readText, splitTinyStories, storyRange, selectStories, tinyStories, wikitextRows, wikitextText, joinDocs, TINYSTORIES_SEPARATOR, type StoryRange } from "./data/text";
export { calibrationWindows, evalWindows, saveWindows, loadWindows, validateWindows, sha256File, type CalibrationOptions, type WindowSet, type WindowProvenance, type WindowMode, type LoadedWindows } from "./data/windows";
export { asScorer, type TokenScorer, type GreedyScorer, type Scorer, type ScorerLike } from "./eval/scorer";
export { perplexity, pplFromText, type PerplexityResult, type PerplexityOptions, type TextPerplexityResult } from "./eval/perplexity";
export { encodePair, loglikelihoods, type LoglikelihoodRequest, type LoglikelihoodResult } from "./eval/loglikelihood";
export { evaluateTasks, type EvaluateOptions, type EvaluationResult, type SampleRecord, type TaskAverage, type TaskResult } from "./eval/harness";
export { modelScorer, type ModelScorerOptions } from "./eval/model-scorer";
export { TASKS, DEFAULT_TASKS, getTask, resolveDataDir, type TaskSpec } from "./eval/tasks";
// loss, teacher cache, importance (importance helper)
export { chunkLabels, lossWeights, mixedLoss, positionChunk, validateLossSpec, LossMeter, type LossSpec } from "./loss";
export { headLossVjp, type HeadLoss } from "./importance/head-loss";
export { TeacherCache, type TopK, type TeacherCacheOptions, type TeacherTargets, type TailStats } from "./teacher";
export { accumulate, settingsFor, ImportanceScores, SCORES_FORMAT, CRITERIA, isAdditive, modelFingerprint, fingerprintMismatch, type AccumulateOptions, type Criterion, type ScoreSettings, type ModelFingerprint } from "./importance";
// engine + model (engine/model helper)
export { initEngine, backendName, backendInfo, gpuMemory, resetGpuPeak, type BackendName, type BackendInfo, type GpuAdapterInfo, type GpuMemory } from "./engine";
import { CausalLM } from "./model/causal-lm";
/** @deprecated The v0.1 name of CausalLM (the class computes every supported family, not only LLaMA). */
export const LlamaModel = CausalLM;
/** @deprecated The v0.1 name of CausalLM. */
export type LlamaModel = CausalLM;
export { CausalLM, type LayerWeights, type ModelWeights, type LayerOptions, type ForwardOptions, type GenerateOptions, type TokenLogProbsOptions } from "./model/causal-lm";
export { randomTensors } from "./model/random";
export { inverseFrequencies, ropeTables } from "./model/rope";
// model files (io helper)
export { readModelFiles, writeModelFiles, validateTensors, expectedShapes, type ModelFiles, type WriteModelOptions } from "./io/files";
export { loadModel, saveModel } from "./model/load";
export { HfTokenizer, readTokenizerDir, tokenizerJsonFromSentencePiece, type SentencePieceVocab } from "./io/tokenizer";
export { openGgufTensors, readGgufHeader, readGgufTensors, writeGguf, type GgufHeader } from "./io/gguf";
export { openSafetensors, readSafetensors, readSafetensorsDir, writeSafetensors } from "./io/safetensors";
export type { HostTensor, TensorMap } from "./io/tensors";
// figures and rich display for notebooks (kernel helper)
export * from "./plot";
export { display, progress, inNotebook, textOf, Displayer, defaultDisplayer, tslabChannel, type DisplayMessage, type DisplayChannel } from "./display";
// training: recovery fine-tuning, LoRA, demo-model tooling (training helper)
export { recover, recoverWithData, batchIndices, type RecoverOptions, type RecoverResult, type RecoverLoss, type SessionRecoverOptions } from "./train/recover";
export { AdamW, globalNorm, type AdamWOptions } from "./train/optimizer";
export { learningRate, checkSchedule, type CosineSchedule } from "./train/schedule";
export { LoraAdapters, LORA_TARGETS, DEFAULT_LORA, resolveLoraConfig, modulePath, type LoraConfig } from "./train/lora";
export { saveAdapters, loadAdapters, adapterConfigJson, ADAPTER_WEIGHTS, ADAPTER_CONFIG } from "./train/adapters";
export { trainingWindows, type RecoverDataSpec } from "./train/data";
export { trainByteLevelBpe, bytesToUnicode, type BpeTrainOptions, type BpeResult } from "./train/tokenizer-trainer";
export { unigramPerplexity } from "./train/unigram";
export { meanStd, keptOverlap, seedAgreement, type CompareOptions, type CompareResult, type CompareRun, type CompareSummary, type CompareTable, type MeanStd } from "./compare";
export { findLeakage, type LeakageReport } from "./data/leakage";
export { measureSpeed, compareSpeed, speedTable, llamaCppAvailable, type SpeedOptions, type SpeedResult, type SpeedComparison, type SpeedTable } from "./speed";
