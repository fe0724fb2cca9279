// The fallback's two sensitivity rankings on a model whose error is known exactly: the output is
// x + e * z, and e follows from which units are int8. Units a and b only hurt together (their
// errors compound, like the first block of PP-OCR det), unit c hurts on its own.
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { serializeModel } from '../../src/onnx/index.js';
import { rankSensitivity, type FloatSet } from '../../src/fit/quantize/sensitivity.js';
import { openSession } from '../../src/runtime/runner.js';
import { ModelBuilder } from '../../devkit/builder.js';

const UNITS = ['tensor:a', 'tensor:b', 'node:c'];
const N = 64;

function model(e: number): Uint8Array {
  const b = new ModelBuilder();
  const x = b.input('x', [1, N]);
  const z = b.constant(
    'z',
    [1, N],
    Float32Array.from({ length: N }, (_, i) => Math.cos(i * 0.37)),
  );
  b.output(b.binary('Add', x, b.scalarOp('Mul', z, e)));
  return serializeModel(b.build());
}

/** The error of the model with every unit outside `keep` in int8. */
function errorOf(keep: FloatSet): number {
  const int8 = (u: string): boolean => (u.startsWith('node:') ? !keep.nodes.has(u.slice(5)) : !keep.tensors.has(u.slice(7)));
  const ab = int8('tensor:a') && int8('tensor:b') ? 0.3 : 0.001 * (Number(int8('tensor:a')) + Number(int8('tensor:b')));
  return ab + (int8('node:c') ? 0.05 : 0);
}

t.test("'alone' ranks the unit that hurts on its own first; 'leave-out' the ones that compound", async (t) => {
  const feeds = [
    {
      x: new ort.Tensor(
        'float32',
        Float32Array.from({ length: N }, (_, i) => Math.sin(i * 0.11) + 0.2),
        [1, N],
      ),
    },
  ];
  const s = await openSession(model(0));
  const reference = [(await s.run(feeds[0]!)) as Record<string, ort.Tensor>];
  await s.release();
  const builds: number[] = [];
  const build = (keep: FloatSet): Uint8Array => {
    builds.push(errorOf(keep));
    return model(errorOf(keep));
  };
  const alone = await rankSensitivity(UNITS, build, feeds, reference, { threads: 1, rank: 'alone' });
  t.equal(alone[0]!.unit, 'node:c', `alone: ${JSON.stringify(alone)}`);
  t.ok(alone[0]!.gain > 10 * alone[1]!.gain, 'c alone costs far more than a or b alone');
  t.equal(builds[0], 0, 'the alone baseline is the model with every unit float');
  builds.length = 0;
  const out = await rankSensitivity(UNITS, build, feeds, reference, { threads: 1, rank: 'leave-out' });
  t.same(
    out
      .slice(0, 2)
      .map((r) => r.unit)
      .sort(),
    ['tensor:a', 'tensor:b'],
    `leave-out: ${JSON.stringify(out)}`,
  );
  t.equal(out[2]!.unit, 'node:c');
  t.ok(Math.abs(builds[0]! - 0.35) < 1e-12, 'the leave-out baseline is the all-int8 model');
  // the default is 'alone'
  t.equal((await rankSensitivity(UNITS, build, feeds, reference, { threads: 1 }))[0]!.unit, 'node:c');
});
