// Input sets: what a model is fed during evaluation. One loader per on-disk format, all ending
// in the same InputSet (samples conformed to the model's inputs, optional labels), so the
// evaluator never cares where data came from.
import { existsSync, readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';
import { EdgefitError } from '../errors.js';
import { checkDims } from '../ir/dims.js';
import { halfToFloat } from '../ir/float16.js';
import { isNdDType, type NdArray, type NdDType, shapeStr, splitAxis0 } from './ndarray.js';
import { readNpy } from './npy.js';
import { readNpz } from './npz.js';
import { decodeImage, IMAGE_EXTS, parsePreprocessSpec, preprocessImage, type PreprocessSpec } from './image.js';
import { rng, syntheticArray } from './synthetic.js';

/** A model input as the data layer needs it: name, dtype and shape (number = fixed, else free). */
export interface ModelInput {
  name: string;
  dtype: string;
  shape: (number | string | null)[] | null;
}

/** One feed: input name -> array. */
export type Sample = Record<string, NdArray>;

export const INPUT_KINDS = ['synthetic', 'npy', 'npz', 'images', 'labelled-images', 'labelled-npy'] as const;
export type InputKind = (typeof INPUT_KINDS)[number];

export interface InputSet {
  /** 'synthetic' or the data path: what reports print as `inputs`. */
  source: string;
  kind: InputKind;
  /** True when the values are made up: every figure derived from them must say so. */
  synthetic: boolean;
  samples: Sample[];
  /** Class index per sample, when the data is labelled. */
  labels?: number[];
  /** Class folder names in label order (labelled image folders). */
  classNames?: string[];
  /** The file each sample was read from, in sample order (image folders): what a per-image report names. */
  files?: string[];
}

export interface LoadOptions {
  /** Values for dynamic dims, per input name (e.g. from --shape x=1x3x640x640). */
  shapes?: Map<string, number[]>;
  /** Keep only the first N samples. */
  limit?: number;
}

export interface SyntheticOptions extends LoadOptions {
  /** How many samples (default 4). */
  count?: number;
  /** PRNG seed (default 1). */
  seed?: number;
}

/**
 * The concrete shape to feed for a model input: --shape values first (they must agree with the
 * model's fixed dims), else the model's dims; an unnamed-size leading dim defaults to batch 1;
 * any other free dim needs --shape.
 */
export function resolveShape(input: ModelInput, shapes?: Map<string, number[]>): number[] {
  const given = shapes?.get(input.name);
  const declared = input.shape;
  if (given) {
    checkDims(input.name, given);
    if (declared) {
      if (declared.length !== given.length) {
        throw new EdgefitError(
          'SHAPE',
          `the shape given for input '${input.name}' (${given.join('x')}) has rank ${given.length}, the model's input is ${shapeStr(declared)} (rank ${declared.length})`,
        );
      }
      declared.forEach((d, i) => {
        if (typeof d === 'number' && d > 0 && d !== given[i]) {
          throw new EdgefitError(
            'SHAPE',
            `the shape given for input '${input.name}' (${given.join('x')}) disagrees with the model's fixed input shape ${shapeStr(declared)}`,
          );
        }
      });
    }
    return [...given];
  }
  if (!declared)
    throw new EdgefitError('SHAPE', `input '${input.name}' has no declared shape`, { remedy: { option: 'shapes', input: input.name } });
  return declared.map((d, i) => {
    if (typeof d === 'number' && d > 0) return d;
    if (i === 0) return 1;
    const example = declared.map((x, j) => (typeof x === 'number' && x > 0 ? x : j === 0 ? 1 : 224)).join('x');
    throw new EdgefitError('SHAPE', `input '${input.name}' has dynamic dims ${shapeStr(declared)}`, {
      remedy: { option: 'shapes', input: input.name, example },
    });
  });
}

function wantDType(input: ModelInput): NdDType {
  if (!isNdDType(input.dtype))
    throw new EdgefitError('UNSUPPORTED', `input '${input.name}' has dtype ${input.dtype}, which edgefit cannot feed`);
  return input.dtype;
}

export function synthesizeInputs(inputs: readonly ModelInput[], opts: SyntheticOptions = {}): InputSet {
  const rand = rng(opts.seed ?? 1);
  const count = opts.limit !== undefined ? Math.min(opts.limit, opts.count ?? 4) : (opts.count ?? 4);
  const shapes = inputs.map((i) => resolveShape(i, opts.shapes));
  const samples: Sample[] = [];
  for (let s = 0; s < count; s++) {
    const sample: Sample = {};
    inputs.forEach((inp, k) => (sample[inp.name] = syntheticArray(wantDType(inp), shapes[k]!, rand)));
    samples.push(sample);
  }
  return { source: 'synthetic', kind: 'synthetic', synthetic: true, samples };
}

/** Convert the two conversions numpy users hit by default (float64, int32) when lossless enough. */
function castTo(a: NdArray, want: NdDType, what: string): NdArray {
  if (a.dtype === want) return a;
  if (want === 'float32' && (a.dtype === 'float64' || a.dtype === 'float16' || a.dtype === 'uint8')) {
    const src = a.data as Float64Array;
    return { dtype: 'float32', shape: a.shape, data: Float32Array.from(src) };
  }
  if (want === 'int64' && (a.dtype === 'int32' || a.dtype === 'uint8' || a.dtype === 'int8' || a.dtype === 'int16')) {
    const src = a.data as Int32Array;
    return { dtype: 'int64', shape: a.shape, data: BigInt64Array.from(src, (v) => BigInt(v)) };
  }
  throw new EdgefitError('SHAPE', `${what}: data is ${a.dtype} but the model input wants ${want}`);
}

/** Does a concrete array shape fit a model input (fixed dims equal, free dims anything)? */
function fits(shape: readonly number[], declared: ModelInput['shape'], forced?: number[]): boolean {
  const want = forced ?? declared;
  if (!want) return true;
  if (want.length !== shape.length) return false;
  return want.every((d, i) => !(typeof d === 'number' && d > 0) || d === shape[i]);
}

/**
 * Turn one stored array for an input into samples: a stack [N, ...sample] is split along axis 0
 * into chunks of the model's batch size (1 when the batch dim is free), so that labels line up
 * with samples one to one.
 */
function toSamples(a: NdArray, input: ModelInput, what: string, shapes?: Map<string, number[]>): NdArray[] {
  const arr = castTo(a, wantDType(input), what);
  const declared = input.shape;
  const forced = shapes?.get(input.name);
  const rank = (forced ?? declared)?.length;
  const expect = forced ? forced.join('x') : declared ? shapeStr(declared) : '?';
  if (rank === undefined) return [arr];
  if (arr.shape.length === rank + 1) {
    // a stack of whole samples
    const parts = splitAxis0(arr, 1).map((p) => ({ ...p, shape: p.shape.slice(1) }));
    for (const p of parts)
      if (!fits(p.shape, declared, forced)) {
        if (forced && fits(p.shape, declared)) throw contradiction(input, forced, p.shape, what);
        throw new EdgefitError('SHAPE', `${what}: samples of shape ${shapeStr(p.shape)} do not fit input '${input.name}' ${expect}`);
      }
    return parts;
  }
  if (arr.shape.length !== rank) {
    throw new EdgefitError('SHAPE', `${what}: data of shape ${shapeStr(arr.shape)} does not fit input '${input.name}' ${expect}`);
  }
  const d0 = (forced ?? declared)![0];
  const batch = typeof d0 === 'number' && d0 > 0 ? d0 : 1;
  const n = arr.shape[0] ?? 1;
  if (n % batch !== 0)
    throw new EdgefitError('SHAPE', `${what}: ${n} rows do not split into batches of ${batch} for input '${input.name}'`);
  const parts = n === batch ? [arr] : splitAxis0(arr, batch);
  for (const p of parts)
    if (!fits(p.shape, declared, forced)) {
      if (forced && fits(p.shape, declared)) throw contradiction(input, forced, [forced[0]!, ...p.shape.slice(1)], what);
      throw new EdgefitError('SHAPE', `${what}: data of shape ${shapeStr(arr.shape)} does not fit input '${input.name}' ${expect}`);
    }
  return parts;
}

/** Arrays cannot be resized: a given shape that the model allows but the data does not hold is the caller's contradiction. */
function contradiction(input: ModelInput, given: readonly number[], data: readonly number[], what: string): EdgefitError {
  return new EdgefitError(
    'SHAPE',
    `input '${input.name}': the shape given (${given.join('x')}) contradicts the data ${what}, whose samples are ${data.join('x')}`,
    { remedy: { option: 'shapes', input: input.name, example: data.join('x') } },
  );
}

/** Arrays keyed by name -> samples, matching names to model inputs (or the only input). */
function arraysToSamples(
  arrays: Map<string, NdArray>,
  inputs: readonly ModelInput[],
  what: string,
  shapes?: Map<string, number[]>,
): Sample[] {
  const byInput = new Map<string, NdArray[]>();
  if (inputs.every((i) => arrays.has(i.name))) {
    for (const i of inputs) byInput.set(i.name, toSamples(arrays.get(i.name)!, i, `${what}:${i.name}`, shapes));
  } else if (inputs.length === 1) {
    // one input: every array is more samples for it, in name order
    const list: NdArray[] = [];
    for (const [k, a] of [...arrays].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      list.push(...toSamples(a, inputs[0]!, `${what}:${k}`, shapes));
    byInput.set(inputs[0]!.name, list);
  } else {
    const missing = inputs.filter((i) => !arrays.has(i.name)).map((i) => i.name);
    throw new EdgefitError('DATA', `${what}: no array for model input(s) ${missing.join(', ')} (found ${[...arrays.keys()].join(', ')})`);
  }
  const counts = [...byInput.values()].map((l) => l.length);
  if (new Set(counts).size > 1) throw new EdgefitError('DATA', `${what}: inputs have different sample counts (${counts.join(', ')})`);
  const n = counts[0] ?? 0;
  const samples: Sample[] = [];
  for (let s = 0; s < n; s++) {
    const sample: Sample = {};
    for (const [name, list] of byInput) sample[name] = list[s]!;
    samples.push(sample);
  }
  return samples;
}

function readLabels(path: string): number[] {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n').map((l) => l.trim());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.map((l, i) => {
    if (!/^\d+$/.test(l)) throw new EdgefitError('DATA', `${path}:${i + 1}: label '${l.slice(0, 20)}' is not a non-negative integer`);
    return Number(l);
  });
}

