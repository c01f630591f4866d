import type { ChoiceDoc } from "./types";

/** The common multiple-choice shape: one context, continuations " " + choice (lm-eval's target delimiter). */
export function sharedContextDoc(id: string, context: string, choices: string[], gold: number): ChoiceDoc {
  return { kind: "choice", id, requests: choices.map((c) => ({ context, continuation: " " + c })), choices, gold };
}
