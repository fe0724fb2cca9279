// The KServe v2 body codec on its own (issue 19): datatypes other than FP32, nested JSON, binary
// inputs used in place when aligned and copied when not, several binary inputs, response encoding.
import t from 'tap';
import { encodeInferResponse, parseInferRequest, ProtocolError, type ModelMeta } from '../../src/serve/protocol.js';

const meta: ModelMeta = {
  inputs: [
    { name: 'ids', datatype: 'INT64', shape: [-1, 4] },
    { name: 'mask', datatype: 'BOOL', shape: [-1, 4] },
    { name: 'h', datatype: 'FP16', shape: [2] },
  ],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1, 2] },
    { name: 'z', datatype: 'INT32', shape: [1] },
  ],
};

function bin(doc: unknown, raws: Uint8Array[], pad = 0): { body: Buffer; hl: number } {
  const h = Buffer.from(JSON.stringify(doc) + ' '.repeat(pad));
  const total = raws.reduce((n, r) => n + r.length, h.length);
  // a body in an ArrayBuffer of its own, as the server reads it
  const body = Buffer.from(new ArrayBuffer(total));
  h.copy(body, 0);
  let off = h.length;
  for (const r of raws) {
    body.set(r, off);
    off += r.length;
  }
  return { body, hl: h.length };
}

