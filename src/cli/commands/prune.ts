// edgefit prune <in.onnx> -o <out.onnx> ...: thin; the work is in src/passes/prune/.
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { checkWritable } from '../../util/fs.js';
import { normalize } from '../../passes/normalize.js';
import { loadModel, saveModel, serializeModel } from '../../onnx/index.js';
import { dataShapes, loadInputSet } from '../../data/inputs.js';
import { modelInputs, toFeeds } from '../../runtime/runner.js';
import { compareLatency } from '../../evaluate/interleaved.js';
import { probeTables, runsFor } from '../../evaluate/latency-probes.js';
import { inputShapes, syntheticSamples } from '../../data/model-inputs.js';
import { IMPORTANCE, type Importance } from '../../passes/prune/importance.js';
import { checkTargetLatency, prepareForPruning, prune, type PruneReport } from '../../passes/prune/index.js';
import { RECOVERY, type Recovery } from '../../passes/prune/recovery.js';
import type { TrainProgress } from '../../passes/train/types.js';
import { compactSamples } from '../../data/compact.js';
import { trainingFolder } from '../../fit/calibration.js';
import type { Sample } from '../../data/inputs.js';
import { NO_SPEEDUP_NOTE, UNSTRUCTURED_METHODS, type UnstructuredMethod } from '../../passes/prune/unstructured.js';
import { FREEZE_STRIDE, frozenNote } from '../../passes/train/freeze.js';
import { freezeStrideHelp, freezeStrideOption, parseShapes, printJson, trainRamOption } from '../output.js';
import { describeFigures, describeJudged, parseTask, TASK_NAMES } from '../../fidelity/index.js';
import { parseRound, type Round } from '../../passes/prune/round.js';
import { buildLatencyTables, defaultLatencyCacheDir } from '../../analyze/latency/index.js';
import { checkFaster, describeSpeed, type SpeedCheck } from '../../evaluate/faster.js';

interface Args {
  model: string;
  output: string;
  structured?: number;
  'target-macs'?: number;
  'target-latency'?: string;
  unstructured?: number;
  'unstructured-method': UnstructuredMethod;
  global?: boolean;
  nm?: string;
  importance: Importance;
  calib?: string;
  'calib-count': number;
  recover: Recovery;
  'train-minutes'?: number;
  'train-ram-mb'?: number;
  'train-freeze-stride'?: number;
  'train-data'?: string;
  allocation: 'uniform' | 'sensitivity';
  steps: number;
  round: string;
  shape?: string[];
  threads: number;
  json?: boolean;
  task: string;
  'verify-speed': boolean;
}

/** --target-latency: '0.5x' (a fraction of the original's measured latency) or '40ms'. */
export function parseTargetLatency(v: string): { fraction: number } | { ms: number } {
  const m = /^\s*(-?\d*\.?\d+(?:e-?\d+)?)\s*(x|ms)\s*$/i.exec(v);
  if (!m)
    throw new EdgefitError(
      'USAGE',
      `bad --target-latency '${v}': give a fraction of the original's measured latency (0.5x) or a time (40ms)`,
    );
  const n = Number(m[1]);
  const t = m[2]!.toLowerCase() === 'x' ? { fraction: n } : { ms: n };
  checkTargetLatency(t); // before any table is measured
  return t;
}

