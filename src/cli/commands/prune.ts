// edgefit prune <in.onnx> -o <out.onnx> ...: thin; the work is in src/passes/prune/.
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { normalize } from '../../passes/normalize.js';
import { loadModel, saveModel } from '../../onnx/index.js';
import { dataShapes, loadInputSet } from '../../data/inputs.js';
import { modelInputs } from '../../runtime/runner.js';
import { inputShapes, syntheticSamples } from '../../data/model-inputs.js';
import { IMPORTANCE, type Importance } from '../../passes/prune/importance.js';
import { prune, type PruneReport } from '../../passes/prune/index.js';
import { RECOVERY, type Recovery } from '../../passes/prune/recovery.js';
import { NO_SPEEDUP_NOTE, UNSTRUCTURED_METHODS, type UnstructuredMethod } from '../../passes/prune/unstructured.js';
import { parseShapes, printJson } from '../output.js';
import { describeFigures, parseTask, TASK_NAMES } from '../../fidelity/index.js';

interface Args {
  model: string;
  output: string;
  structured?: number;
  'target-macs'?: number;
  unstructured?: number;
  'unstructured-method': UnstructuredMethod;
  global?: boolean;
  nm?: string;
  importance: Importance;
  calib?: string;
  'calib-count': number;
  recover: Recovery;
  allocation: 'uniform' | 'sensitivity';
  steps: number;
  round: number;
  shape?: string[];
  threads: number;
  json?: boolean;
  task: string;
}

function summary(r: PruneReport, out: string): string {
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
            .join(', ')} (outputs unchanged)`,
        ]
      : []),
    `graph surgery ${r.surgeryMs.toFixed(0)} ms`,
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
  if (r.unstructured)
    lines.push(
      `unstructured: ${(r.unstructured.zeroFraction * 100).toFixed(1)}% zeros, gzip ${r.unstructured.gzipBytesBefore} -> ${r.unstructured.gzipBytesAfter} bytes`,
      `note: ${NO_SPEEDUP_NOTE}`,
    );
  return lines.join('\n') + '\n';
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
        describe: 'repair after pruning: bias correction or least-squares refit',
      })
      .option('allocation', {
        choices: ['uniform', 'sensitivity'] as const,
        default: 'uniform' as const,
        describe: 'per-group ratios: uniform, or from measured per-group sensitivity (needs data; slower)',
      })
      .option('steps', { type: 'number', default: 1, describe: 'prune-a-little-then-recover rounds' })
      .option('round', { type: 'number', default: 1, describe: 'round kept widths to a multiple of 1, 4 or 8' })
      .option('shape', { type: 'string', array: true, describe: 'input shape name=1x3x640x640 (needed for dynamic dims)' })
      .option('threads', { type: 'number', default: 2, describe: 'onnxruntime threads for calibration runs' })
      .option('task', {
        type: 'string',
        default: 'auto',
        describe: `what the model is for: auto or ${TASK_NAMES.join(', ')}; the report judges the result by its metric too`,
      })
      .option('json', { type: 'boolean', describe: 'print the report as JSON' }) as never,
  handler: async (a) => {
    if (a.structured === undefined && a['target-macs'] === undefined && a.unstructured === undefined && !a.nm) {
      throw new EdgefitError('USAGE', 'nothing to do: give --structured R, --target-macs R, --unstructured R or --nm 2:4');
    }
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
    if (!Number.isInteger(a['calib-count']) || a['calib-count'] < 1)
      throw new EdgefitError('USAGE', '--calib-count must be a positive integer');
    if (!Number.isInteger(a.threads) || a.threads < 1) throw new EdgefitError('USAGE', '--threads must be a positive integer');
    const model = normalize(loadModel(a.model));
    // calibration data defines the dims the model leaves free (an explicit --shape wins)
    const shapes = a.calib ? dataShapes(a.calib, modelInputs(model), parseShapes(a.shape)) : parseShapes(a.shape);
    const dims = inputShapes(model, shapes);
    for (const [k, v] of dims) shapes.set(k, v);
    let samples;
    let synthetic = false;
    if (a.calib) {
      if (dims.size !== 1) throw new EdgefitError('USAGE', `--calib feeds one input, the model has ${dims.size}`);
      samples = loadInputSet(a.calib, modelInputs(model), { shapes, limit: a['calib-count'] }).samples;
    } else {
      samples = syntheticSamples(model, shapes, Math.min(a['calib-count'], 8));
      synthetic = true;
    }
    const report = await prune(model, {
      structured: a.structured,
      targetMacs: a['target-macs'],
      unstructured: a.unstructured,
      unstructuredMethod: a['unstructured-method'],
      unstructuredScope: a.global ? 'global' : 'layer',
      nm,
      importance: a.importance,
      recover: a.recover,
      allocation: a.allocation,
      steps: a.steps,
      round: a.round,
      shapes,
      samples,
      synthetic,
      threads: a.threads,
      task: parseTask(a.task),
    });
    saveModel(model, a.output);
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
        fidelity: report.fidelity,
        calibration: report.calibration,
        surgeryMs: Math.round(report.surgeryMs),
        steps: report.steps.map((s) => ({
          step: s.step,
          ratio: s.ratio,
          allocation: s.allocation,
          threshold: s.threshold,
          groups: s.groups.length,
          biasCompensated: s.biasCompensated,
          lsq: s.lsq,
        })),
        unstructured: report.unstructured ? { ...report.unstructured } : null,
      });
    } else process.stdout.write(summary(report, a.output));
  },
};
