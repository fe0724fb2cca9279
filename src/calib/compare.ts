// Output fidelity of a changed model against its original on the same samples: cosine
// similarity and relative L2 error of the first output, and top-1 agreement when the output is
// a score vector (classification) — what pruning and quantization must preserve.
import type { Model } from '../ir/model.js';
import type { Sample } from '../data/inputs.js';
import { ModelRunner } from '../runtime/runner.js';

export interface Fidelity {
  samples: number;
  /** Mean cosine similarity of the first output (1 = identical direction). */
  cosine: number;
  /** Mean ||y' - y|| / ||y||. */
  relL2: number;
  /** Fraction of samples (rows) whose argmax over the last axis agrees; null for dense maps. */
  top1Agreement: number | null;
  /** Cosine of all samples' outputs pooled (robust when some samples have near-zero outputs). */
  pooledCosine: number;
  /** For single-channel probability maps (text detection): IoU of the maps thresholded at 0.3. */
  maskIoU: number | null;
}

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

export function fidelityOf(ref: readonly Outputs[], got: readonly Outputs[]): Fidelity {
  let cos = 0, rel = 0, agree = 0, rows = 0;
  let pab = 0, paa = 0, pbb = 0, inter = 0, union = 0;
  const dims0 = ref[0]?.dims ?? [];
  const isMap = dims0.length === 4 && dims0[1] === 1;
  const classify = (ref[0]?.dims[ref[0].dims.length - 1] ?? 0) <= 10000 && (ref[0]?.dims.length ?? 0) <= 3 && (ref[0]?.dims.length ?? 0) >= 2;
  for (let i = 0; i < ref.length; i++) {
    const a = ref[i]!.data, b = got[i]!.data;
    let ab = 0, aa = 0, bb = 0, dd = 0;
    for (let j = 0; j < a.length; j++) {
      ab += a[j]! * b[j]!;
      aa += a[j]! * a[j]!;
      bb += b[j]! * b[j]!;
      dd += (a[j]! - b[j]!) ** 2;
      if (isMap) {
        const ma = a[j]! > 0.3, mb = b[j]! > 0.3;
        if (ma && mb) inter++;
        if (ma || mb) union++;
      }
    }
    pab += ab;
    paa += aa;
    pbb += bb;
    cos += aa && bb ? ab / Math.sqrt(aa * bb) : aa === bb ? 1 : 0;
    rel += aa ? Math.sqrt(dd / aa) : 0;
    if (classify) {
      const k = ref[i]!.dims[ref[i]!.dims.length - 1]!;
      for (let r = 0; r < a.length / k; r++) {
        let ia = 0, ib = 0;
        for (let j = 1; j < k; j++) {
          if (a[r * k + j]! > a[r * k + ia]!) ia = j;
          if (b[r * k + j]! > b[r * k + ib]!) ib = j;
        }
        if (ia === ib) agree++;
        rows++;
      }
    }
  }
  const n = ref.length || 1;
  return { samples: ref.length, cosine: cos / n, relL2: rel / n, top1Agreement: classify && rows ? agree / rows : null, pooledCosine: paa && pbb ? pab / Math.sqrt(paa * pbb) : 0, maskIoU: isMap ? (union ? inter / union : 1) : null };
}
