// Opt-in capture of real inputs (issue 19; config serve.capture, off by default): 1 in `every`
// served requests has its inputs kept as .npy under <stateDir>/capture, a ring bounded by maxMb
// (oldest deleted first), so the next fit calibrates on what the box actually sees. Written here,
// in the serve process, because the inputs are already in its memory: sending a copy to the agent
// would cost a second copy and an IPC message per sample. The copy is taken on the request path
// (the request's buffers move to the session worker right after); the write (temp file, fsync,
// rename: a reader never sees half a sample) runs off it, one at a time, and a sample that comes
// while one is being written is skipped rather than queued, so memory stays bounded.
// Samples are one file per request for single-input models (the loader reads a folder of .npy as
// samples of the only input); a multi-input model's requests are not captured (said once).
import { mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { NdArray } from '../data/ndarray.js';
import { encodeNpy } from '../data/npy.js';

export interface CaptureOptions {
  /** Folder of the ring (<stateDir>/capture). */
  dir: string;
  /** Keep 1 request in `every`. */
  every: number;
  /** Bound of the ring, MiB. */
  maxMb: number;
}

const SAMPLE_RE = /^\d{13}-\d{6}\.npy$/;

/** The captured samples in a folder, oldest first (names sort by time). */
export function capturedSamples(dir: string): { name: string; bytes: number }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => SAMPLE_RE.test(n))
    .sort()
    .map((name) => ({ name, bytes: statSync(join(dir, name)).size }));
}

export class CaptureRing {
  private seen = 0;
  private seq = 0;
  private writing = false;
  private readonly files: { name: string; bytes: number }[];
  private total: number;
  private warned = false;
  /** Samples written and skipped (a write was in progress) since start. */
  written = 0;
  skipped = 0;

  constructor(
    private readonly o: CaptureOptions,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    for (const n of readdirSync(o.dir)) if (n.endsWith('.tmp')) unlinkSync(join(o.dir, n)); // a crash mid-write
    this.files = capturedSamples(o.dir);
    this.total = this.files.reduce((s, f) => s + f.bytes, 0);
  }

  get bytes(): number {
    return this.total;
  }

  get count(): number {
    return this.files.length;
  }

  /** A request's inputs, before they move to the worker: copied when this is the 1-in-N one. */
  offer(inputs: Record<string, NdArray>): void {
    if (++this.seen % this.o.every !== 0) return;
    const arrays = Object.values(inputs);
    if (arrays.length !== 1) {
      if (!this.warned) this.log(`capture: the model takes ${arrays.length} inputs; only single-input models are captured`);
      this.warned = true;
      return;
    }
    if (this.writing) {
      this.skipped++;
      return;
    }
    const bytes = encodeNpy(arrays[0]!); // a copy: the request's buffer is about to be transferred
    this.writing = true;
    void this.write(bytes).finally(() => (this.writing = false));
  }

  /** Resolves when no write is in progress (tests, stop). */
  async idle(): Promise<void> {
    while (this.writing) await new Promise((r) => setTimeout(r, 5));
  }

  private async write(bytes: Uint8Array): Promise<void> {
    const name = `${Date.now()}-${String(this.seq++ % 1_000_000).padStart(6, '0')}.npy`;
    const file = join(this.o.dir, name);
    const tmp = `${file}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      this.files.push({ name, bytes: bytes.length });
      this.total += bytes.length;
      this.written++;
      this.trim();
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      this.log(`capture: ${(e as Error).message}`);
    }
  }

  /** Delete the oldest samples until the ring fits maxMb. */
  private trim(): void {
    const max = this.o.maxMb * 2 ** 20;
    while (this.total > max && this.files.length > 0) {
      const f = this.files.shift()!;
      this.total -= f.bytes;
      try {
        unlinkSync(join(this.o.dir, f.name));
      } catch {
        /* gone */
      }
    }
  }
}
