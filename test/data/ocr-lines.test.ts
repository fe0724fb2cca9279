// The rec and cls calibrate/judge line sets (scripts/make-ocr-lines.py) are real inputs for the
// real models: exact input sizes, no crop in both sets, the original rec reads the printed text
// of both and the original cls tells upright from upside-down in both (a judge set the original
// model cannot read judges nothing). `edgefit fit <rec|cls> --calib <set>` picks up the two halves.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { OCR, OCR_FIT_SETS, OCR_MODELS, ROOT } from '../../devkit/paths.js';
import { loadInputSet } from '../../src/data/inputs.js';

const REC = join(ROOT, 'test/fixtures/ocr/rec-lines');
const CLS = join(ROOT, 'test/fixtures/ocr/cls-lines');
const SPLITS = ['calibrate', 'judge'] as const;
const X = (shape: (number | string)[]) => [{ name: 'x', dtype: 'float32', shape }];

async function run(file: string, samples: { x?: { data: unknown; shape: number[] } }[]): Promise<Float32Array[]> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2 });
  const out: Float32Array[] = [];
  for (const x of samples) {
    const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x.x!.data as Float32Array, x.x!.shape) });
    out.push(r[s.outputNames[0]!]!.data as Float32Array);
  }
  await s.release();
  return out;
}

/** Levenshtein distance, for the character error rate against the printed text. */
function edits(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = cur;
  }
  return prev[b.length]!;
}

const hashes = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.png'))
    .map((e) =>
      createHash('sha256')
        .update(readFileSync(join(e.parentPath, e.name)))
        .digest('hex'),
    );

t.test('16 + 16 crops each, disjoint, loadable at the model input size', async (t) => {
  for (const [root, shape] of [
    [REC, OCR_MODELS.rec.shape],
    [CLS, OCR_MODELS.cls.shape],
  ] as const) {
    const [a, b] = SPLITS.map((s) => hashes(join(root, s)));
    t.equal(a!.length, 16);
    t.equal(b!.length, 16);
    t.equal(new Set([...a!, ...b!]).size, 32, `${root}: no crop in both sets`);
    for (const s of SPLITS) {
      const set = loadInputSet(join(root, s), X(['N', 3, 48, 'W']), { shapes: new Map([['x', [...shape]]]) });
      t.equal(set.samples.length, 16);
      t.same(set.samples[0]!.x!.shape, shape);
    }
  }
});

t.test('PP-OCRv4 rec reads the printed text of both sets', async (t) => {
  const keys = [
    '',
    ...readFileSync(join(OCR, 'ppocr_keys_v1.txt'), 'utf8')
      .split('\n')
      .filter((l) => l.length > 0),
    ' ',
  ];
  for (const s of SPLITS) {
    const dir = join(REC, s);
    const truth = new Map(
      readFileSync(join(dir, 'truth.tsv'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split('\t') as [string, string]),
    );
    const files = [...truth.keys()].sort();
    t.same(
      files,
      readdirSync(dir)
        .filter((f) => f.endsWith('.png'))
        .sort(),
    );
    const set = loadInputSet(dir, X([1, 3, 48, 320]));
    const outs = await run(OCR_MODELS.rec.file, set.samples);
    let errors = 0;
    let chars = 0;
    outs.forEach((p, b) => {
      const steps = p.length / keys.length;
      let text = '';
      let prev = -1;
      for (let k = 0; k < steps; k++) {
        let best = 0;
        for (let c = 1; c < keys.length; c++) if (p[k * keys.length + c]! > p[k * keys.length + best]!) best = c;
        if (best !== 0 && best !== prev) text += keys[best];
        prev = best;
      }
      const want = truth.get(files[b]!)!;
      errors += edits(text.replace(/\s+/g, ''), want.replace(/\s+/g, ''));
      chars += want.replace(/\s+/g, '').length;
    });
    t.ok(errors / chars < 0.1, `${s}: character error rate ${((100 * errors) / chars).toFixed(1)} %`);
  }
});

t.test('PP-OCR cls tells upright from upside-down crops in both sets', async (t) => {
  for (const s of SPLITS) {
    const set = loadInputSet(join(CLS, s), X([1, 3, 48, 192]));
    t.same(set.classNames, ['0', '180']);
    const outs = await run(OCR_MODELS.cls.file, set.samples);
    const correct = outs.filter((p, i) => (p[1]! > p[0]! ? 1 : 0) === set.labels![i]).length;
    t.ok(correct / outs.length >= 0.85, `${s}: ${correct}/${outs.length}`);
  }
});

t.test('OCR_FIT_SETS names existing calibrate / judge folders for det, rec and cls', async (t) => {
  for (const [model, set] of Object.entries(OCR_FIT_SETS)) {
    t.ok(readdirSync(set.calibrate).includes('preprocess.json'), `${model} calibrate`);
    t.ok(readdirSync(set.judge).includes('preprocess.json'), `${model} judge`);
  }
});
