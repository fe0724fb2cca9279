// The agent's default calibration data for the bundled det model is package data
// (assets/calib/det, made by scripts/make-det-set.py): a calibrate set and a disjoint judge set,
// large enough to judge a fit, small enough to ship, each a usable image folder, every image with a
// licence note, and every judge image holding text the bundled det finds (an image where the
// original finds nothing judges nothing).
import t from 'tap';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../devkit/paths.js';
import { detBoxCounts } from '../../devkit/det-boxes.js';
import { decodeImage } from '../../src/data/image.js';

const ASSET = join(ROOT, 'assets/calib/det');
const SPLITS = ['calibrate', 'judge'] as const;
const images = (split: string): string[] =>
  readdirSync(join(ASSET, split))
    .filter((f) => /\.(png|jpe?g)$/.test(f))
    .sort();
const spec = (split: string): unknown => JSON.parse(readFileSync(join(ASSET, split, 'preprocess.json'), 'utf8'));
const hash = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

t.test('two sets of about 16 images, at most 640 px, under 3 MB, sharing no image', async (t) => {
  t.same(readdirSync(ASSET).sort(), ['calibrate', 'judge', 'train'], 'nothing else: the fit reads the subfolders');
  let bytes = 0;
  const seen = new Map<string, string>();
  for (const split of SPLITS) {
    const files = images(split);
    t.ok(files.length >= 14 && files.length <= 20, `${split}: ${files.length} images`);
    for (const f of files) {
      const p = join(ASSET, split, f);
      const img = decodeImage(p);
      t.ok(Math.max(img.width, img.height) <= 640, `${split}/${f} is ${img.width}x${img.height}`);
      bytes += statSync(p).size;
      const h = hash(p);
      t.notOk(seen.has(h), `${split}/${f} is not also ${seen.get(h)}`);
      seen.set(h, `${split}/${f}`);
    }
  }
  t.ok(bytes < 3e6, `${(bytes / 1e6).toFixed(2)} MB`);
});

t.test('a training set (issue 18): 48-96 images, at most 640 px, under 4 MB, none also a calibrate or judge image', async (t) => {
  const others = new Set(SPLITS.flatMap((s) => images(s).map((f) => hash(join(ASSET, s, f)))));
  const files = images('train');
  t.ok(files.length >= 48 && files.length <= 96, `${files.length} images`);
  let bytes = 0;
  for (const f of files) {
    const p = join(ASSET, 'train', f);
    const img = decodeImage(p);
    t.ok(Math.max(img.width, img.height) <= 640, `train/${f} is ${img.width}x${img.height}`);
    t.notOk(others.has(hash(p)), `train/${f} is not a calibrate or judge image`);
    bytes += statSync(p).size;
  }
  t.ok(bytes < 4e6, `${(bytes / 1e6).toFixed(2)} MB`);
});

t.test("each folder's preprocess.json describes the det model input", async (t) => {
  for (const split of [...SPLITS, 'train']) {
    const p = spec(split) as { size: number[]; layout: string; color: string };
    t.same(p.size, [640, 640]);
    t.equal(p.layout, 'NCHW');
    t.equal(p.color, 'BGR');
  }
});

t.test('the bundled det finds text in every judge image and most calibration images', async (t) => {
  const judge = images('judge');
  const jc = await detBoxCounts(
    judge.map((f) => join(ASSET, 'judge', f)),
    spec('judge'),
  );
  judge.forEach((f, i) => t.ok(jc[i]! >= 1, `judge/${f}: ${jc[i]} boxes`));
  t.ok(jc.reduce((a, b) => a + b, 0) >= 100, `judge boxes in all: ${jc.reduce((a, b) => a + b, 0)}`);
  const cal = images('calibrate');
  const cc = await detBoxCounts(
    cal.map((f) => join(ASSET, 'calibrate', f)),
    spec('calibrate'),
  );
  const withText = cc.filter((c) => c > 0).length;
  t.ok(
    withText >= cal.length - 3 && withText < cal.length,
    `${withText}/${cal.length} calibration images with text, a few text-free photos`,
  );
});

t.test('every calibration and training image has a licence row in assets/LICENSES.md', async (t) => {
  const md = readFileSync(join(ROOT, 'assets/LICENSES.md'), 'utf8');
  // `calib/det/...` names in backquotes; * stands for any run of characters
  const patterns = [...md.matchAll(/`(calib\/det\/[^`]+)`/g)].map(
    (m) => new RegExp(`^${m[1]!.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`),
  );
  t.ok(patterns.length > 0, 'the table names calib/det files');
  for (const split of [...SPLITS, 'train'])
    for (const n of images(split))
      t.ok(
        patterns.some((re) => re.test(`calib/det/${split}/${n}`)),
        `${split}/${n} is covered`,
      );
});
