// Run `edgefit agent` as a real child process (so tests can kill -9 it) on the small PP-OCR
// cls model, reference-only fitter, short intervals.
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, OCR_MODELS } from '../../devkit/paths.js';

export const CLS_MODEL = OCR_MODELS.cls.file;

export interface AgentProc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export function startAgentProc(opts: {
  /** Omitted: the agent runs its embedded broker (give mqtt.embeddedPort a free port in a --config). */
  broker?: string;
  deviceId: string;
  stateDir: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  metricsIntervalS?: number;
  probeIntervalS?: number;
  /** An operator public key file to pin (--operator-key): without one the agent is read-only. */
  operatorKey?: string;
  /** Default 'reference-only'; 'auto': the real fitter (fitModel in its child). */
  fitter?: 'auto' | 'reference-only';
  /** The training fit's minutes with the 'auto' fitter; default 0 (test/agent/train-phase.test.ts covers training). */
  trainMinutes?: number;
}): AgentProc {
  const args = [
    CLI,
    'agent',
    ...(opts.broker ? ['--broker', opts.broker] : []),
    '--device-id',
    opts.deviceId,
    '--state-dir',
    opts.stateDir,
    '--model',
    CLS_MODEL,
    '--shape',
    'x=1x3x48x192',
    '--metrics-interval',
    String(opts.metricsIntervalS ?? 0.5),
    '--probe-interval',
    String(opts.probeIntervalS ?? 2),
    '--fitter',
    opts.fitter ?? 'reference-only',
    '--train-minutes',
    String(opts.trainMinutes ?? 0),
    // serving on, on any free port: parallel tests never collide on 8551
    '--serve-port',
    '0',
    ...(opts.operatorKey ? ['--operator-key', opts.operatorKey] : []),
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}
