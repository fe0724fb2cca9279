// NumPy .npy reader and writer (format versions 1.0, 2.0 and 3.0 as numpy writes them). The
// header is a Python dict literal; we parse only the three keys numpy always emits, strictly, so
// a file numpy did not write fails with a clear DATA error rather than producing garbage.
import { readFileSync } from 'node:fs';
import { EdgefitError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { ND_DTYPES, type NdArray, type NdData, type NdDType, shapeSize } from './ndarray.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const BY_DESCR = new Map<string, NdDType>(Object.entries(ND_DTYPES).map(([k, v]) => [v.descr, k as NdDType]));
// numpy writes '|u1'/'|i1'/'|b1' for one-byte types, but '<u1' and '=' forms appear in the wild
for (const [k, v] of Object.entries(ND_DTYPES)) {
  BY_DESCR.set(v.descr.replace(/^[<|]/, '='), k as NdDType);
  if (v.descr.startsWith('|')) BY_DESCR.set(`<${v.descr.slice(1)}`, k as NdDType);
}

/** Parse .npy bytes. `what` names the source in error messages. */
export function parseNpy(bytes: Uint8Array, what = 'npy data'): NdArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new EdgefitError('DATA', `${what}: not a .npy file (bad magic)`);
  }
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new EdgefitError('DATA', `${what}: truncated .npy header`);
    headerLen = dv.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new EdgefitError('DATA', `${what}: unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (headerStart + headerLen > bytes.length) throw new EdgefitError('DATA', `${what}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new EdgefitError('DATA', `${what}: .npy header is not a numpy dict: ${header.trim().slice(0, 80)}`);
  }
  const dtype = BY_DESCR.get(descr);
  if (!dtype)
    throw new EdgefitError(
      'DATA',
      `${what}: unsupported numpy dtype '${descr}' (big-endian, complex, object and string arrays are not model inputs)`,
    );
  if (fortran === 'True')
    throw new EdgefitError('DATA', `${what}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      if (!/^\d+L?$/.test(s)) throw new EdgefitError('DATA', `${what}: bad shape entry '${s}' in .npy header`);
      return Number.parseInt(s, 10);
    });
  const Ctor = ND_DTYPES[dtype].ctor;
  const n = shapeSize(shape);
  const start = headerStart + headerLen;
  const need = n * Ctor.BYTES_PER_ELEMENT;
  if (bytes.length - start < need) {
    throw new EdgefitError('DATA', `${what}: holds ${bytes.length - start} data bytes, but ${descr}[${shape.join(',')}] needs ${need}`);
  }
  // copy into an aligned buffer of its own: views into a file buffer may be misaligned and would
  // keep the whole file alive
  const copy = new Uint8Array(need);
  copy.set(bytes.subarray(start, start + need));
  return { dtype, shape, data: new Ctor(copy.buffer, 0, n) as NdData };
}

export function readNpy(path: string): NdArray {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new EdgefitError('DATA', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  return parseNpy(bytes, path);
}

/**
 * Current numpy's np.save leaves room in the header for the first axis to grow to this many
 * digits, so a file can be appended to in place; we write the same bytes.
 */
const GROWTH_AXIS_MAX_DIGITS = 21;

/**
 * The .npy header (magic, version, length, dict, padding, newline) byte for byte as np.save
 * writes it: sorted keys, growth room, padded with spaces so the data starts on a 64-byte
 * boundary (a full 64 more when it already would: numpy's arithmetic), format 1.0 unless the
 * header needs 2.0's 32-bit length.
 */
export function npyHeader(shape: readonly number[], descr: string): Uint8Array {
  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  if (shape.length) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  const hlen = dict.length + 1;
  let major = 1;
  let pre = 10;
  let pad = 64 - ((pre + hlen) % 64);
  if (hlen + pad > 0xffff) {
    major = 2;
    pre = 12;
    pad = 64 - ((pre + hlen) % 64);
  }
  const text = dict + ' '.repeat(pad) + '\n';
  const out = new Uint8Array(pre + text.length);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, text.length, true);
  else dv.setUint32(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[pre + i] = text.charCodeAt(i);
  return out;
}

/** Encode as .npy, byte-identical to np.save (C order; data bytes in host order, little-endian on every supported box). */
export function encodeNpy(a: NdArray): Uint8Array {
  const header = npyHeader(a.shape, ND_DTYPES[a.dtype].descr);
  const body = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const out = new Uint8Array(header.length + body.byteLength);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

/** Write crash-safely (temp, fsync, rename). */
export function writeNpy(path: string, a: NdArray): void {
  writeFileAtomic(path, encodeNpy(a));
}