/**
 * The folder's preprocess.json; a --shape for the input wins over its "size" (e.g. a det model
 * calibrated at 320x320 from a folder written for 640x640), so pruning, quantization and
 * evaluation given the same --shape see the same tensors.
 */
function readSpec(dir: string, input: ModelInput, shapes?: Map<string, number[]>): PreprocessSpec {
  const spec = parseSpecFile(dir);
  const forced = shapes?.get(input.name);
  if (forced?.length !== 4) return spec;
  const [h, w] = spec.layout === 'NCHW' ? [forced[2]!, forced[3]!] : [forced[1]!, forced[2]!];
  return { ...spec, size: [h, w] };
}

function parseSpecFile(dir: string): PreprocessSpec {
  const p = join(dir, 'preprocess.json');
  if (!existsSync(p))
    throw new EdgefitError('DATA', `${dir}: an image folder needs a preprocess.json (size, layout, color, scale, mean, std)`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new EdgefitError('DATA', `${p}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parsePreprocessSpec(v, p);
}

const isImage = (f: string) => (IMAGE_EXTS as readonly string[]).includes(extname(f).toLowerCase());

function imageInput(inputs: readonly ModelInput[], dir: string): ModelInput {
  if (inputs.length !== 1)
    throw new EdgefitError('DATA', `${dir}: image folders feed single-input models; this one has ${inputs.length} inputs`);
  return inputs[0]!;
}

const isFixed = (d: number | string | null): boolean => typeof d === 'number' && d > 0;

/**
 * The shapes to feed a model with this data: a shape the caller gives wins (images are resized to
 * it; arrays must hold it, else loading fails naming both shapes); an input whose dims beyond the
 * batch are free takes the shape of the data's first sample (an [N,3,640,640] .npy, or an image
 * folder's preprocess.json size, with batch 1), so calibration data defines what the model does not.
 * Inputs the model fixes, and those the data need not define, are left to resolveShape.
 */
export function dataShapes(
  path: string,
  inputs: readonly ModelInput[],
  given: ReadonlyMap<string, number[]> = new Map(),
): Map<string, number[]> {
  const out = new Map(given);
  const open = inputs.filter((i) => !given.has(i.name) && i.shape !== null && !i.shape.every((d, k) => k === 0 || isFixed(d)));
  if (!open.length) return out;
  const first = loadInputSet(path, inputs, { shapes: out, limit: 1 }).samples[0]!;
  for (const i of open) {
    const a = first[i.name];
    if (a) out.set(i.name, [...a.shape]);
  }
  return out;
}

/**
 * Load data for a model from a path:
 * - file.npz: arrays named after inputs (or any names, for a single-input model);
 * - file.npy: samples for the only input;
 * - folder with x.npy (or <input>.npy) + labels.txt: labelled samples;
 * - folder of .npy files: named after inputs, else each file is more samples for the only input;
 * - folder of images + preprocess.json; with one subfolder of images per class: labelled.
 */
export function loadInputSet(path: string, inputs: readonly ModelInput[], opts: LoadOptions = {}): InputSet {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new EdgefitError('DATA', `cannot read data ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  let set: InputSet;
  if (st.isFile()) {
    const ext = extname(path).toLowerCase();
    if (ext === '.npz')
      set = { source: path, kind: 'npz', synthetic: false, samples: arraysToSamples(readNpz(path), inputs, path, opts.shapes) };
    else if (ext === '.npy')
      set = {
        source: path,
        kind: 'npy',
        synthetic: false,
        samples: arraysToSamples(new Map([[basename(path, '.npy'), readNpy(path)]]), inputs, path, opts.shapes),
      };
    else throw new EdgefitError('DATA', `${path}: data must be a .npy or .npz file, or a folder`);
  } else if (st.isDirectory()) {
    set = loadFolder(path, inputs, opts);
  } else throw new EdgefitError('DATA', `${path}: not a file or folder`);
  if (opts.limit !== undefined && set.samples.length > opts.limit) {
    set.samples = set.samples.slice(0, opts.limit);
    if (set.labels) set.labels = set.labels.slice(0, opts.limit);
  }
  if (set.samples.length === 0) throw new EdgefitError('DATA', `${path}: holds no samples`);
  refuseNonFinite(set, path);
  return set;
}

/** Whether a float array holds a NaN or an infinity (float16: exponent bits all set). */
export function hasNonFinite(a: { dtype: string; data: unknown }): boolean {
  const d = a.data;
  if (a.dtype === 'float16' && d instanceof Uint16Array) {
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(halfToFloat(d[i]!))) return true;
    return false;
  }
  if (!(d instanceof Float32Array || d instanceof Float64Array)) return false;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return true;
  return false;
}

/**
 * Calibration and judge data must be numbers (issue 20): a NaN sample calibrates NaN scales and
 * gives a NaN fidelity that no floor comparison catches, so an all-NaN .npy once produced "cosine
 * mean NaN" and a fully int8 model. Refused, naming how many samples and the first one (an image
 * folder whose preprocess.json divides by a zero std lands here too).
 */
function refuseNonFinite(set: InputSet, path: string): void {
  let bad = 0;
  let first = '';
  set.samples.forEach((s, i) => {
    const name = Object.keys(s).find((k) => hasNonFinite(s[k]!));
    if (name === undefined) return;
    bad++;
    first ||= `sample ${i}, input '${name}'`;
  });
  if (bad)
    throw new EdgefitError(
      'DATA',
      `${path}: ${bad} of ${set.samples.length} sample(s) hold NaN or infinite values (first: ${first}); models are neither calibrated nor judged on them`,
    );
}

/** A path's stat through symlinks; undefined for a dangling link (skipped like any non-file). */
function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function loadFolder(dir: string, inputs: readonly ModelInput[], opts: LoadOptions): InputSet {
  // what each entry is, through symlinks (a set assembled from links to images elsewhere is a set)
  const entries = readdirSync(dir)
    .sort()
    .map((name) => ({ name, st: statOrUndefined(join(dir, name)) }));
  const files = entries.filter((e) => e.st?.isFile()).map((e) => e.name);
  const npys = files.filter((f) => f.toLowerCase().endsWith('.npy'));
  if (files.includes('labels.txt')) {
    if (!npys.length) throw new EdgefitError('DATA', `${dir}: labels.txt without any .npy samples`);
    const arrays = new Map(npys.map((f) => [basename(f, '.npy'), readNpy(join(dir, f))] as const));
    const samples = arraysToSamples(arrays, inputs, dir, opts.shapes);
    const labels = readLabels(join(dir, 'labels.txt'));
    if (labels.length !== samples.length)
      throw new EdgefitError('DATA', `${dir}: labels.txt has ${labels.length} labels for ${samples.length} samples`);
    return { source: dir, kind: 'labelled-npy', synthetic: false, samples, labels };
  }
  if (npys.length) {
    const arrays = new Map(npys.map((f) => [basename(f, '.npy'), readNpy(join(dir, f))] as const));
    return { source: dir, kind: 'npy', synthetic: false, samples: arraysToSamples(arrays, inputs, dir, opts.shapes) };
  }
  const images = files.filter(isImage);
  const classDirs = entries.filter((e) => e.st?.isDirectory()).map((e) => e.name);
  if (images.length) {
    const input = imageInput(inputs, dir);
    const spec = readSpec(dir, input, opts.shapes);
    const kept = images.slice(0, opts.limit ?? Infinity);
    const samples = kept.map((f) => ({
      [input.name]: conformImage(preprocessImage(decodeImage(join(dir, f)), spec), input, join(dir, f), opts.shapes),
    }));
    return { source: dir, kind: 'images', synthetic: false, samples, files: kept };
  }
  if (classDirs.includes('calibrate') && classDirs.includes('judge') && !existsSync(join(dir, 'preprocess.json')))
    // a fit's calibrate/judge pair (fit reads both halves): other commands take one of them
    throw new EdgefitError('DATA', `${dir} holds a calibrate/ and a judge/ set: give ${join(dir, 'calibrate')} or ${join(dir, 'judge')}`);
  if (classDirs.length) {
    const input = imageInput(inputs, dir);
    const spec = readSpec(dir, input, opts.shapes);
    // label = position in sorted order, numeric names sorted as numbers: '0','180' -> 0,1 (as
    // PP-OCR cls labels them) and '0'..'9' -> 0..9, '2' before '10'
    const numeric = classDirs.every((c) => /^\d+$/.test(c));
    const classNames = numeric ? [...classDirs].sort((a, b) => Number(a) - Number(b)) : classDirs;
    // samples are taken round-robin over the classes, so that a --limit keeps them balanced
    const perClass = classNames.map((c) =>
      readdirSync(join(dir, c))
        .filter(isImage)
        .sort()
        .map((f) => join(dir, c, f)),
    );
    const samples: Sample[] = [];
    const labels: number[] = [];
    const read: string[] = [];
    for (let r = 0; perClass.some((l) => l.length > r); r++) {
      perClass.forEach((files, idx) => {
        const f = files[r];
        if (f === undefined || (opts.limit !== undefined && samples.length >= opts.limit)) return;
        samples.push({ [input.name]: conformImage(preprocessImage(decodeImage(f), spec), input, f, opts.shapes) });
        labels.push(idx);
        read.push(relative(dir, f));
      });
    }
    return { source: dir, kind: 'labelled-images', synthetic: false, samples, labels, classNames, files: read };
  }
  throw new EdgefitError('DATA', `${dir}: no .npy files, images or class subfolders found`);
}

function conformImage(a: NdArray, input: ModelInput, what: string, shapes?: Map<string, number[]>): NdArray {
  const parts = toSamples(a, input, what, shapes);
  return parts[0]!;
}
