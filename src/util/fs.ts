import { closeSync, copyFileSync, fsyncSync, openSync, renameSync, writeSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

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

/** mode 0o600 for secrets: the temp file is created with it, so the bytes are never readable by others. */
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
