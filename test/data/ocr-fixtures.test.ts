// The OCR image fixtures must be real inputs for the real PP-OCR models: preprocessed exactly
// as their preprocess.json says (PaddleOCR's normalisation), the cls model tells upright from
// upside-down crops, the rec model reads the printed words, and det finds text on the page
// images but much less on a photo without text. If a crop table or a preprocess.json drifts,
// these fail.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { OCR_MODELS, OCR, ROOT } from '../../devkit/paths.js';
import { decodeImage, parsePreprocessSpec, preprocessImage } from '../../src/data/image.js';

interface Preprocess {
  size: [number, number];
  layout: 'NCHW';
  color: 'BGR' | 'RGB';
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
  resize: 'stretch';
}
const FIX = join(ROOT, 'test/fixtures');
const spec = (dir: string) => JSON.parse(readFileSync(join(dir, 'preprocess.json'), 'utf8')) as Preprocess;
const pngs = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => join(dir, f));

/** Images -> NCHW float32 batch following a preprocess.json, through the shared loader (src/data/image.ts). */
function toTensor(files: string[], p: Preprocess): ort.Tensor {
  const sp = parsePreprocessSpec(p, 'preprocess.json');
  const [h, w] = sp.size;
  const out = new Float32Array(files.length * 3 * h * w);
  files.forEach((f, b) => out.set(preprocessImage(decodeImage(f), sp).data as Float32Array, b * 3 * h * w));
  return new ort.Tensor('float32', out, [files.length, 3, h, w]);
}

async function runModel(file: string, x: ort.Tensor): Promise<ort.Tensor> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2 });
  const out = await s.run({ [s.inputNames[0]!]: x });
  const y = out[s.outputNames[0]!]!;
  await s.release();
  return y;
}

t.test('preprocess.json files carry PaddleOCR normalisation and the model input sizes', async (t) => {
  const common = { layout: 'NCHW', color: 'BGR', scale: 1 / 255, resize: 'stretch' };
  t.same(spec(join(FIX, 'ocr/det')), { ...common, size: [640, 640], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  t.same(spec(join(FIX, 'ocr/rec')), { ...common, size: [48, 320], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  t.same(spec(join(FIX, 'ocr/cls')), { ...common, size: [48, 192], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  t.same(spec(join(FIX, 'images')).size, [64, 64], 'photos preprocess for the zoo input');
  t.same(OCR_MODELS.rec.shape.slice(2), spec(join(FIX, 'ocr/rec')).size);
  t.same(OCR_MODELS.cls.shape.slice(2), spec(join(FIX, 'ocr/cls')).size);
});

t.test('fixture counts and exact crop sizes', async (t) => {
  const det = pngs(join(FIX, 'ocr/det'));
  t.ok(det.length >= 6 && det.length <= 8, `${det.length} det images`);
  const rec = pngs(join(FIX, 'ocr/rec'));
  t.ok(rec.length >= 16 && rec.length <= 32, `${rec.length} rec crops`);
  for (const f of rec) t.same([decodeImage(f).height, decodeImage(f).width], [48, 320], `${f} is 48x320`);
  for (const cls of ['0', '180']) {
    const files = pngs(join(FIX, 'ocr/cls', cls));
    t.ok(files.length >= 4, `cls/${cls} has ${files.length} crops`);
    for (const f of files) t.same([decodeImage(f).height, decodeImage(f).width], [48, 192]);
  }
  t.ok(pngs(join(FIX, 'images')).length >= 6, 'photos and pages');
});

t.test('PP-OCR cls tells upright from upside-down crops', async (t) => {
  const dir = join(FIX, 'ocr/cls');
  const up = pngs(join(dir, '0'));
  const down = pngs(join(dir, '180'));
  const y = await runModel(OCR_MODELS.cls.file, toTensor([...up, ...down], spec(dir)));
  t.same(y.dims, [up.length + down.length, 2]);
  const p = y.data as Float32Array;
  let correct = 0;
  for (let i = 0; i < up.length + down.length; i++) {
    const pred = p[i * 2 + 1]! > p[i * 2]! ? 1 : 0; // class order of PP-OCR cls: ['0', '180']
    if (pred === (i < up.length ? 0 : 1)) correct++;
  }
  const acc = correct / (up.length + down.length);
  t.ok(acc >= 0.8, `cls accuracy ${correct}/${up.length + down.length}`);
});

t.test('PP-OCR rec reads the printed words of the page crops', async (t) => {
  const dir = join(FIX, 'ocr/rec');
  const files = pngs(dir).filter((f) => f.includes('/page-'));
  const y = await runModel(OCR_MODELS.rec.file, toTensor(files, spec(dir)));
  const [n, steps, classes] = y.dims as [number, number, number];
  t.equal(n, files.length);
  // ppocr_keys_v1.txt: index 0 is the CTC blank, then one character per line, then ' '
  const keys = [
    '',
    ...readFileSync(join(OCR, 'ppocr_keys_v1.txt'), 'utf8')
      .split('\n')
      .filter((l) => l.length > 0),
    ' ',
  ];
  t.equal(keys.length, classes, 'dictionary size matches the model output');
  const p = y.data as Float32Array;
  const texts = [];
  for (let b = 0; b < n; b++) {
    let s = '';
    let prev = -1;
    for (let k = 0; k < steps; k++) {
      let best = 0;
      const off = (b * steps + k) * classes;
      for (let c = 1; c < classes; c++) if (p[off + c]! > p[off + best]!) best = c;
      if (best !== 0 && best !== prev) s += keys[best];
      prev = best;
    }
    texts.push(s);
  }
  const all = texts.join(' ').toLowerCase();
  const words = [
    'region',
    'segmentation',
    'first',
    'determine',
    'markers',
    'coins',
    'background',
    'pixels',
    'label',
    'either',
    'object',
    'found',
    'extreme',
    'histogram',
    'grey',
    'zeros',
  ];
  const read = words.filter((w) => all.includes(w));
  t.ok(read.length >= 12, `read ${read.length}/${words.length} words: ${texts.join(' | ')}`);
});

t.test('PP-OCR det finds text on pages, much less on a photo without text', async (t) => {
  const p = spec(join(FIX, 'ocr/det'));
  const textFraction = async (file: string) => {
    const y = await runModel(OCR_MODELS.det.file, toTensor([file], p));
    const d = y.data as Float32Array;
    let on = 0;
    for (const v of d) if (v > 0.3) on++; // PaddleOCR's default binarisation threshold
    return on / d.length;
  };
  const page = await textFraction(join(FIX, 'ocr/det/page-left.png'));
  const table = await textFraction(join(FIX, 'ocr/det/document-on-table.png'));
  const cat = await textFraction(join(FIX, 'images/chelsea.png'));
  t.ok(page > 0.05, `page-left text fraction ${page.toFixed(3)}`);
  t.ok(table > 0.02, `document-on-table text fraction ${table.toFixed(3)}`);
  t.ok(cat < page / 5, `cat photo text fraction ${cat.toFixed(4)} well below the page's`);
});
