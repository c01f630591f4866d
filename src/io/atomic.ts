import * as fs from "node:fs";
import * as path from "node:path";
import { IoError, UsageError, ioError } from "../errors";

/**
 * All writers go through these helpers so a failure (bad tensor, full disk, Ctrl-C, kill -9) never leaves a
 * half-written file or directory where a complete one is expected: content goes to a temporary name beside the
 * target, every byte is checked written and fsynced, and only then is it renamed into place (rename is atomic
 * within one filesystem) and the folder fsynced so the rename itself survives a crash.
 *
 * Output directories carry a manifest of what sdmprune wrote into them; `force` replaces a directory only when
 * everything in it is listed there, so a user's own files are never deleted.
 */

/** Name of the manifest written into every output directory. */
export const MANIFEST = ".sdmprune-manifest.json";

const TEMP_TAG = ".tmp-";

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}${TEMP_TAG}${process.pid}-${Date.now().toString(36)}`);
}

/**
 * Bytes written to one file between data syncs. Writing a multi-GB model fills the page cache with dirty pages, and
 * in a memory-limited cgroup (v1) those count against the limit: a streamed model saved under a limit below its
 * size was killed for it. Syncing every so often bounds them; the file is fsynced at the end anyway.
 */
const SYNC_EVERY = 256 * 2 ** 20;
const unsynced = new Map<number, number>();

/** Write all of `data` at the current position of `fd`, looping on short writes (a full disk gives a short write). */
export function writeAll(fd: number, data: Uint8Array, file: string): void {
  const pending = (unsynced.get(fd) ?? 0) + data.byteLength;
  if (pending >= SYNC_EVERY) {
    unsynced.set(fd, 0);
  } else {
    unsynced.set(fd, pending);
  }
  writeChunks(fd, data, file);
  if (pending >= SYNC_EVERY) {
    try {
      fs.fdatasyncSync(fd);
    } catch (err) {
      throw withPath(err, file);
    }
  }
}

function writeChunks(fd: number, data: Uint8Array, file: string): void {
  let off = 0;
  while (off < data.byteLength) {
    let n: number;
    try {
      n = fs.writeSync(fd, data, off, data.byteLength - off);
    } catch (err) {
      throw withPath(err, file);
    }
    if (n <= 0) throw Object.assign(new Error(`short write (${off} of ${data.byteLength} bytes)`), { code: "EIO", path: file });
    off += n;
  }
}

/**
 * Create `file` with `content`, every byte checked written. Not fsynced: its callers fsync once, when the
 * temporary file or folder is complete (writeFileAtomic, writeDirAtomic).
 */
export function writeFileChecked(file: string, content: string | Uint8Array): void {
  const fd = openForWrite(file);
  try {
    writeAll(fd, typeof content === "string" ? Buffer.from(content, "utf8") : content, file);
  } finally {
    fs.closeSync(fd);
  }
}

export function openForWrite(file: string): number {
  try {
    return fs.openSync(file, "w");
  } catch (err) {
    throw withPath(err, file);
  }
}

export function fsyncFd(fd: number, file: string): void {
  unsynced.delete(fd);
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    throw withPath(err, file);
  }
}

function withPath(err: unknown, file: string): unknown {
  if (err && typeof err === "object" && !(err as { path?: string }).path) (err as { path?: string }).path = file;
  return err;
}

/** fsync a file or a directory by name (a directory's fsync makes the renames and creations inside it durable). */
function fsyncPath(p: string): void {
  const isDir = fs.statSync(p).isDirectory();
  let fd: number;
  try {
    fd = fs.openSync(p, "r");
  } catch (err) {
    // Some platforms cannot open a directory (Windows: EISDIR/EPERM); the files' own fsyncs still hold.
    if (isDir) return;
    throw withPath(err, p);
  }
  try {
    fsyncFd(fd, p);
  } catch (err) {
    // Some filesystems refuse fsync on a directory (EINVAL); the files' own fsyncs still hold.
    if (!isDir) throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync every file under `dir` (depth first), then the directories themselves. */
function fsyncTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) fsyncTree(p);
    else if (e.isFile()) fsyncPath(p);
  }
  fsyncPath(dir);
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}

/**
 * Remove temporaries left beside `target` by earlier runs that were killed (their pid is gone). A run killed
 * between moving the old output aside and moving the new one in left only `<tmp>-old`: that one is moved back.
 */
export function cleanStaleTemps(target: string): string[] {
  const dir = path.dirname(target);
  const base = `.${path.basename(target)}${TEMP_TAG}`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const stale = names.filter((n) => {
    if (!n.startsWith(base)) return false;
    const m = /^(\d+)-[0-9a-z]+(-old)?$/.exec(n.slice(base.length));
    return m !== null && !pidAlive(Number(m[1]));
  });
  const removed: string[] = [];
  if (!fs.existsSync(target)) {
    const old = stale.filter((n) => n.endsWith("-old")).sort().pop();
    if (old) {
      fs.renameSync(path.join(dir, old), target);
      stale.splice(stale.indexOf(old), 1);
    }
  }
  for (const n of stale) {
    fs.rmSync(path.join(dir, n), { recursive: true, force: true });
    removed.push(path.join(dir, n));
  }
  return removed;
}

function rethrow(err: unknown, tmp: string, target: string): never {
  // Name the final path, not the temporary one the user never sees.
  const p = (err as { path?: string } | null)?.path;
  const shown = p && (p === tmp || p.startsWith(tmp + path.sep)) ? target + p.slice(tmp.length) : (p ?? target);
  throw ioError(err, shown, "write");
}

/** Write a file atomically. `write` receives the temporary path and must create it completely. */
export async function writeFileAtomic(target: string, write: (tmp: string) => Promise<void> | void): Promise<void> {
  cleanStaleTemps(target);
  const tmp = tempName(target);
  try {
    await write(tmp);
    fsyncPath(tmp);
    fs.renameSync(tmp, target);
    fsyncPath(path.dirname(target));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    rethrow(err, tmp, target);
  }
}

/**
 * Write `content` to `target` atomically: every byte checked written (a full disk must not leave a truncated
 * file), one fsync (writeFileAtomic's), then the rename.
 */
export async function writeContentAtomic(target: string, content: string | Uint8Array): Promise<void> {
  await writeFileAtomic(target, (tmp) => writeFileChecked(tmp, content));
}

interface Manifest {
  written_by: "sdmprune";
  files: string[];
}

function readManifest(dir: string): Manifest | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), "utf8")) as Manifest;
    return m && m.written_by === "sdmprune" && Array.isArray(m.files) && m.files.every((f) => typeof f === "string") ? m : null;
  } catch {
    return null;
  }
}

/**
 * Why `target` cannot be replaced, or null when it can: absent, an empty directory, or (with force) a directory
 * holding only what sdmprune listed in its manifest.
 */
function occupied(target: string, force: boolean): string | null {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(target);
  } catch {
    return null;
  }
  if (!st.isDirectory()) return `output ${target} exists and is not a directory`;
  const entries = fs.readdirSync(target);
  if (entries.length === 0) return null;
  if (!force) return `output directory ${target} already exists and is not empty (use --force / force: true to replace it)`;
  const m = readManifest(target);
  if (!m) {
    return `output directory ${target} is not empty and was not written by sdmprune (no ${MANIFEST}); --force replaces only sdmprune's own output: empty or remove it yourself`;
  }
  const listed = new Set([...m.files, MANIFEST]);
  const foreign = entries.filter((e) => !listed.has(e));
  if (foreign.length) {
    return `output directory ${target} holds files sdmprune did not write (${foreign.slice(0, 5).join(", ")}${foreign.length > 5 ? ", ..." : ""}); --force replaces only sdmprune's own output: move them away first`;
  }
  return null;
}

