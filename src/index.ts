export {};
// data + evaluation (data/eval helper)
export { readText, splitTinyStories, storyRange, selectStories, tinyStories, wikitextRows, wikitextText, joinDocs, TINYSTORIES_SEPARATOR, type StoryRange } from "./data/text";
export { calibrationWindows, evalWindows, saveWindows, loadWindows, validateWindows, sha256File, type CalibrationOptions, type WindowSet, type WindowProvenance, type WindowMode, type LoadedWindows } from "./data/windows";
export { asScorer, type TokenScorer, type GreedyScorer, type Scorer, type ScorerLike } from "./eval/scorer";
export { perplexity, pplFromText, type PerplexityResult, type PerplexityOptions, type TextPerplexityResult } from "./eval/perplexity";
export { encodePair, loglikelihoods, type LoglikelihoodRequest, type LoglikelihoodResult } from "./eval/loglikelihood";
export { evaluateTasks, type EvaluateOptions, type EvaluationResult, type TaskResult } from "./eval/harness";
export { modelScorer, type ModelScorerOptions } from "./eval/model-scorer";
export { TASKS, DEFAULT_TASKS, getTask, resolveDataDir, type TaskSpec } from "./eval/tasks";
// loss, teacher cache, importance (importance helper)
export { chunkLossGrad, chunkLabels, lossWeights, mixedLoss, positionChunk, validateLossSpec, LossMeter, type LossSpec, type ChunkLoss } from "./loss";
export { TeacherCache, type TopK, type TeacherCacheOptions, type TeacherTargets, type TailStats } from "./teacher";
export { accumulate, settingsFor, ImportanceScores, SCORES_FORMAT, CRITERIA, isAdditive, modelFingerprint, fingerprintMismatch, type AccumulateOptions, type Criterion, type ScoreSettings, type ModelFingerprint } from "./importance";
// engine + model (engine/model helper)
export { initEngine, backendName, type BackendName } from "./engine";
export { LlamaModel, type LayerWeights, type ModelWeights, type LayerOptions, type ForwardOptions, type GenerateOptions, type TokenLogProbsOptions } from "./model/llama";
export { randomTensors } from "./model/random";
export { inverseFrequencies, ropeTables } from "./model/rope";
