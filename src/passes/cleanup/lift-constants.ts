// paddle2onnx and some other exporters put every weight in a Constant node. Analysis and the
// prune/quantize passes look for weights among initializers, so lift them there first.
import type { Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import type { Pass, PassResult } from '../pass.js';

export interface LiftDetails {
  lifted: number;
  bytes: number;
  [k: string]: unknown;
}

function constantValue(attrs: Map<string, import('../../ir/types.js').AttrValue>, name: string): Tensor | undefined {
  const a = attrs.get('value');
  if (a?.type === 'tensor') return a.value.withName(name);
  const f = attrs.get('value_float');
  if (f?.type === 'float') return Tensor.fromFloat32(name, [], [f.value]);
  const fs = attrs.get('value_floats');
  if (fs?.type === 'floats') return Tensor.fromFloat32(name, [fs.value.length], fs.value);
  const i = attrs.get('value_int');
  if (i?.type === 'int') return Tensor.fromInt64(name, [], [i.value]);
  const is = attrs.get('value_ints');
  if (is?.type === 'ints') return Tensor.fromInt64(name, [is.value.length], is.value);
  return undefined; // sparse_value or string forms stay as Constant nodes
}

export const liftConstants: Pass<void, LiftDetails> = {
  name: 'lift-constants',
  // nothing: it runs on every model loaded, before validation reports what is wrong with it.
  // Not 'stays-valid': weights lifted into initializers let validation check widths it could not
  // see before, so a broken model shows more issues after, though lifting broke nothing.
  // Unchecked beyond the table: the lifted initializer keeps the Constant's output name, and the
  // IR version is raised to at least 4 so initializers need not be listed as graph inputs.
  requires: [],
  guarantees: ['outputs-kept', 'no-dense-constants'],
  run(model: Model): PassResult<LiftDetails> {
    const g = model.graph;
    let lifted = 0;
    let bytes = 0;
    for (const n of [...g.nodes]) {
      if (n.opType !== 'Constant' || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
      const out = n.outputs[0];
      if (!out || g.isGraphOutput(out)) continue;
      const t = constantValue(n.attrs, out);
      if (!t) continue;
      g.removeNode(n);
      g.setInitializer(t);
      lifted++;
      bytes += t.byteLength;
    }
    if (lifted && model.irVersion < 4) model.irVersion = 4;
    return { changed: lifted > 0, details: { lifted, bytes } };
  },
};
