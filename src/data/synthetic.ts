// Seeded synthetic inputs, for when the user has no data. Values sit in ranges a real input of
// that dtype plausibly takes (float: standard-normal clipped to +-3, like a normalised image;
// integers: small non-negative ids; bool: fair coin), so that activations look like real ones.
// Every figure derived from them is flagged synthetic: they say nothing about accuracy.
import { ND_DTYPES, type NdArray, type NdData, type NdDType, shapeSize } from './ndarray.js';
import { rng } from '../util/rng.js';
import { floatToHalf } from '../ir/float16.js';

export { rng };

/** Largest id drawn for integer inputs: token ids / class ids stay inside any vocabulary. */
const INT_IDS = 10;

export function syntheticArray(dtype: NdDType, shape: number[], rand: () => number): NdArray {
  const n = shapeSize(shape);
  const Ctor = ND_DTYPES[dtype].ctor;
  const data = new Ctor(n) as NdData;
  if (dtype === 'float32' || dtype === 'float64' || dtype === 'float16') {
    const f = dtype === 'float16' ? new Float32Array(n) : (data as Float32Array | Float64Array);
    for (let i = 0; i < n; i += 2) {
      // Box-Muller: two normals per two uniforms
      const u = Math.max(rand(), 1e-12);
      const v = rand();
      const r = Math.sqrt(-2 * Math.log(u));
      f[i] = Math.max(-3, Math.min(3, r * Math.cos(2 * Math.PI * v)));
      if (i + 1 < n) f[i + 1] = Math.max(-3, Math.min(3, r * Math.sin(2 * Math.PI * v)));
    }
    if (dtype === 'float16') {
      const h = data as Uint16Array;
      for (let i = 0; i < n; i++) h[i] = floatToHalf(f[i]!);
    }
  } else if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) data[i] = BigInt(Math.floor(rand() * INT_IDS));
  } else if (dtype === 'bool') {
    for (let i = 0; i < n; i++) data[i] = rand() < 0.5 ? 1 : 0;
  } else if (dtype === 'uint8') {
    for (let i = 0; i < n; i++) data[i] = Math.floor(rand() * 256);
  } else {
    for (let i = 0; i < n; i++) (data as Int32Array)[i] = Math.floor(rand() * INT_IDS);
  }
  return { dtype, shape, data };
}
