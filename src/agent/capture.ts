// Captured inputs as fit data (issue 19, opt-in serve.capture): the serve process keeps 1 in N
// request inputs in <stateDir>/capture (src/serve/capture.ts); once the ring holds enough of them
// to both calibrate and judge a fit (CALIBRATE_LIMIT + JUDGE_LIMIT = 32: the flat set is split
// alternately, so 16 each, what the fit reads of any set), the next fit calibrates and judges on
// them instead of the bundled or configured calibration data. The fit reads a snapshot: hard links
// of the newest samples in <stateDir>/capture-fit, so the ring can rotate while the fit runs and
// the fit never loads the whole ring (up to serve.capture.maxMb) into memory.
import { linkSync, copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CALIBRATE_LIMIT, JUDGE_LIMIT } from '../fit/calibration.js';
import { capturedSamples } from '../serve/capture.js';
import { hasNonFinite } from '../data/inputs.js';
import { readNpy } from '../data/npy.js';

/** Captured samples a fit needs before it uses them: enough to calibrate and judge on. */
export const CAPTURE_MIN_SAMPLES = CALIBRATE_LIMIT + JUDGE_LIMIT;

export function captureDirs(stateDir: string): { ring: string; snapshot: string } {
  return { ring: join(stateDir, 'capture'), snapshot: join(stateDir, 'capture-fit') };
}

/** Enough captured samples for a fit. */
export function captureReady(ring: string): boolean {
  return capturedSamples(ring).length >= CAPTURE_MIN_SAMPLES;
}

/**
 * Replace the snapshot with the newest CAPTURE_MIN_SAMPLES samples of the ring (hard links; copies
 * where refused). A request input holding NaN or infinity is left out (issue 20: the loader refuses
 * data holding them, so one such request would otherwise fail every fit on captured data); the
 * count is what the snapshot holds, so the fit's "on N captured inputs" says what it used.
 */
export function snapshotCapture(ring: string, snapshot: string): number {
  const newest = capturedSamples(ring).slice(-CAPTURE_MIN_SAMPLES);
  rmSync(snapshot, { recursive: true, force: true });
  mkdirSync(snapshot, { recursive: true, mode: 0o700 });
  for (const f of newest) {
    try {
      if (hasNonFinite(readNpy(join(ring, f.name)))) continue;
    } catch {
      continue; // rotated out meanwhile, or not a readable array
    }
    try {
      linkSync(join(ring, f.name), join(snapshot, f.name));
    } catch {
      try {
        copyFileSync(join(ring, f.name), join(snapshot, f.name));
      } catch {
        /* rotated out meanwhile */
      }
    }
  }
  return readdirSync(snapshot).length;
}
