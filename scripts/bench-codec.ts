// Foundation figures (issue 2): round trip bit-exactness on every real model we have,
// decode + normalise + encode time of PP-OCRv4 rec, and `edgefit inspect` of det end to end.
// Usage: node dist/scripts/bench-codec.js [--runs 15]
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import ort from 'onnxruntime-node';
import { parseModel, serializeModel } from '../src/onnx/index.js';
import { normalize } from '../src/passes/normalize.js';
import { ROOT, OCR_MODELS, CLI } from '../devkit/paths.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 15;
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
};

interface Case {
  name: string;
  file: string;
  feeds: Record<string, number[]>;
}
const cases: Case[] = Object.entries(OCR_MODELS).map(([k, m]) => ({ name: `PP-OCR ${k}`, file: m.file, feeds: { x: [...m.shape] } }));
const mnist = join(ROOT, 'models/mnist-cnn.onnx');
if (existsSync(mnist)) cases.push({ name: 'MNIST CNN', file: mnist, feeds: { x: [1, 1, 28, 28] } });
const zooManifest = join(ROOT, 'test/fixtures/zoo/manifest.json');
if (existsSync(zooManifest)) {
  type Entry = { name: string; file: string; inputs: { name: string; shape: number[]; dtype: string }[] };
  const raw = JSON.parse(readFileSync(zooManifest, 'utf8')) as Entry[] | { models: Entry[] };
  const list = Array.isArray(raw) ? raw : raw.models;
  for (const e of list) {
    if (e.inputs.every((i) => i.dtype === 'float32'))
      cases.push({
        name: e.name,
        file: join(ROOT, 'test/fixtures/zoo', e.file.replace(/^.*\//, '')),
        feeds: Object.fromEntries(e.inputs.map((i) => [i.name, i.shape])),
      });
  }
} else if (existsSync(join(ROOT, 'test/fixtures/zoo'))) {
  console.log('zoo manifest missing; zoo files:', readdirSync(join(ROOT, 'test/fixtures/zoo')).join(' '));
}

async function outputs(bytes: Uint8Array, feeds: Record<string, number[]>): Promise<Uint8Array[]> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2 });
  const f: Record<string, ort.Tensor> = {};
  for (const [name, dims] of Object.entries(feeds)) {
    const n = dims.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = Math.sin(i * 0.0137) * 0.8;
    f[name] = new ort.Tensor('float32', d, dims);
  }
  const out = await s.run(f);
  await s.release();
  return s.outputNames.map((o) => {
    const t = out[o]!.data as Float32Array;
    return new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
  });
}

console.log('## Round trip (decode -> encode, and decode -> normalise -> encode), outputs compared bit for bit');
console.log('| model | file bytes | re-encoded identical | outputs bit-identical | normalised outputs bit-identical |');
console.log('|---|---|---|---|---|');
for (const c of cases) {
  const bytes = readFileSync(c.file);
  const m = parseModel(bytes);
  const enc = serializeModel(m);
  const norm = serializeModel(normalize(parseModel(bytes)));
  const [a, b, n] = [await outputs(bytes, c.feeds), await outputs(enc, c.feeds), await outputs(norm, c.feeds)];
  const eq = (x: Uint8Array[], y: Uint8Array[]) =>
    x.length === y.length && x.every((t, i) => Buffer.compare(Buffer.from(t), Buffer.from(y[i]!)) === 0);
  console.log(
    `| ${c.name} | ${bytes.length} | ${Buffer.compare(bytes, Buffer.from(enc)) === 0 ? 'yes' : 'no'} | ${eq(a, b) ? 'yes' : 'NO'} | ${eq(a, n) ? 'yes' : 'NO'} |`,
  );
}

const rec = readFileSync(OCR_MODELS.rec.file);
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  serializeModel(normalize(parseModel(rec)));
  times.push(performance.now() - t0);
}
console.log(
  `\n## decode + normalise + encode of PP-OCRv4 rec (${(rec.length / 1e6).toFixed(1)} MB): median ${median(times).toFixed(1)} ms over ${runs} runs (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)}); target < 300 ms`,
);

const inspectTimes: number[] = [];
for (let i = 0; i < Math.min(runs, 7); i++) {
  const t0 = performance.now();
  execFileSync(process.execPath, [CLI, 'inspect', OCR_MODELS.det.file, '--shape', 'x=1x3x640x640', '--json'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  inspectTimes.push(performance.now() - t0);
}
console.log(
  `## edgefit inspect det end to end (process start to exit): median ${median(inspectTimes).toFixed(0)} ms over ${inspectTimes.length} runs; target < 1000 ms`,
);