t.test('JSON: INT64, BOOL (true/false or 0/1), nested rows; FP16 must come binary', async (t) => {
  const doc = {
    id: 'a',
    inputs: [
      {
        name: 'ids',
        datatype: 'INT64',
        shape: [2, 4],
        data: [
          [1, 2, 3, 4],
          [5, 6, 7, 8],
        ],
      },
      { name: 'mask', datatype: 'BOOL', shape: [1, 4], data: [true, false, 1, 0] },
      { name: 'h', datatype: 'FP16', shape: [2], data: [1, 2] },
    ],
  };
  t.throws(() => parseInferRequest(Buffer.from(JSON.stringify(doc)), null, meta), /input 'h': FP16 data must be sent binary/);
  const h16 = new Uint16Array([0x3c00, 0x4000]);
  const { body, hl } = bin(
    { ...doc, inputs: [doc.inputs[0], doc.inputs[1], { name: 'h', datatype: 'FP16', shape: [2], parameters: { binary_data_size: 4 } }] },
    [new Uint8Array(h16.buffer)],
  );
  const r = parseInferRequest(body, hl, meta);
  t.equal(r.id, 'a');
  t.same(Array.from(r.inputs.ids!.data as BigInt64Array), [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
  t.same(r.inputs.ids!.shape, [2, 4]);
  t.same(Array.from(r.inputs.mask!.data as Uint8Array), [1, 0, 1, 0]);
  t.equal(r.inputs.h!.dtype, 'float16');
  t.same(Array.from(r.inputs.h!.data as Uint16Array), [0x3c00, 0x4000]);
  t.throws(
    () => parseInferRequest(Buffer.from(JSON.stringify({ inputs: [{ ...doc.inputs[0], data: [1.5, 2, 3, 4, 5, 6, 7, 8] }] })), null, meta),
    /data\[0\] is not an integer/,
  );
  const missing = JSON.stringify({ inputs: [doc.inputs[0], doc.inputs[1]] });
  t.throws(() => parseInferRequest(Buffer.from(missing), null, meta), /missing input 'h'/);
  const twice = JSON.stringify({ inputs: [doc.inputs[0], doc.inputs[0]] });
  t.throws(() => parseInferRequest(Buffer.from(twice), null, meta), /input 'ids' given twice/);
  const e = t.throws(() => parseInferRequest(Buffer.from('[1,2]'), null, meta)) as ProtocolError;
  t.equal(e.status, 400);
});

t.test('binary: several inputs in order; aligned ones are views of the body, misaligned ones copies', async (t) => {
  const ids = new BigInt64Array([1n, 2n, 3n, 4n]);
  const mask = new Uint8Array([1, 1, 0, 0]);
  const h = new Uint16Array([1, 2]);
  const inputs = [
    { name: 'ids', datatype: 'INT64', shape: [1, 4], parameters: { binary_data_size: 32 } },
    { name: 'mask', datatype: 'BOOL', shape: [1, 4], parameters: { binary_data_size: 4 } },
    { name: 'h', datatype: 'FP16', shape: [2], parameters: { binary_data_size: 4 } },
  ];
  const probe = JSON.stringify({ inputs }).length;
  const aligned = bin({ inputs }, [new Uint8Array(ids.buffer), mask, new Uint8Array(h.buffer)], (8 - (probe % 8)) % 8);
  const r = parseInferRequest(aligned.body, aligned.hl, meta);
  t.equal(r.inputs.ids!.data.buffer, aligned.body.buffer, 'the aligned int64 input is a view of the body');
  t.same(Array.from(r.inputs.ids!.data as BigInt64Array), [1n, 2n, 3n, 4n]);
  t.same(Array.from(r.inputs.mask!.data as Uint8Array), [1, 1, 0, 0]);
  t.same(Array.from(r.inputs.h!.data as Uint16Array), [1, 2]);
  const off = bin({ inputs }, [new Uint8Array(ids.buffer), mask, new Uint8Array(h.buffer)], ((8 - (probe % 8)) % 8) + 1);
  const r2 = parseInferRequest(off.body, off.hl, meta);
  t.not(r2.inputs.ids!.data.buffer, off.body.buffer, 'a misaligned input is copied');
  t.same(Array.from(r2.inputs.ids!.data as BigInt64Array), [1n, 2n, 3n, 4n]);
  t.throws(
    () => parseInferRequest(aligned.body.subarray(0, aligned.hl), null, meta),
    /binary_data_size but no Inference-Header-Content-Length/,
  );
});

t.test('responses: JSON by default, binary when asked, requested outputs only', async (t) => {
  const outputs = {
    y: { dtype: 'float32' as const, shape: [1, 2], data: new Float32Array([0.25, 0.75]) },
    z: { dtype: 'int32' as const, shape: [1], data: new Int32Array([7]) },
  };
  const by = { model: 'm', version: 'v3', level: 1, label: 'int8' };
  const json = encodeInferResponse({ inputs: {}, outputs: null, binaryDefault: false, shmInputs: {}, id: 'q' }, outputs, by, {
    run_ms: 1.5,
  });
  t.equal(json.headers['content-type'], 'application/json');
  const doc = JSON.parse(Buffer.concat(json.chunks).toString()) as Record<string, unknown>;
  t.same(doc, {
    model_name: 'm',
    model_version: 'v3',
    id: 'q',
    parameters: { level: 1, label: 'int8', run_ms: 1.5 },
    outputs: [
      { name: 'y', datatype: 'FP32', shape: [1, 2], data: [0.25, 0.75] },
      { name: 'z', datatype: 'INT32', shape: [1], data: [7] },
    ],
  });
  const b = encodeInferResponse({ inputs: {}, outputs: [{ name: 'y', binary: true }], binaryDefault: false, shmInputs: {} }, outputs, by);
  const hl = Number(b.headers['inference-header-content-length']);
  const all = Buffer.concat(b.chunks);
  t.equal(Number(b.headers['content-length']), all.length);
  const head = JSON.parse(all.subarray(0, hl).toString()) as { outputs: { name: string; parameters: { binary_data_size: number } }[] };
  t.same(
    head.outputs.map((o) => [o.name, o.parameters.binary_data_size]),
    [['y', 8]],
    'only y, binary',
  );
  t.same(Array.from(new Float32Array(Uint8Array.from(all.subarray(hl)).buffer)), [0.25, 0.75]);
  t.equal(b.chunks[1]!.buffer, outputs.y.data.buffer, 'the output bytes are written from its own memory, not copied');
});
