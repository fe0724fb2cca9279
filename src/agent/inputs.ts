// Inputs for latency probes and the reference measurement: a real photograph resized into each
// 4-D float input; noise would not exercise data-dependent paths the way a real frame does. The
// photos ship with the package (assets/probe/, see assets/LICENSES.md): coffee.png for colour
// inputs, camera.png (a grey photo) for single-channel ones. They go through the one image loader
// (src/data/image.ts: decode, stretch bilinear resize), scaled to [-1, 1]. Pure data:
// onnxruntime is only ever loaded in the probe child (probe-worker.ts), never in the agent process.
import { fileURLToPath } from 'node:url';
import { decodeImage, preprocessImage, type PreprocessSpec, type Rgba } from '../data/image.js';

const PROBE_DIR = fileURLToPath(new URL('../../../assets/probe/', import.meta.url));
export const PROBE_IMAGES = { color: `${PROBE_DIR}coffee.png`, gray: `${PROBE_DIR}camera.png` } as const;

const decoded = new Map<string, Rgba>();
function photo(path: string): Rgba {
  let img = decoded.get(path);
  if (!img) decoded.set(path, (img = decodeImage(path)));
  return img;
}

/**
 * NCHW float32 tensor of the probe photo, scaled to [-1, 1]; every batch entry holds the same
 * frame, and inputs with other than 1 or 3 channels repeat the RGB planes.
 */
export function imageTensor(dims: readonly number[]): Float32Array {
  const size = dims.reduce((a, b) => a * b, 1);
  if (dims.length !== 4) {
    // not an image input: a smooth ramp keeps values in range
    const out = new Float32Array(size);
    for (let i = 0; i < size; i++) out[i] = (i % 255) / 127.5 - 1;
    return out;
  }
  const [n, c, h, w] = dims as [number, number, number, number];
  const gray = c === 1;
  const ones = gray ? [1] : [1, 1, 1];
  const spec: PreprocessSpec = {
    size: [h, w],
    layout: 'NCHW',
    color: gray ? 'GRAY' : 'RGB',
    scale: 1 / 127.5,
    mean: ones,
    std: ones,
    resize: 'stretch',
  };
  const frame = preprocessImage(photo(gray ? PROBE_IMAGES.gray : PROBE_IMAGES.color), spec).data as Float32Array;
  const plane = h * w;
  const out = new Float32Array(size);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const from = gray ? 0 : ch % 3;
      out.set(frame.subarray(from * plane, (from + 1) * plane), (b * c + ch) * plane);
    }
  }
  return out;
}

/** Dims of each input: from `shapes`, else from the model's metadata with 1 for dynamic dims. */
export function inputDims(inputNames: readonly string[], meta: unknown, shapes: Record<string, number[]>): Record<string, number[]> {
  const list = Array.isArray(meta) ? (meta as Array<{ name?: unknown; shape?: Array<number | string> }>) : [];
  const out: Record<string, number[]> = {};
  for (const name of inputNames) {
    const m = list.find((x) => x.name === name);
    out[name] = shapes[name] ?? (m?.shape ?? [1]).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
  }
  return out;
}