/**
 * Check before any compute that `dir` can be written: refused if occupied (see writeDirAtomic), or if the nearest
 * existing parent folder is not writable (read-only filesystem, permissions): a probe file is created and removed.
 */
export function checkOutputDir(dir: string, force: boolean): void {
  const target = path.resolve(dir);
  const why = occupied(target, force);
  if (why) throw new UsageError(why);
  probeParent(target);
}

/**
 * Check before any compute that the file `file` can be written atomically: not an existing directory, and its
 * folder (or the nearest existing parent) writable.
 */
export function checkOutputFile(file: string): void {
  const target = path.resolve(file);
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) throw new IoError(target, "EISDIR", `output ${target} is a directory, expected a file name`);
  probeParent(target);
}

function probeParent(target: string): void {
  let parent = path.dirname(target);
  while (!fs.existsSync(parent) && path.dirname(parent) !== parent) parent = path.dirname(parent);
  if (!fs.statSync(parent).isDirectory()) throw new IoError(parent, "ENOTDIR", `output ${target}: ${parent} is not a directory`);
  const probe = path.join(parent, `.${path.basename(target)}.probe-${process.pid}`);
  try {
    fs.closeSync(fs.openSync(probe, "w"));
    fs.rmSync(probe, { force: true });
  } catch (err) {
    throw ioError(err, parent, `write in the folder of output ${target}`);
  }
}

/**
 * Build a directory atomically: `fill` writes into a temporary directory beside `dir`, which then replaces `dir`.
 * An existing non-empty `dir` is refused unless `force`, and even then only if it holds nothing but sdmprune's
 * own output (its manifest); the old directory is moved aside, the new one moved in, then the old one removed,
 * so an error leaves the old content untouched and a crash leaves one of the two (restored by the next run).
 */
export async function writeDirAtomic(dir: string, force: boolean, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const target = path.resolve(dir);
  cleanStaleTemps(target);
  const why = occupied(target, force);
  if (why) throw new UsageError(why);
  const tmp = tempName(target);
  try {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.mkdirSync(tmp);
    await fill(tmp);
    const files = fs.readdirSync(tmp).filter((f) => f !== MANIFEST).sort();
    writeFileChecked(path.join(tmp, MANIFEST), JSON.stringify({ written_by: "sdmprune", files } satisfies Manifest, null, 2) + "\n");
    fsyncTree(tmp);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    rethrow(err, tmp, target);
  }
  let old: string | null = null;
  try {
    if (fs.existsSync(target)) {
      old = tempName(target) + "-old";
      fs.renameSync(target, old);
    }
    fs.renameSync(tmp, target);
    fsyncPath(path.dirname(target));
  } catch (err) {
    if (old && !fs.existsSync(target)) fs.renameSync(old, target);
    fs.rmSync(tmp, { recursive: true, force: true });
    rethrow(err, tmp, target);
  }
  if (old) fs.rmSync(old, { recursive: true, force: true });
}
