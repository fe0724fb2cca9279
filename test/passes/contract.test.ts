import t, { type Test } from 'tap';
import type { Model } from '../../src/ir/model.js';
import { cloneModel } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { CONDITIONS, type ConditionName } from '../../src/passes/conditions.js';
import { runAsyncPass, runPass, type Pass, type PassResult } from '../../src/passes/pass.js';
import { deadCodeElimination } from '../../src/passes/cleanup/dce.js';
import { foldPass } from '../../src/passes/cleanup/fold.js';
import { staticQuantPass } from '../../src/passes/quantize/qdq.js';
import { fp16Pass } from '../../src/passes/quantize/fp16.js';
import { FIXTURES } from '../../devkit/builder.js';

function firstConv(m: Model): string {
  const n = m.graph.nodes.find((x) => x.opType === 'Conv')!;
  return n.name || n.outputs[0]!;
}

/** A pass that declares `guarantees` and does `edit`: the runner must catch it when it lies. */
function broken(name: string, guarantees: ConditionName[], edit: (m: Model) => void, details: Record<string, unknown> = {}): Pass<void> {
  return { name, requires: [], guarantees, run: (m): PassResult => (edit(m), { changed: true, details }) };
}

async function rejectsNaming(t: Test, f: () => unknown, code: string, ...parts: (string | RegExp)[]): Promise<void> {
  try {
    await f();
    t.fail(`expected ${code}`);
  } catch (e) {
    const err = e as { code?: string; message: string };
    t.equal(err.code, code, err.message);
    for (const p of parts) t.match(err.message, p);
  }
}

t.test('a pass that breaks a guarantee fails loudly, naming itself and the guarantee', async (t) => {
  const base = FIXTURES.residual();
  const cases: [Pass<void>, string][] = [
    [
      broken('renames-output', ['outputs-kept'], (m) => {
        m.graph.replaceAllUses(m.graph.outputs[0]!.name, 'elsewhere');
      }),
      'outputs-kept',
    ],
    [
      broken('reshapes-output', ['outputs-kept'], (m) => {
        m.graph.outputs[0]!.type = { dtype: 'float32', shape: [1, 11] };
      }),
      'outputs-kept',
    ],
    [
      broken('dangles', ['stays-valid'], (m) => {
        m.graph.nodes[1]!.inputs[0] = 'nowhere';
      }),
      'stays-valid',
    ],
    [
      broken('grows', ['only-shrinks'], (m) => {
        const o = m.graph.outputs[0]!.name;
        const p = m.graph.producer(o)!;
        p.outputs[0] = `${o}_pre`;
        m.graph.addNode({ opType: 'Identity', inputs: [`${o}_pre`], outputs: [o] });
      }),
      'only-shrinks',
    ],
    [
      broken('leaves-dead', ['no-dead-code'], (m) => {
        m.graph.setInitializer(Tensor.fromFloat32('unused', [2], [1, 2]));
      }),
      'no-dead-code',
    ],
    [
      broken('claims-int8', ['int8-as-claimed'], () => {}, { layers: [{ node: 'conv', op: 'Conv', kind: 'weighted', int8: true }] }),
      'int8-as-claimed',
    ],
    [
      broken(
        'claims-one-int8',
        ['int8-as-claimed'],
        (m) => {
          m.graph.setInitializer(Tensor.fromInt8('q', [2, 2], new Int8Array(4)));
          m.graph.addNode({ opType: 'Identity', inputs: ['q'], outputs: ['q_out'] });
          m.graph.outputs.push({ name: 'q_out', type: null });
        },
        { layers: [{ node: firstConv(base), op: 'Conv', kind: 'weighted', int8: true }] },
      ),
      'int8-as-claimed',
    ],
    [
      broken('keeps-constant', ['no-dense-constants'], (m) => {
        m.graph.addNode({ opType: 'Constant', inputs: [], outputs: ['c'], attrs: { value_floats: { type: 'floats', value: [1] } } });
      }),
      'no-dense-constants',
    ],
  ];
  for (const [pass, guarantee] of cases) {
    await rejectsNaming(t, () => runPass(pass, cloneModel(base), undefined), 'INTERNAL', `${pass.name} broke its guarantee '${guarantee}'`);
  }
  const asyncBroken = { ...cases[0]![0], name: 'async-renames', run: async (m: Model) => cases[0]![0].run(m) };
  await rejectsNaming(t, () => runAsyncPass(asyncBroken, cloneModel(base), undefined), 'INTERNAL', /^async-renames broke its guarantee/);
});