function summary(r: PruneReport, out: string, speed: SpeedCheck | null): string {
  const syn = r.calibration.synthetic ? ' (synthetic inputs, not real data)' : '';
  const pct = (a: number | null, b: number | null) => (a !== null && b ? `${((a / b) * 100).toFixed(1)}%` : '?');
  const lines = [
    `pruned -> ${out}`,
    `params ${r.params.before} -> ${r.params.after} (${pct(r.params.after, r.params.before)})`,
    `MACs ${r.macs.before ?? '?'} -> ${r.macs.after ?? '?'} (${pct(r.macs.after, r.macs.before)})`,
    ...(r.shapeFold.folded
      ? [
          `shapes computed at run time made constant: ${r.shapeFold.folded}` +
            (r.shapeFold.keptDynamic ? ` (${r.shapeFold.keptDynamic} Reshapes keep the model's dynamic dims as 0/-1 entries)` : '') +
            (r.shapeFold.leftDynamic.length ? `; ${r.shapeFold.leftDynamic.length} depend on a dynamic dim and stay computed` : ''),
        ]
      : []),
    `groups: ${r.groups.pruned.length} pruned, ${r.groups.skipped.length} unprunable of ${r.groups.total}`,
    ...r.groups.skipped.slice(0, 12).map((g) => `  kept whole: ${g.group} (${g.size}): ${g.reasons[0]}`),
    ...(Object.values(r.exactFolds).some((n) => n > 0)
      ? [
          `exact folds: ${Object.entries(r.exactFolds)
            .filter(([, n]) => n > 0)
            .map(([k, n]) => `${n} ${k}`)
            .join(
              ', ',
            )} (outputs unchanged${r.foldSpeedup !== null ? `; ${r.foldSpeedup.toFixed(2)}x the given model's latency before any cut` : ''})`,
        ]
      : []),
    `graph surgery ${r.surgeryMs.toFixed(0)} ms`,
    ...(r.latency
      ? [
          // ratios: the tables' milliseconds are the box as it was when they were measured (cached, load-corrected)
          `latency tables (of the folded model): ` +
            `${r.latency.targetMs !== null ? `target ${(r.latency.targetMs / r.latency.originalMs).toFixed(3)}x, ` : ''}` +
            `predicted ${(r.latency.predictedMs / r.latency.originalMs).toFixed(3)}x` +
            `${r.foldSpeedup !== null ? ` (${((r.latency.predictedMs / r.latency.originalMs) * r.foldSpeedup).toFixed(3)}x of the given model)` : ''}`,
        ]
      : []),
    ...(speed ? [describeSpeed(speed)] : []),
    r.fidelity
      ? `fidelity${syn}: cosine ${r.fidelity.cosine.toFixed(5)} (pooled ${r.fidelity.pooledCosine.toFixed(5)}), rel. L2 ${r.fidelity.relL2.toFixed(4)}` +
        `${r.fidelity.maskIoU !== null ? `, mask IoU@0.3 ${r.fidelity.maskIoU.toFixed(4)}` : ''}` +
        `${r.fidelity.top1Agreement !== null ? `, top-1 agreement ${(r.fidelity.top1Agreement * 100).toFixed(1)}%` : ''}` +
        ` over ${r.fidelity.samples} calibration samples (the ones pruning used)`
      : 'fidelity: not measured',
    ...(r.fidelity?.task
      ? [
          `task ${r.fidelity.task.task} (${r.fidelity.task.auto ? `auto-detected: ${r.fidelity.task.reason}` : 'given'}): ` +
            `${describeFigures(r.fidelity.task.task, r.fidelity.task.figures)} over the same samples`,
        ]
      : []),
  ];
  for (const [i, d] of r.distill.entries()) {
    const t = d.training;
    const f = (x: typeof d.fidelityBefore) =>
      `cosine ${x.cosine.toFixed(5)}${x.top1Agreement !== null ? `, top-1 ${(x.top1Agreement * 100).toFixed(1)}%` : ''}` +
      `${x.maskIoU !== null ? `, mask IoU ${x.maskIoU.toFixed(4)}` : ''}`;
    lines.push(
      `distillation${r.distill.length > 1 ? ` (step ${i + 1})` : ''}: ${t.steps} steps in ${t.seconds.toFixed(0)} s on ${d.trainSamples} samples ` +
        `${d.crop ? `(${d.crop.join('x')} crops, ` : '('}batch ${t.batch}; step ${t.stepMs.toFixed(1)} ms vs inference ${t.forwardMs.toFixed(1)} ms; ` +
        `peak RSS ${t.peakRssMb} MB${frozenNote(t.frozen)})`,
      `  held-out (${d.heldOutSamples} samples): loss ${t.heldOutBefore.toPrecision(4)} -> ${t.heldOutAfter.toPrecision(4)}; ` +
        (t.judged ? `${describeJudged(t.judged)} (it picked the weights kept); ` : '') +
        `${f(d.fidelityBefore)} -> ${f(d.fidelityAfter)}` +
        (t.improved
          ? ''
          : ` (training did not improve the held-out ${t.judged ? t.judged.name : 'loss'}: the lsq-recovered weights are kept)`),
    );
  }
  if (r.unstructured)
    lines.push(
      `unstructured: ${(r.unstructured.zeroFraction * 100).toFixed(1)}% zeros, gzip ${r.unstructured.gzipBytesBefore} -> ${r.unstructured.gzipBytesAfter} bytes`,
      `note: ${NO_SPEEDUP_NOTE}`,
    );
  return lines.join('\n') + '\n';
}

/** Training progress on stderr, about every 10 % of the budget (stdout stays the report / JSON). */
function progressLine(steps: number): (step: number, p: TrainProgress) => void {
  let last = -1;
  return (step, p) => {
    const tenth = Math.floor((p.seconds / p.budgetSeconds) * 10);
    if (tenth === last && p.heldOut === undefined) return;
    last = tenth;
    process.stderr.write(
      `distill${steps > 1 ? ` ${step}/${steps}` : ''}: step ${p.step}, ${p.seconds.toFixed(0)}/${p.budgetSeconds.toFixed(0)} s, ` +
        `loss ${p.loss.toPrecision(4)}${p.heldOut !== undefined ? `, held-out ${p.heldOut.toPrecision(4)}` : ''}` +
        `${p.score !== undefined ? ` (task score ${p.score.toFixed(4)}${p.finer !== undefined ? `, finer ${p.finer.toFixed(4)}` : ''})` : ''}\n`,
    );
  };
}

export const command: CommandModule<object, Args> = {
  command: 'prune <model>',
  describe: 'structured (channels really removed) and unstructured pruning, with recovery from calibration data',
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'float ONNX model' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'where to write the pruned model' })
      .option('structured', { type: 'number', describe: 'fraction of channels to remove from every prunable group (0..1)' })
      .option('target-macs', { type: 'number', describe: 'fraction of MACs to remove (0..1); the channel ratio is searched' })
      .option('target-latency', {
        type: 'string',
        describe:
          "latency to reach: 0.5x (of the original's, measured here) or 40ms; per-layer widths from latency tables measured on this box",
      })
      .option('unstructured', { type: 'number', describe: 'fraction of weights to zero (no speed-up on CPU; smaller gzip)' })
      .option('unstructured-method', { choices: UNSTRUCTURED_METHODS, default: 'magnitude' as UnstructuredMethod })
      .option('global', { type: 'boolean', describe: 'one global threshold for unstructured sparsity (default: per layer)' })
      .option('nm', { type: 'string', describe: 'N:M sparsity pattern, e.g. 2:4' })
      .option('importance', { choices: IMPORTANCE, default: 'l1' as Importance, describe: 'channel importance' })
      .option('calib', { type: 'string', describe: 'calibration data: folder of images + preprocess.json, or x.npy folder' })
      .option('calib-count', { type: 'number', default: 16, describe: 'calibration samples to use' })
      .option('recover', {
        choices: RECOVERY,
        default: 'none' as Recovery,
        describe: 'repair after pruning: bias correction, least-squares refit, or lsq then distillation from the original (needs --calib)',
      })
      .option('train-minutes', {
        type: 'number',
        describe: '--recover distill: training time in minutes (split over --steps)',
      })
      .option('train-ram-mb', {
        type: 'number',
        describe: '--recover distill: peak RAM of training in MB (default: 60 % of free memory); the batch is split to fit',
      })
      .option('train-freeze-stride', { type: 'number', describe: `--recover distill: ${freezeStrideHelp(FREEZE_STRIDE)}` })
      .option('train-data', {
        type: 'string',
        describe:
          "--recover distill: images to train on, the --calib samples held out (default: a 'train' folder in or beside --calib, else --calib itself, a quarter held out)",
      })
      .option('allocation', {
        choices: ['uniform', 'sensitivity'] as const,
        default: 'uniform' as const,
        describe: 'per-group ratios: uniform, or from measured per-group sensitivity (needs data; slower)',
      })
      .option('steps', { type: 'number', default: 1, describe: 'prune-a-little-then-recover rounds' })
      .option('round', {
        type: 'string',
        default: 'auto',
        describe:
          "round kept widths to a multiple of N, or 'auto': the channel block this CPU's kernels prefer (measured with --target-latency)",
      })
      .option('shape', { type: 'string', array: true, describe: 'input shape name=1x3x640x640 (needed for dynamic dims)' })
      .option('threads', {
        type: 'number',
        default: 2,
        describe: 'onnxruntime threads for calibration runs, the latency tables and the speed check',
      })
      .option('verify-speed', {
        type: 'boolean',
        default: true,
        describe: 'time the pruned model against its input side by side and say whether it is faster (--no-verify-speed skips it)',
      })
      .option('task', {
        type: 'string',
        default: 'auto',
        describe: `what the model is for: auto or ${TASK_NAMES.join(', ')}; the report judges the result by its metric too`,
      })
      .option('json', { type: 'boolean', describe: 'print the report as JSON' }) as never,
  handler: async (a) => {
    if (
      a.structured === undefined &&
      a['target-macs'] === undefined &&
      a['target-latency'] === undefined &&
      a.unstructured === undefined &&
      !a.nm
    ) {
      throw new EdgefitError(
        'USAGE',
        'nothing to do: give --structured R, --target-macs R, --target-latency 0.5x, --unstructured R or --nm 2:4',
      );
    }
    let targetLatency = a['target-latency'] !== undefined ? parseTargetLatency(a['target-latency']) : undefined;
    if (targetLatency && (a.structured !== undefined || a['target-macs'] !== undefined))
      throw new EdgefitError('USAGE', '--target-latency replaces --structured and --target-macs: give one of them');
    const round: Round = parseRound(a.round);
    let nm: [number, number] | undefined;
    if (a.nm) {
      const m = /^(\d+):(\d+)$/.exec(a.nm);
      if (!m || +m[1]! < 1 || +m[1]! >= +m[2]!)
        throw new EdgefitError('USAGE', `bad --nm '${a.nm}': expected N:M with 0 < N < M, e.g. 2:4`);
      nm = [+m[1]!, +m[2]!];
    }
    for (const k of ['structured', 'target-macs', 'unstructured'] as const) {
      const v = a[k];
      if (v !== undefined && !(v >= 0 && v < 1)) throw new EdgefitError('USAGE', `--${k} must be a fraction in [0, 1), got ${v}`);
    }
    const trainMinutes = a['train-minutes'];
    if (a.recover === 'distill') {
      if (trainMinutes === undefined) throw new EdgefitError('USAGE', '--recover distill needs --train-minutes N');
      if (!(trainMinutes > 0 && Number.isFinite(trainMinutes)))
        throw new EdgefitError('USAGE', `--train-minutes must be a positive number of minutes, got ${trainMinutes}`);
      if (!a.calib)
        throw new EdgefitError('DATA', '--recover distill trains on real data and none was given', { remedy: { option: 'calib' } });
    } else if (trainMinutes !== undefined) throw new EdgefitError('USAGE', '--train-minutes is for --recover distill');
    else if (a['train-data'] !== undefined) throw new EdgefitError('USAGE', '--train-data is for --recover distill');
    const trainRamMb = trainRamOption(a['train-ram-mb']);
    if (trainRamMb !== undefined && a.recover !== 'distill') throw new EdgefitError('USAGE', '--train-ram-mb is for --recover distill');
    const freezeStride = freezeStrideOption(a['train-freeze-stride']);
    if (freezeStride !== undefined && a.recover !== 'distill')
      throw new EdgefitError('USAGE', '--train-freeze-stride is for --recover distill');
    if (!Number.isInteger(a['calib-count']) || a['calib-count'] < 1)
      throw new EdgefitError('USAGE', '--calib-count must be a positive integer');
    if (!Number.isInteger(a.threads) || a.threads < 1) throw new EdgefitError('USAGE', '--threads must be a positive integer');
    checkWritable(a.output); // before any work, not after the pruning
    const model = normalize(loadModel(a.model));
    // calibration data defines the dims the model leaves free (an explicit --shape wins)
    const shapes = a.calib ? dataShapes(a.calib, modelInputs(model), parseShapes(a.shape)) : parseShapes(a.shape);
    const dims = inputShapes(model, shapes);
    for (const [k, v] of dims) shapes.set(k, v);
    let samples;
    let trainSamples: Sample[] | undefined;
    let synthetic = false;
    if (a.calib) {
      if (dims.size !== 1) throw new EdgefitError('USAGE', `--calib feeds one input, the model has ${dims.size}`);
      samples = loadInputSet(a.calib, modelInputs(model), { shapes, limit: a['calib-count'] }).samples;
      const trainData = a.recover === 'distill' ? (a['train-data'] ?? trainingFolder(a.calib)) : undefined;
      // held as bytes: a quarter of the float32 memory (compact.ts)
      if (trainData) trainSamples = compactSamples(loadInputSet(trainData, modelInputs(model), { shapes }).samples);
    } else {
      samples = syntheticSamples(model, shapes, Math.min(a['calib-count'], 8));
      synthetic = true;
    }
    // tables only where they are used: a latency target needs them, and 'auto' then takes their measured block
    // the speed check compares with the model as given (the exact folds are part of what it gains)
    const given = a['verify-speed'] || targetLatency ? serializeModel(model) : null;
    const input = a['verify-speed'] ? given : null;
    const prepared = targetLatency ? prepareForPruning(model, shapes) : undefined;
    // measured per layer (cached), then mapped through two whole-model probes (a few seconds)
    const tables = targetLatency
      ? await probeTables(model, await buildLatencyTables(model, { shapes, threads: a.threads, cacheDir: defaultLatencyCacheDir() }), {
          shapes,
          threads: a.threads,
        })
      : undefined;
    if (prepared && given && tables && targetLatency) {
      // the tables time the prepared model (in their own load-corrected ms); the target is of the
      // model as given, timed here (about 2 s of it, as the probes are): a fraction of it, or
      // milliseconds made a fraction of it
      const c = await compareLatency(given, serializeModel(model), toFeeds(samples[0]!), runsFor(tables.modelMs), a.threads);
      prepared.speedup = Math.min(1, c.ratio);
      if ('ms' in targetLatency) {
        if (!(targetLatency.ms < c.floatMs))
          throw new EdgefitError(
            'USAGE',
            `the latency target ${targetLatency.ms} ms is not below the model's ${c.floatMs.toFixed(2)} ms measured here (${a.threads} threads)`,
            { remedy: { option: 'targetLatency' } },
          );
        targetLatency = { fraction: targetLatency.ms / c.floatMs };
      }
    }
    const report = await prune(model, {
      structured: a.structured,
      targetLatency,
      tables,
      prepared,
      targetMacs: a['target-macs'],
      unstructured: a.unstructured,
      unstructuredMethod: a['unstructured-method'],
      unstructuredScope: a.global ? 'global' : 'layer',
      nm,
      importance: a.importance,
      recover: a.recover,
      allocation: a.allocation,
      steps: a.steps,
      round,
      shapes,
      samples,
      synthetic,
      threads: a.threads,
      task: parseTask(a.task),
      trainMinutes,
      ...(trainRamMb !== undefined ? { trainRamMb } : {}),
      ...(freezeStride !== undefined ? { freezeStride } : {}),
      trainSamples,
      onTrainProgress: progressLine(a.steps),
    });
    saveModel(model, a.output);
    // every structured prune is timed against its input before it is handed back (issue 17)
    const speed =
      input && report.steps.length && samples.length
        ? await checkFaster(input, serializeModel(model), samples[0]!, {
            threads: a.threads,
            predictedRatio: report.latency
              ? (report.latency.predictedMs / report.latency.originalMs) * (report.foldSpeedup ?? 1)
              : undefined,
          })
        : null;
    if (a.json) {
      printJson({
        input: a.model,
        output: a.output,
        params: report.params,
        macs: report.macs,
        groupsPruned: report.groups.pruned,
        groupsSkipped: report.groups.skipped,
        shapesFolded: report.shapeFold,
        exactFolds: report.exactFolds,
        foldSpeedup: report.foldSpeedup,
        fidelity: report.fidelity,
        calibration: report.calibration,
        surgeryMs: Math.round(report.surgeryMs),
        round: report.round,
        latency: report.latency,
        speed,
        tables: tables ? { block: tables.block, blockSource: tables.blockSource, buildMs: Math.round(tables.buildMs) } : null,
        steps: report.steps.map((s) => ({
          step: s.step,
          ratio: s.ratio,
          allocation: s.allocation,
          threshold: s.threshold,
          by: s.by,
          targetMs: s.targetMs,
          predictedMs: s.predictedMs,
          groups: s.groups.length,
          biasCompensated: s.biasCompensated,
          lsq: s.lsq,
          distill: s.distill,
        })),
        distill: report.distill.length ? report.distill.map((d) => ({ ...d, training: { ...d.training } })) : null,
        unstructured: report.unstructured ? { ...report.unstructured } : null,
      });
    } else process.stdout.write(summary(report, a.output, speed));
  },
};
