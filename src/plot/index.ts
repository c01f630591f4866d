/** Figures the library draws from plain data (what a Session returns), and their rich-display bundles. */
export { Figure, axis, plainNumbers } from "./figure";
export type { FigureSpec, PlotlyTrace, PlotlyLayout, PlotlyConfig } from "./figure";
export { PLOTLY_MIME, figureBundle, figureHtml, tableBundle, scriptJson, inlineScript } from "./bundle";
export type { MimeBundle, TableLike } from "./bundle";
export { sensitivityFigure } from "./sensitivity";
export type { LayerSensitivity, SensitivityIncreases, SensitivityFigureOptions } from "./sensitivity";
export { scoreDistributionFigure, boxStats } from "./scores";
export type { BoxStats, ScoreDistributionOptions } from "./scores";
export { keptChannelFigure, keptFractions } from "./kept";
export type { KeptChannelOptions } from "./kept";
export { ratioFigure } from "./ratio";
export type { RatioPoint, RatioFigureOptions } from "./ratio";
export { convergenceFigure, keptSetAgreement, spearman } from "./convergence";
export type { ConvergencePoint, ConvergenceFigureOptions } from "./convergence";