t.test('a pass that keeps its word runs through, and the same edit passes unchecked guarantees', async (t) => {
  const m = FIXTURES.residual();
  const honest = broken('adds-unused', ['outputs-kept', 'stays-valid'], (x) => {
    x.graph.setInitializer(Tensor.fromFloat32('unused', [2], [1, 2]));
  });
  t.equal(runPass(honest, m, undefined).changed, true);
  t.ok(m.graph.initializer('unused'), 'the pass ran');
  const r = runPass(deadCodeElimination, m, undefined);
  t.equal(r.details.initializersRemoved, 1, 'dce removes what the other pass left, and its own guarantees hold');
});

t.test('pre-conditions are checked before the pass touches the model', async (t) => {
  const m = FIXTURES.residual();
  m.graph.nodes[2]!.inputs[0] = 'nowhere';
  let ran = false;
  const pass: Pass<void> = {
    name: 'needs-valid',
    requires: ['valid-graph'],
    guarantees: [],
    run: () => ((ran = true), { changed: false, details: {} }),
  };
  await rejectsNaming(
    t,
    () => runPass(pass, m, undefined),
    'INVALID_GRAPH',
    /^needs-valid requires 'valid-graph' \(the graph is well formed/,
    /nowhere/,
  );
  t.notOk(ran, 'the pass did not run');

  const q = FIXTURES.residual();
  const x = q.graph.runtimeInputs()[0]!.name;
  q.graph.setInitializer(Tensor.scalarFloat('s', 0.1));
  q.graph.setInitializer(Tensor.fromUint8('z', [], new Uint8Array([0])));
  q.graph.addNode({ opType: 'QuantizeLinear', inputs: [x, 's', 'z'], outputs: ['xq'] });
  q.graph.addNode({ opType: 'DequantizeLinear', inputs: ['xq', 's', 'z'], outputs: ['xdq'] });
  await rejectsNaming(
    t,
    () => runPass(fp16Pass, q, undefined),
    'UNSUPPORTED',
    /^quantize-fp16 requires 'float-model' \(the model is not quantized yet\): it already contains QuantizeLinear/,
  );
  const so = {
    actType: 'uint8',
    reduceRange: false,
    perChannel: true,
    ranges: new Map(),
    keepFloat: new Set<string>(),
    qdqDomain: '',
  } as const;
  await rejectsNaming(t, () => runPass(staticQuantPass, q, so), 'UNSUPPORTED', /^quantize-static requires 'float-model'/);
});

t.test('the real passes keep the guarantees they declare on the fixtures', async (t) => {
  for (const [name, make] of Object.entries(FIXTURES)) {
    const m = make();
    t.doesNotThrow(() => runPass(foldPass, m, 'int8'), `fold on ${name}`);
    t.doesNotThrow(() => runPass(fp16Pass, m, undefined), `fp16 on ${name}`);
    t.doesNotThrow(() => runPass(deadCodeElimination, m, undefined), `dce on ${name}`);
  }
});

t.test('every condition says what it checks and checks something', async (t) => {
  for (const [name, c] of Object.entries(CONDITIONS)) {
    t.ok(c.text.length > 10, `${name} has a text`);
    t.ok('pre' in c || 'post' in c, `${name} is checkable`);
  }
});
