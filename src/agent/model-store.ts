// Versioned model folder with an atomic pointer:
//   <dir>/versions/<version>.onnx   written with write + fsync + rename
//   <dir>/current.json              {current, previous}, replaced by rename (writeFileAtomic)
//   <dir>/current.onnx              the current version's bytes under a stable name, for applications
//                                   that load the model themselves: a hard link made under a temp
//                                   name and renamed over it (a copy where links are refused), so a
//                                   reader opens either the old or the new model, never a torn one
// A crash before the pointer swap leaves the previous model deployed; after it, the new one.
// A new version is loaded for serving before the swap (deploy's `accept`), so the pointer only
// ever names a model that loaded: a model onnxruntime refuses leaves the previous one current.
// The pointer is the truth; the database's deployment rows are reconciled against it.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, linkSync, openSync, readFileSync, readSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { EdgefitError } from '../errors.js';
import { copyFileAtomic, fsyncDir, writeFileAtomic } from '../util/fs.js';

export interface ModelVersion {
  version: string;
  sha256: string;
  file: string;
  candidateId: string | null;
  fitId: number | null;
  source: string;
}
interface Pointer {
  current: ModelVersion;
  previous: ModelVersion | null;
}

export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** sha256 of a file read in 1 MiB chunks: the agent never holds a whole model in memory to hash it. */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

export class ModelStore {
  private readonly versionsDir: string;
  private readonly pointerPath: string;
  /** The stable path of the current model's bytes (hard link or copy of the current version). */
  readonly currentPath: string;

  constructor(
    private readonly dir: string,
    private readonly faultPauseMs = 0,
  ) {
    this.versionsDir = join(dir, 'versions');
    this.pointerPath = join(dir, 'current.json');
    this.currentPath = join(dir, 'current.onnx');
  }

  /**
   * Make current.onnx the current version's bytes (or remove it when nothing is deployed). Called
   * after every pointer change, and at start to repair a crash between the pointer and the link.
   * Returns whether it changed anything.
   */
  syncCurrentFile(): boolean {
    const cur = this.current();
    if (!cur || !existsSync(cur.file)) return false;
    if (this.currentFileIs(cur)) return false;
    const tmp = join(this.dir, `.current.onnx.${process.pid}.tmp`);
    try {
      unlinkSync(tmp);
    } catch {
      /* none left over */
    }
    try {
      // a version file is never written in place (replaced by rename, removed by prune), so a
      // hard link shares bytes that cannot change under a reader
      linkSync(cur.file, tmp);
      renameSync(tmp, this.currentPath);
      fsyncDir(this.dir);
    } catch {
      copyFileAtomic(cur.file, this.currentPath);
    }
    return true;
  }

  private currentFileIs(v: ModelVersion): boolean {
    if (!existsSync(this.currentPath)) return false;
    const a = statSync(this.currentPath);
    const b = statSync(v.file);
    if (a.ino === b.ino && a.dev === b.dev) return true;
    return a.size === b.size && sha256File(this.currentPath) === v.sha256;
  }

  current(): ModelVersion | undefined {
    return this.pointer()?.current;
  }
  previous(): ModelVersion | undefined {
    return this.pointer()?.previous ?? undefined;
  }

