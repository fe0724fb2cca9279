// `edgefit eval`: measure a model on this box (latency, memory, and fidelity/accuracy when a
// reference or labels are given). Thin: parses flags, calls src/evaluate, prints.
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { parseShapes, printJson } from '../output.js';
import { checkWritable, writeFileAtomic } from '../../util/fs.js';
import { evaluateModel, reportToJson, FIDELITY_METRICS, type EvalReport, type FidelityMetric } from '../../evaluate/index.js';
import { describeFigures, parseTask, TASK_NAMES } from '../../fidelity/index.js';

const OPT_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;

interface Args {
  model: string;
  reference?: string;
  data?: string;
  shape?: string[];
  threads: number;
  runs: number;
  warmup: number;
  'max-ms'?: number;
  limit?: number;
  'fidelity-metric': string;
  task: string;
  'graph-opt': string;
  arena: boolean;
  'mem-pattern': boolean;
  'timeout-ms': number;
  'rss-cap-mb'?: number;
  seed: number;
  json: boolean;
  out?: string;
}

const posInt = (v: number | undefined, flag: string, min = 1): void => {
  if (v !== undefined && (!Number.isInteger(v) || v < min))
    throw new EdgefitError('USAGE', `${flag} must be an integer >= ${min}, got ${v}`);
};

function human(r: EvalReport): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  const syn = r.synthetic ? ' (SYNTHETIC inputs)' : '';
  const lines = [
    `model      ${r.model}`,
    `inputs     ${r.inputs}, ${r.samples} sample(s)${syn}`,
    `threads    ${r.session.intraOpThreads}, graph optimisation ${r.session.graphOptimizationLevel}`,
    `latency    p50 ${f(r.latencyMs.p50)} ms  p95 ${f(r.latencyMs.p95)}  p99 ${f(r.latencyMs.p99)}  mean ${f(r.latencyMs.mean)}  cv ${f(r.latencyMs.cv, 3)}  (${r.latencyMs.runs} runs)`,
    `load       ${f(r.loadMs, 0)} ms`,
    `memory     peak RSS ${f(r.peakRssMb, 1)} MiB` +
      (r.modelRssMb !== undefined ? `, model ${f(r.modelRssMb, 1)} MiB above the bare runtime (${f(r.baselineRssMb!, 1)})` : ''),
  ];
  const task = r.fidelity?.task;
  if (task !== undefined && r.fidelity?.taskFigures) {
    const x = r.fidelity;
    lines.push(
      `task       ${task} (${x.taskAuto ? `auto-detected: ${x.taskReason}` : 'given'}): ` +
        `${describeFigures(task, r.fidelity.taskFigures)} over ${r.samples} sample(s)${syn}`,
    );
  }
  if (r.fidelity) {
    const x = r.fidelity;
    const top =
      x.top1Agreement !== undefined
        ? `  top-1 ${f(x.top1Agreement, 4)}` + (x.top5Agreement !== undefined ? `  top-5 ${f(x.top5Agreement, 4)}` : '')
        : '';
    // (no raw figures when no output has the reference's shape: a detector with built-in NMS)
    const raw = x.perOutput.length
      ? `: cosine ${f(x.cosine, 6)}  SNR ${Number.isFinite(x.snrDb) ? `${f(x.snrDb, 1)} dB` : 'inf (identical)'}  max|err| ${x.maxAbsErr.toPrecision(3)}${top}`
      : ' (outputs differ in shape: no raw figures)';
    lines.push(`fidelity   ${f(x.value, 6)} (${x.metric}) vs ${r.reference}${raw}${syn}`);
  }
  if (r.accuracy) lines.push(`accuracy   ${f(r.accuracy.value, 4)} (${r.accuracy.correct}/${r.accuracy.total})`);
  return lines.join('\n') + '\n';
}

export const command: CommandModule<object, Args> = {
  command: 'eval <model>',
  describe: 'measure latency, memory, fidelity (vs --reference) and accuracy (labelled --data) of an ONNX model',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model to measure' })
      .option('reference', { type: 'string', describe: 'reference model (normally the original) for fidelity' })
      .option('data', {
        type: 'string',
        describe: '.npy/.npz file, folder of .npy, image folder with preprocess.json, or labelled set; default: seeded synthetic',
      })
      .option('shape', { type: 'string', array: true, describe: 'dynamic input dims, e.g. x=1x3x640x640 (repeatable)' })
      .option('threads', { type: 'number', default: 1, describe: 'intra-op threads' })
      .option('runs', { type: 'number', default: 20, describe: 'timed runs' })
      .option('warmup', { type: 'number', default: 3, describe: 'warm-up runs before timing' })
      .option('max-ms', { type: 'number', describe: 'stop timing after this many ms (at least one run)' })
      .option('limit', { type: 'number', describe: 'use at most N samples of the data' })
      .option('fidelity-metric', {
        type: 'string',
        choices: FIDELITY_METRICS,
        default: 'auto',
        describe: "headline fidelity: the task's metric (auto), or a raw one by name",
      })
      .option('task', {
        type: 'string',
        default: 'auto',
        describe: `what the model is for: auto or ${TASK_NAMES.join(', ')}; decides how fidelity is judged (auto: detected from the reference)`,
      })
      .option('graph-opt', { type: 'string', choices: OPT_LEVELS, default: 'all', describe: 'onnxruntime graph optimisation level' })
      .option('arena', { type: 'boolean', default: true, describe: 'CPU memory arena (--no-arena to disable)' })
      .option('mem-pattern', { type: 'boolean', default: true, describe: 'memory pattern planning (--no-mem-pattern to disable)' })
      .option('timeout-ms', { type: 'number', default: 300_000, describe: 'kill the measurement after this long' })
      .option('rss-cap-mb', { type: 'number', describe: 'kill the measurement when its RSS exceeds this (exit 3, over budget)' })
      .option('seed', { type: 'number', default: 1, describe: 'seed for synthetic inputs' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .option('out', { type: 'string', describe: 'also write the JSON report to this file (atomically)' }) as never,
  handler: async (a) => {
    posInt(a.threads, '--threads');
    posInt(a.runs, '--runs');
    posInt(a.warmup, '--warmup', 0);
    posInt(a.limit, '--limit');
    posInt(a['timeout-ms'], '--timeout-ms');
    if (a['rss-cap-mb'] !== undefined && !(a['rss-cap-mb'] > 0))
      throw new EdgefitError('USAGE', `--rss-cap-mb must be positive, got ${a['rss-cap-mb']}`);
    if (a.out) checkWritable(a.out, 'report');
    const report = await evaluateModel({
      model: a.model,
      reference: a.reference,
      data: a.data,
      shapes: parseShapes(a.shape),
      threads: a.threads,
      runs: a.runs,
      warmup: a.warmup,
      maxMs: a['max-ms'],
      limit: a.limit,
      seed: a.seed,
      fidelityMetric: a['fidelity-metric'] as FidelityMetric,
      task: parseTask(a.task),
      session: {
        graphOptimizationLevel: a['graph-opt'] as (typeof OPT_LEVELS)[number],
        enableCpuMemArena: a.arena,
        enableMemPattern: a['mem-pattern'],
      },
      limits: { timeoutMs: a['timeout-ms'], rssCapMb: a['rss-cap-mb'] },
    });
    const json = reportToJson(report);
    if (a.out) writeFileAtomic(a.out, `${JSON.stringify(json, null, 2)}\n`);
    if (a.json) printJson(json);
    else process.stdout.write(human(report));
  },
};
