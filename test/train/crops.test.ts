// The default training crops (crops.ts) that distillation and QAT share: sizes in whole 32-pixel
// cells, only for one large image input, and the walk to smaller crops when the RAM budget refuses.
import t from 'tap';
import { rng } from '../../devkit/builder.js';
import { EdgefitError } from '../../src/errors.js';
import type { Sample } from '../../src/data/inputs.js';
import { cropAt, CROP_MIN, CROP_SHRINK, defaultCrops, shrinkingCrops, type CropPlan } from '../../src/passes/train/crops.js';
import { QAT_CROP_SCALE } from '../../src/passes/quantize/qat-train.js';

const image = (h: number, w: number, extra: Record<string, Sample[string]> = {}): Sample => ({
  x: { dtype: 'float32', shape: [1, 3, h, w], data: new Float32Array(3 * h * w) },
  ...extra,
});

t.test('crop sizes: a share of each side in whole 32-pixel cells, shrinking by CROP_SHRINK, never under CROP_MIN', async (t) => {
  t.same(cropAt(640, 640, 0.5), [320, 320]);
  t.same(cropAt(640, 960, 0.5), [320, 480]);
  t.same(cropAt(640, 640, QAT_CROP_SCALE), [192, 192], "QAT's default on det is the 192x192 its figures were measured on");
  const sides: number[] = [];
  for (let s = 0.5, c = cropAt(640, 640, s); c; s *= CROP_SHRINK, c = cropAt(640, 640, s)) sides.push(c[0]);
  t.same(sides, [320, 224, 160, 128, 96], 'the sizes a tight RAM budget walks through on det');
  t.ok(sides.every((v) => v % 32 === 0 && v >= CROP_MIN));
  t.equal(cropAt(256, 256, 0.25), undefined, 'too small: none');
});

t.test('default crops only for one image input of CROP_FROM+ a side, and they crop to the planned size', async (t) => {
  const plan = defaultCrops([image(640, 640)], 0.3);
  t.same(plan?.crop, [192, 192]);
  const row = plan!.augment(image(640, 640), rng(1));
  t.same(row.x!.shape, [1, 3, 192, 192], 'a training row is the crop');
  t.equal(defaultCrops([image(200, 640)], 0.5), undefined, 'a side under CROP_FROM: whole images');
  t.equal(
    defaultCrops([image(640, 640, { y: { dtype: 'float32', shape: [1, 4], data: new Float32Array(4) } })], 0.5),
    undefined,
    'two inputs',
  );
  t.equal(defaultCrops([{ x: { dtype: 'float32', shape: [1, 784], data: new Float32Array(784) } }], 0.5), undefined, 'not an image');
  t.equal(defaultCrops([], 0.5), undefined, 'no samples');
});

t.test('over budget, the crops shrink and the run is tried again; later runs keep the smaller crops', async (t) => {
  const c = shrinkingCrops([image(640, 640)], 0.5);
  const seen: string[] = [];
  const r = await c.run(async (p) => {
    seen.push(p!.crop.join('x'));
    if (p!.crop[0] > 160) throw new EdgefitError('OVER_BUDGET', 'one row needs more than the budget');
    return 'trained';
  });
  t.equal(r, 'trained');
  t.same(seen, ['320x320', '224x224', '160x160']);
  t.same(c.plan?.crop, [160, 160], 'the crop the report names');
  await c.run(async (p) => seen.push(p!.crop.join('x')));
  t.equal(seen.at(-1), '160x160', 'a second run starts from the smaller crop');
});

t.test('over budget even on the smallest crop: one error naming it; other errors pass through untouched', async (t) => {
  const c = shrinkingCrops([image(640, 640)], 0.5);
  let tries = 0;
  await t.rejects(
    c.run(async () => {
      tries++;
      throw new EdgefitError('OVER_BUDGET', 'one row needs 900 MB');
    }),
    { code: 'OVER_BUDGET', message: /one row needs 900 MB \(even on 96x96 crops\)/ },
  );
  t.equal(tries, 5, '320, 224, 160, 128 and 96');
  const other = new EdgefitError('DATA', 'bad sample');
  let n = 0;
  await t.rejects(
    c.run(async () => {
      n++;
      throw other;
    }),
    other,
  );
  t.equal(n, 1, 'not retried');
  // no crops (small images): the error is not retried either
  const none = shrinkingCrops([image(64, 64)], 0.5);
  let m = 0;
  await t.rejects(
    none.run(async (p: CropPlan | undefined) => {
      t.equal(p, undefined);
      m++;
      throw new EdgefitError('OVER_BUDGET', 'too big');
    }),
    { message: 'too big' },
  );
  t.equal(m, 1);
});
