// One call for "understand this model" (normalised by the caller: analysis reads, it never rewrites): infer shapes (static rules, then onnxruntime
// for what they miss), validate, and count costs.
import type { Model } from '../ir/model.js';
import { annotateShapes, applyShapes, isStatic } from '../ir/shapes.js';
import { validateGraph, type ValidationIssue } from '../ir/validate.js';
import { analyzeCost, type ModelCost } from './cost.js';
import { shapesFromOrt } from './ort-shapes.js';

export { analyzeCost, peakActivation, type ModelCost, type LayerCost } from './cost.js';
export {
  buildLatencyTables,
  predictModelMs,
  layerMs,
  predictMs,
  type BuildOptions,
  type LatencyTables,
  type LayerTable,
  type BlockEvidence,
  type TableKey,
} from './latency/index.js';

export interface Analysis extends ModelCost {
  issues: ValidationIssue[];
  unknownOps: string[];
  /** Values whose shapes came from onnxruntime rather than the static rules. */
  shapesFromRuntime: number;
}

export async function analyzeModel(
  model: Model,
  shapes: Map<string, number[]> = new Map(),
  opts: { runtimeFallback?: boolean } = {},
): Promise<Analysis> {
  const inf = annotateShapes(model, { shapes });
  let fromRuntime = 0;
  const inputsKnown = model.graph.runtimeInputs().every((i) => shapes.has(i.name) || (i.type !== null && isStatic(i.type.shape)));
  if (inf.unresolved.length && opts.runtimeFallback !== false && inputsKnown) {
    try {
      const found = await shapesFromOrt(model, shapes, inf.unresolved);
      fromRuntime = found.size;
      if (fromRuntime) {
        applyShapes(model.graph, found);
        annotateShapes(model, { shapes }); // downstream rules can now use them
      }
    } catch {
      // the fallback is best effort: figures stay marked unknown
    }
  }
  const cost = analyzeCost(model);
  if (!inputsKnown) {
    for (const i of model.graph.runtimeInputs()) {
      if (!shapes.has(i.name) && !(i.type && isStatic(i.type.shape))) {
        const dims = (i.type?.shape ?? []).map((d) => (typeof d === 'number' ? String(d) : 'N')).join('x');
        cost.unresolved.unshift(
          `input '${i.name}' has dynamic dims [${(i.type?.shape ?? []).join(', ')}]: give its shape (${i.name}=${dims || 'dims'} with numbers for N)`,
        );
      }
    }
  }
  return { ...cost, issues: validateGraph(model), unknownOps: inf.unknownOps, shapesFromRuntime: fromRuntime };
}
