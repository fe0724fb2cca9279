// Inputs for latency probes and the reference measurement: a real photograph (skimage's
// coffee.png, or camera.png) resized into each 4-D float input; noise would not exercise
// data-dependent paths the way a real frame does. Pure data: onnxruntime is only ever loaded in
// the probe child (probe-worker.ts), never in the agent process.
import { existsSync, readFileSync } from 'node:fs';
import { PNG } from 'pngjs';

const IMAGES = ['/usr/lib/python3/dist-packages/skimage/data/coffee.png', '/usr/lib/python3/dist-packages/skimage/data/camera.png'];

function loadImage(): { w: number; h: number; rgba: Uint8Array } | undefined {
  for (const p of IMAGES) {
    if (!existsSync(p)) continue;
    const png = PNG.sync.read(readFileSync(p));
    return { w: png.width, h: png.height, rgba: png.data };
  }
  return undefined;
}

/** NCHW float32 tensor of the image, nearest-resized, scaled to [-1, 1]. */
export function imageTensor(dims: readonly number[]): Float32Array {
  const size = dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  const img = loadImage();
  if (dims.length !== 4 || !img) {
    // not an image input (or no image installed): a smooth ramp keeps values in range
    for (let i = 0; i < size; i++) out[i] = ((i % 255) / 127.5) - 1;
    return out;
  }
  const [n, c, h, w] = dims as [number, number, number, number];
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        const sy = Math.min(img.h - 1, Math.floor((y * img.h) / h));
        for (let x = 0; x < w; x++) {
          const sx = Math.min(img.w - 1, Math.floor((x * img.w) / w));
          const v = img.rgba[(sy * img.w + sx) * 4 + (ch % 3)]!;
          out[((b * c + ch) * h + y) * w + x] = v / 127.5 - 1;
        }
      }
    }
  }
  return out;
}

/** Dims of each input: from `shapes`, else from the model's metadata with 1 for dynamic dims. */
export function inputDims(
  inputNames: readonly string[],
  meta: unknown,
  shapes: Record<string, number[]>,
): Record<string, number[]> {
  const list = Array.isArray(meta) ? (meta as Array<{ name?: unknown; shape?: Array<number | string> }>) : [];
  const out: Record<string, number[]> = {};
  for (const name of inputNames) {
    const m = list.find((x) => x.name === name);
    out[name] = shapes[name] ?? (m?.shape ?? [1]).map((d) => (typeof d === 'number' && d > 0 ? d : 1));
  }
  return out;
}
