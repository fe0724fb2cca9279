// The agent's default calibration set is package data (assets/calib/det), not a test fixture: it
// must stay the very images tests and benchmarks measure the det model on, carry a licence note,
// and be a usable image folder (preprocess.json at the det model's input size).
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../devkit/paths.js';

const ASSET = join(ROOT, 'assets/calib/det');
const FIXTURE = join(ROOT, 'test/fixtures/ocr/det');
const list = (d: string): string[] => readdirSync(d).sort();

t.test('assets/calib/det is byte-identical to test/fixtures/ocr/det', async (t) => {
  const names = list(ASSET);
  t.same(names, list(FIXTURE), 'same files');
  t.ok(names.filter((n) => n.endsWith('.png')).length >= 8, 'the real page and photo images');
  for (const n of names) t.ok(readFileSync(join(ASSET, n)).equals(readFileSync(join(FIXTURE, n))), `${n} identical`);
});

t.test('preprocess.json describes the det model input', async (t) => {
  const p = JSON.parse(readFileSync(join(ASSET, 'preprocess.json'), 'utf8')) as { size: number[]; layout: string };
  t.same(p.size, [640, 640]);
  t.equal(p.layout, 'NCHW');
});

t.test('every calibration image has a licence row in assets/LICENSES.md', async (t) => {
  const md = readFileSync(join(ROOT, 'assets/LICENSES.md'), 'utf8');
  // `calib/det/...` names in backquotes; * stands for any run of characters
  const patterns = [...md.matchAll(/`(calib\/det\/[^`]+)`/g)].map(
    (m) => new RegExp(`^${m[1]!.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`),
  );
  t.ok(patterns.length > 0, 'the table names calib/det files');
  for (const n of list(ASSET).filter((f) => f.endsWith('.png')))
    t.ok(
      patterns.some((re) => re.test(`calib/det/${n}`)),
      `${n} is covered`,
    );
});
