import t from 'tap';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { cloneModel } from '../../src/ir/model.js';
import { normalize } from '../../src/passes/normalize.js';
import { OCR_MODELS } from '../../devkit/paths.js';

t.test('cloneModel: the same bytes on encode, and no edit of the copy reaches the original', async (t) => {
  const m = normalize(loadModel(OCR_MODELS.cls.file));
  const before = serializeModel(m);
  const c = cloneModel(m);
  t.same(Buffer.from(serializeModel(c)), Buffer.from(before), 'a clone encodes to the same bytes as its source');
  t.not(c.graph, m.graph);

  const conv = c.graph.nodes.find((n) => n.opType === 'Conv' && n.attrInts('pads'))!;
  t.ok(conv, 'the fixture has a padded Conv');
  t.not(conv.id, m.graph.nodes[c.graph.nodes.indexOf(conv)]!.id, 'cloned nodes get fresh ids');
  conv.attrInts('pads')![0] = 99;
  conv.inputs[0] = 'elsewhere';
  const w = c.graph.initializer(conv.inputs[1]!)!;
  w.toFloat32()[0] = 12345; // a view on the clone's own bytes
  c.graph.removeNode(c.graph.nodes[0]!);
  c.graph.inputs[0]!.type!.shape![0] = 7;
  c.graph.valueTypes.set('new', { dtype: 'float32', shape: [1] });
  c.opsets.set('x', 1);
  c.metadata.set('k', 'v');

  t.same(Buffer.from(serializeModel(m)), Buffer.from(before), 'the original encodes as before');
  t.notOk(m.graph.valueTypes.has('new'));
  t.notOk(m.opsets.has('x'));
  t.notOk(m.metadata.has('k'));
  t.equal(m.graph.nodes.length, c.graph.nodes.length + 1);
});
