// fp16 weight storage, a size-only option: float32 initializers are stored as float16 and cast
// back by a Cast node. onnxruntime folds those casts when the session starts, so compute stays
// float32 and only the file (and the download to the box) halves.
import type { Model } from '../../ir/model.js';
import type { Pass } from '../pass.js';
import { toFloat16 } from './weights.js';
import type { LayerDecision } from './qdq.js';

/** Tensors smaller than this stay float32: a Cast node costs more bytes than it saves. */
const MIN_ELEMENTS = 64;

export function applyFp16(model: Model): LayerDecision[] {
  const g = model.graph;
  const out: LayerDecision[] = [];
  for (const name of [...g.initializerNames()]) {
    const t = g.initializer(name)!;
    if (t.dtype !== 'float32' || g.isGraphInput(name)) continue;
    if (t.size < MIN_ELEMENTS) {
      out.push({ node: name, op: 'initializer', int8: false, why: `kept float32: only ${t.size} elements` });
      continue;
    }
    const half = g.uniqueName(`${name}_fp16`);
    g.setInitializer(toFloat16(t, half));
    g.removeInitializer(name);
    g.addNode(
      { opType: 'Cast', name: `${half}_cast`, inputs: [half], outputs: [name], attrs: { to: { type: 'int', value: 1 } } },
      { before: g.nodes[0] },
    );
    out.push({ node: name, op: 'initializer', int8: false, why: 'stored as float16' });
  }
  return out;
}

export const fp16Pass: Pass<void, { layers: LayerDecision[] }> = {
  name: 'quantize-fp16',
  requires: ['valid-graph', 'float-model'],
  guarantees: ['stays-valid', 'outputs-kept'],
  run(model) {
    const layers = applyFp16(model);
    return { changed: layers.some((l) => l.why === 'stored as float16'), details: { layers } };
  },
};
