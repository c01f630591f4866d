/** Entry points the CLI (`sdmprune repl`) loads from dist/repl. */
import type { Runner } from "./blocks";
import { SessionRunner } from "./runner";
import type { ReplLibrary } from "./session-api";

export { startRepl, type StartOptions } from "./main";
export { SessionRunner } from "./runner";

export function createRunner(lib: ReplLibrary): Runner {
  return new SessionRunner(lib);
}
