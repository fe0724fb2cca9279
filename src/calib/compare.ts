// The first output of a model on each sample, for comparing a changed model with its original
// (the figures themselves are src/fidelity's).
import type { Model } from '../ir/model.js';
import type { Sample } from '../data/inputs.js';
import { ModelRunner } from '../runtime/runner.js';

export interface Outputs {
  name: string;
  dims: number[];
  data: Float32Array;
}

export async function runFirstOutput(model: Model, samples: readonly Sample[], threads = 1): Promise<Outputs[]> {
  const r = await ModelRunner.create(model, { threads });
  const name = model.graph.outputs[0]!.name;
  const out: Outputs[] = [];
  try {
    for (const s of samples) {
      const o = (await r.run(s, [name])).get(name)!;
      out.push({ name, dims: o.shape, data: Float32Array.from(o.data) });
    }
  } finally {
    await r.release();
  }
  return out;
}