  private pointer(): Pointer | undefined {
    if (!existsSync(this.pointerPath)) return undefined;
    try {
      return JSON.parse(readFileSync(this.pointerPath, 'utf8')) as Pointer;
    } catch (e) {
      // cannot happen with rename-based writes; say so loudly rather than guess
      throw new EdgefitError('INTEGRITY', `model pointer ${this.pointerPath} is unreadable: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Check a stored version's bytes against its recorded sha256. */
  verify(v: ModelVersion): boolean {
    return existsSync(v.file) && sha256File(v.file) === v.sha256;
  }

  /**
   * Write the bytes as a new version, check them back, then swap the pointer to it. The caller
   * records the deployment as pending before and active after.
   */
  static versionFor(sha: string): string {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').replace('.', '').slice(0, 18);
    return `${stamp}-${sha.slice(0, 12)}`;
  }

  /**
   * Deploy bytes (shipped by command) or a file (a frontier entry; copied by the kernel, never
   * read into the agent's memory): durable write, read back against the sha256, `accept` (the
   * deployer loads the model there), pointer swap. When `accept` throws, the written version is
   * removed and the pointer never moved: a model that cannot be served never becomes current.
   */
  async deploy(
    src: { bytes: Uint8Array } | { file: string },
    meta: { version: string; candidateId: string | null; fitId: number | null; source: string; expectSha256?: string },
    accept: (v: ModelVersion) => Promise<void> = async () => undefined,
  ): Promise<ModelVersion> {
    const sha = 'bytes' in src ? sha256Hex(src.bytes) : sha256File(src.file);
    if (meta.expectSha256 && meta.expectSha256 !== sha) {
      throw new EdgefitError('INTEGRITY', `model sha256 is ${sha}, expected ${meta.expectSha256}`);
    }
    const version = meta.version;
    const file = join(this.versionsDir, `${version}.onnx`);
    if ('bytes' in src) writeFileAtomic(file, src.bytes);
    else copyFileAtomic(src.file, file);
    const v: ModelVersion = { version, sha256: sha, file, candidateId: meta.candidateId, fitId: meta.fitId, source: meta.source };
    if (!this.verify(v)) throw new EdgefitError('INTEGRITY', `model ${file} does not read back with sha256 ${sha}`);
    try {
      await accept(v);
    } catch (e) {
      this.discard(v);
      throw e;
    }
    // fault-injection seam for the crash test: a kill -9 here must leave the old model in place
    if (this.faultPauseMs > 0) await new Promise((r) => setTimeout(r, this.faultPauseMs));
    this.swap(v);
    return v;
  }

  /**
   * Record that the current bytes are now also `meta` (a fit chose the very model already
   * deployed, e.g. the original): the pointer names the same file under the new fit and
   * candidate; nothing is written or swapped, so previous stays what it was.
   */
  relabel(meta: { candidateId: string | null; fitId: number | null; source: string }): ModelVersion {
    const p = this.pointer();
    if (!p) throw new EdgefitError('INTERNAL', 'nothing deployed to relabel');
    const next: ModelVersion = { ...p.current, candidateId: meta.candidateId, fitId: meta.fitId, source: meta.source };
    writeFileAtomic(this.pointerPath, JSON.stringify({ current: next, previous: p.previous }, null, 2));
    return next;
  }

  private swap(next: ModelVersion): void {
    const cur = this.current();
    const ptr: Pointer = { current: next, previous: cur && cur.version !== next.version ? cur : (this.previous() ?? null) };
    writeFileAtomic(this.pointerPath, JSON.stringify(ptr, null, 2));
    this.syncCurrentFile();
    this.prune();
  }

  /** Point back at the previous version (which becomes the new previous in turn) once `accept` took it. */
  async rollback(accept: (v: ModelVersion) => Promise<void> = async () => undefined): Promise<ModelVersion> {
    const p = this.pointer();
    if (!p?.previous) throw new EdgefitError('USAGE', 'no previous model to roll back to');
    if (!this.verify(p.previous)) throw new EdgefitError('INTEGRITY', `previous model ${p.previous.version} fails its sha256 check`);
    await accept(p.previous);
    writeFileAtomic(this.pointerPath, JSON.stringify({ current: p.previous, previous: p.current }, null, 2));
    this.syncCurrentFile();
    return p.previous;
  }

  /** Remove a written version that never became current (unless the pointer names the same file). */
  private discard(v: ModelVersion): void {
    const p = this.pointer();
    if (v.file === p?.current.file || v.file === p?.previous?.file) return;
    try {
      unlinkSync(v.file);
    } catch {
      /* gone */
    }
  }

  /** Keep only current and previous on disk (plus nothing half-written). */
  private prune(): void {
    const p = this.pointer();
    const keep = new Set([p?.current.file, p?.previous?.file].filter(Boolean) as string[]);
    if (!existsSync(this.versionsDir)) return;
    for (const f of readdirSync(this.versionsDir)) {
      const full = join(this.versionsDir, f);
      if (!keep.has(full)) {
        try {
          unlinkSync(full);
        } catch {
          /* gone */
        }
      }
    }
  }
}
