import { closeSync, copyFileSync, fsyncSync, openSync, renameSync, writeSync, mkdirSync, unlinkSync, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EdgefitError } from '../errors.js';

/**
 * Crash-safe file replacement: fill a temp file beside the target, fsync it, rename over the
 * target, fsync the folder. After a kill -9 or power loss the target is either the old or the
 * new content, never a torn mix.
 */
function replaceAtomic(path: string, fill: (tmp: string) => void): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    fill(tmp);
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  fsyncDir(dir);
}

/** `mode` 0o600 for secrets: the temp file is created with it, so the bytes are never readable by others. */
export function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): void {
  replaceAtomic(path, (tmp) => {
    const fd = openSync(tmp, 'w', mode);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    } finally {
      closeSync(fd);
    }
  });
}

/** writeFileAtomic for a copy: the kernel copies, the bytes never pass through this process. */
export function copyFileAtomic(from: string, to: string): void {
  replaceAtomic(to, (tmp) => copyFileSync(from, tmp));
}

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Refuse, before any work, an output path the result could not be written to (issue 20: a fit
 * must not search for minutes and then fail to save): the path is not a folder, its folder exists,
 * and a file can be created there (tried for real: permission bits say nothing on a read-only
 * mount). `what` names the path in the message ('output', 'report').
 */
export function checkWritable(path: string, what = 'output'): void {
  const dir = dirname(path);
  const st = statOrNull(path);
  if (st?.isDirectory()) throw new EdgefitError('USAGE', `${what} ${path} is a folder: give a file path`);
  const d = statOrNull(dir);
  if (!d) throw new EdgefitError('USAGE', `${what} ${path}: folder ${dir} does not exist`);
  if (!d.isDirectory()) throw new EdgefitError('USAGE', `${what} ${path}: ${dir} is not a folder`);
  const probe = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.probe`);
  try {
    closeSync(openSync(probe, 'wx', 0o600));
  } catch (e) {
    throw new EdgefitError('USAGE', `${what} ${path} cannot be written: ${(e as NodeJS.ErrnoException).code ?? String(e)} in ${dir}`, {
      cause: e,
    });
  }
  unlinkSync(probe);
}

function statOrNull(path: string): ReturnType<typeof statSync> | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}
