import * as fs from "node:fs";
import * as path from "node:path";
import { UsageError } from "../errors";

/**
 * All writers go through these helpers so a failure (bad tensor, full disk, Ctrl-C) never leaves a half-written
 * file or directory where a complete one is expected: content goes to a temporary name beside the target and is
 * renamed into place only when complete (rename is atomic within one filesystem).
 */

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now().toString(36)}`);
}

/** Write a file atomically. `write` receives the temporary path and must create it completely. */
export async function writeFileAtomic(target: string, write: (tmp: string) => Promise<void> | void): Promise<void> {
  const tmp = tempName(target);
  try {
    await write(tmp);
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** True if `dir` exists and has entries (an empty existing directory may be reused without force). */
function nonEmpty(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length > 0;
  } catch {
    return fs.existsSync(dir);
  }
}

/**
 * Build a directory atomically: `fill` writes into a temporary directory beside `dir`, which then replaces `dir`.
 * An existing non-empty `dir` is refused unless `force`; with force the old directory is removed only after the
 * new one is complete, so an error leaves the old content untouched.
 */
export async function writeDirAtomic(dir: string, force: boolean, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const target = path.resolve(dir);
  if (nonEmpty(target) && !force) {
    throw new UsageError(`output directory ${target} already exists and is not empty (use --force / force: true to replace it)`);
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  fs.mkdirSync(tmp);
  try {
    await fill(tmp);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  let old: string | null = null;
  if (fs.existsSync(target)) {
    old = tempName(target) + "-old";
    fs.renameSync(target, old);
  }
  try {
    fs.renameSync(tmp, target);
  } catch (err) {
    if (old) fs.renameSync(old, target);
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  if (old) fs.rmSync(old, { recursive: true, force: true });
}
