// The codec's public face: bytes or files in, IR out, and back.
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { EdgefitError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { writeFileAtomic } from '../util/fs.js';
import { decodeModelProto, encodeModelProto } from './proto.js';
import { modelToProto, protoToModel, type DecodeOptions } from './serde.js';

export { dtypeFromOnnx, dtypeToOnnx, dtypeBytes, isFloatDType, type DType } from '../ir/dtype.js';

export function readModelBytes(path: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new EdgefitError('FILE_NOT_FOUND', `model file not found: ${path}`);
  }
  if (!st.isFile()) throw new EdgefitError('FILE_NOT_FOUND', `not a file: ${path}`);
  if (st.size === 0) throw new EdgefitError('NOT_ONNX', `empty file, not an ONNX model: ${path}`);
  return readFileSync(path);
}

export function parseModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  // protobuf accepts many byte strings; a model must at least start with a field tag of ModelProto
  const first = bytes[0] ?? 0;
  const field = first >> 3;
  if (![1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25].includes(field)) {
    throw new EdgefitError('NOT_ONNX', 'not an ONNX model (the file does not start like a ModelProto)');
  }
  return protoToModel(decodeModelProto(bytes), opts);
}

export function loadModel(path: string): Model {
  const bytes = readModelBytes(path);
  try {
    return parseModel(bytes, { baseDir: dirname(resolve(path)) });
  } catch (e) {
    if (e instanceof EdgefitError) throw new EdgefitError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

export function serializeModel(m: Model): Uint8Array {
  return encodeModelProto(modelToProto(m));
}

/** Encode and write crash-safely (temp, fsync, rename). */
export function saveModel(m: Model, path: string): Uint8Array {
  const bytes = serializeModel(m);
  writeFileAtomic(path, bytes);
  return bytes;
}
