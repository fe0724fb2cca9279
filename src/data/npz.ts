// NumPy .npz reader and writer. An .npz is a zip of .npy members; we read the zip ourselves
// (central directory, stored and deflated entries, zip64 fields that np.savez writes) with
// node:zlib, so no dependency and no shell-out to unzip.
import { readFileSync } from 'node:fs';
import { inflateRawSync, deflateRawSync } from 'node:zlib';
import { EdgefitError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import type { NdArray } from './ndarray.js';
import { encodeNpy, parseNpy } from './npy.js';

const EOCD_SIG = 0x06054b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;
const METHODS = { stored: 0, deflated: 8 } as const;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Parse .npz bytes into member name (without .npy) -> array, in archive order. */
export function parseNpz(bytes: Uint8Array, what = 'npz data'): Map<string, NdArray> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (msg: string): never => {
    throw new EdgefitError('DATA', `${what}: ${msg}`);
  };
  // end-of-central-directory record: last 22 bytes plus an optional comment of up to 64 KiB
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
    if (dv.getUint32(i, true) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('not a zip/.npz file (no end-of-central-directory record)');
  let count = dv.getUint16(eocd + 10, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if ((count === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && dv.getUint32(eocd - 20, true) === ZIP64_LOCATOR_SIG) {
    const z = Number(dv.getBigUint64(eocd - 20 + 8, true));
    if (z + 56 > bytes.length || dv.getUint32(z, true) !== ZIP64_EOCD_SIG) fail('bad zip64 end record');
    count = Number(dv.getBigUint64(z + 32, true));
    cdOffset = Number(dv.getBigUint64(z + 48, true));
  }
  const out = new Map<string, NdArray>();
  let p = cdOffset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > bytes.length || dv.getUint32(p, true) !== CEN_SIG) fail('corrupt central directory');
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    let csize = dv.getUint32(p + 20, true);
    let usize = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let local = dv.getUint32(p + 42, true);
    const name = new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: 64-bit values for exactly those fields that hold 0xffffffff, in order
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = dv.getUint16(e, true);
      const len = dv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        if (usize === 0xffffffff) {
          usize = Number(dv.getBigUint64(q, true));
          q += 8;
        }
        if (csize === 0xffffffff) {
          csize = Number(dv.getBigUint64(q, true));
          q += 8;
        }
        if (local === 0xffffffff) local = Number(dv.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    p = eEnd + commentLen;
    if (name.endsWith('/')) continue;
    if (flags & 0x1) fail(`member '${name}' is encrypted`);
    if (local + 30 > bytes.length || dv.getUint32(local, true) !== LOC_SIG) fail(`bad local header for '${name}'`);
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    if (start + csize > bytes.length) fail(`member '${name}' is truncated`);
    const raw = bytes.subarray(start, start + csize);
    let data: Uint8Array;
    if (method === METHODS.stored) data = raw;
    else if (method === METHODS.deflated) {
      try {
        data = inflateRawSync(raw);
      } catch (err) {
        throw new EdgefitError('DATA', `${what}: member '${name}' does not inflate: ${(err as Error).message}`, { cause: err });
      }
    } else fail(`member '${name}' uses zip method ${method}; only stored and deflated are supported`);
    if (data!.length !== usize) fail(`member '${name}' is ${data!.length} bytes, directory says ${usize}`);
    if (crc32(data!) !== crc) fail(`member '${name}' fails its CRC check`);
    const key = name.endsWith('.npy') ? name.slice(0, -4) : name;
    out.set(key, parseNpy(data!, `${what}:${name}`));
  }
  if (out.size === 0) fail('holds no arrays');
  return out;
}

export function readNpz(path: string): Map<string, NdArray> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new EdgefitError('DATA', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  return parseNpz(bytes, path);
}

/** Encode arrays as an .npz (like np.savez, or np.savez_compressed with compress). No zip64: < 4 GiB. */
export function encodeNpz(arrays: Map<string, NdArray> | Record<string, NdArray>, opts: { compress?: boolean } = {}): Uint8Array {
  const entries = arrays instanceof Map ? [...arrays] : Object.entries(arrays);
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [key, arr] of entries) {
    const name = Buffer.from(`${key}.npy`, 'utf8');
    const body = encodeNpy(arr);
    const crc = crc32(body);
    const method = opts.compress ? METHODS.deflated : METHODS.stored;
    const stored = opts.compress ? deflateRawSync(body) : body;
    if (offset + stored.length > 0xfffffff0) throw new EdgefitError('DATA', 'npz writer: archive over 4 GiB needs zip64, not supported');
    const loc = new Uint8Array(30 + name.length);
    const lv = new DataView(loc.buffer);
    lv.setUint32(0, LOC_SIG, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, 0x800, true);
    lv.setUint16(8, method, true);
    lv.setUint16(12, 0x21, true); // 1980-01-01: fixed date keeps the output reproducible
    lv.setUint32(14, crc, true);
    lv.setUint32(18, stored.length, true);
    lv.setUint32(22, body.length, true);
    lv.setUint16(26, name.length, true);
    loc.set(name, 30);
    const cen = new Uint8Array(46 + name.length);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, CEN_SIG, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, 0x800, true);
    cv.setUint16(10, method, true);
    cv.setUint16(14, 0x21, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, stored.length, true);
    cv.setUint32(24, body.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cen.set(name, 46);
    locals.push(loc, stored);
    centrals.push(cen);
    offset += loc.length + stored.length;
  }
  const cdSize = centrals.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, EOCD_SIG, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return Buffer.concat([...locals, ...centrals, eocd]);
}

export function writeNpz(path: string, arrays: Map<string, NdArray> | Record<string, NdArray>, opts: { compress?: boolean } = {}): void {
  writeFileAtomic(path, encodeNpz(arrays, opts));
}
