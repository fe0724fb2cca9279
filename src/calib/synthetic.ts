// Seeded synthetic inputs, for when the caller gives no calibration data. Every figure computed
// from them must say so (`synthetic: true`): noise is not a realistic input, and importance or
// fidelity measured on it is only a proxy.
import { EdgefitError } from '../errors.js';
import type { Model } from '../ir/model.js';
import type { Sample } from './runner.js';
import { rng as seededUniform } from '../util/rng.js';

export { seededUniform };

/** Resolve every runtime input's static shape, from the model or from `shapes` (--shape). */
export function inputShapes(model: Model, shapes: ReadonlyMap<string, number[]> = new Map()): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const v of model.graph.runtimeInputs()) {
    const given = shapes.get(v.name);
    if (given) {
      out.set(v.name, given);
      continue;
    }
    let s = v.type?.shape;
    // a symbolic batch dim alone is the common export: calibration runs one sample at a time
    if (s && s.length > 1 && typeof s[0] !== 'number' && s.slice(1).every((d) => typeof d === 'number' && d > 0)) s = [1, ...s.slice(1)];
    if (!s || s.some((d) => typeof d !== 'number' || d <= 0)) {
      throw new EdgefitError('SHAPE', `input '${v.name}' has dynamic dims ${JSON.stringify(s)}: give --shape ${v.name}=...`);
    }
    out.set(v.name, s as number[]);
  }
  return out;
}

/** `count` samples of smooth-ish noise in [-1, 1] (a low-frequency ramp plus noise, not pure white noise). */
export function syntheticSamples(model: Model, shapes: ReadonlyMap<string, number[]>, count: number, seed = 1234): Sample[] {
  const dims = inputShapes(model, shapes);
  const next = seededUniform(seed);
  const samples: Sample[] = [];
  for (let s = 0; s < count; s++) {
    const sample: Sample = {};
    for (const [name, d] of dims) {
      const size = d.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      const w = d[d.length - 1] ?? 1;
      const phase = next() * 6.28;
      for (let i = 0; i < size; i++) data[i] = 0.5 * Math.sin(phase + (i % w) / 7 + Math.floor(i / w) / 11) + 0.5 * (2 * next() - 1);
      sample[name] = { dims: d, data };
    }
    samples.push(sample);
  }
  return samples;
}
