import t, { type Test } from 'tap';
import { Graph } from '../../src/ir/graph.js';
import type { Node } from '../../src/ir/node.js';
import { Tensor } from '../../src/ir/tensor.js';

/** x -> Relu -> a -> Relu -> b, with x a graph input: a graph whose index has been read. */
function chain(t: Test): Graph {
  const g = new Graph();
  g.inputs.push({ name: 'x', type: { dtype: 'float32', shape: [1, 4] } });
  g.addNode({ opType: 'Relu', name: 'r1', inputs: ['x'], outputs: ['a'] });
  g.addNode({ opType: 'Relu', name: 'r2', inputs: ['a'], outputs: ['b'] });
  g.outputs.push({ name: 'b', type: { dtype: 'float32', shape: [1, 4] } });
  t.equal(g.producer('b')?.name, 'r2', 'the index is built on a read');
  return g;
}

const names = (ns: readonly Node[]) => ns.map((n) => n.name);

/** Every value's producer and readers, as a rebuild of the index from scratch sees them. */
function indexOf(g: Graph): string {
  const values = new Set(g.nodes.flatMap((n) => [...n.inputs, ...n.outputs]).filter((v) => v));
  return [...values]
    .sort()
    .map((v) => `${v}<-${g.producer(v)?.name ?? '-'}->${names(g.consumers(v)).join(',')}|${g.isGraphInput(v)}`)
    .join(' ');
}

t.test('nodes appended with { indexed: true } are indexed in place, as a rebuild would index them', async (t) => {
  const g = chain(t);
  g.setInitializer(Tensor.fromFloat32('k', [1], [2]), { indexed: true });
  g.addNode({ opType: 'Mul', name: 'm1', inputs: ['a', 'k'], outputs: ['c'] }, { indexed: true });
  t.equal(g.producer('c')?.name, 'm1', 'the appended node produces its output');
  t.same(names(g.consumers('a')), ['r2', 'm1'], 'it reads last among a value readers, in node order');
  t.equal(g.constant('k')?.toFloat32()[0], 2, 'the initializer set beside it is a constant');
  g.addNode({ opType: 'Add', name: 'a1', inputs: ['c', 'c'], outputs: ['d'] }, { indexed: true });
  t.same(names(g.consumers('c')), ['a1'], 'a node reading one value twice is one reader');
  // a graph input pushed without touch() is seen after the next indexed append, as before
  g.inputs.push({ name: 'y', type: { dtype: 'float32', shape: [1, 4] } });
  g.addNode({ opType: 'Add', name: 'a2', inputs: ['d', 'y'], outputs: ['e'] }, { indexed: true });
  t.ok(g.isGraphInput('y'), 'graph inputs are re-read after an indexed append');
  t.equal(g.constant('y'), undefined);
  const inPlace = indexOf(g);
  g.touch();
  t.equal(indexOf(g), inPlace, 'the index kept in place equals the one rebuilt from the nodes');
});

t.test('without { indexed }, an edit made in place is still seen after the next addNode or setInitializer', async (t) => {
  // passes edit inputs in place and count on the next mutation to mark the index stale
  const g = chain(t);
  g.nodes[1]!.inputs[0] = 'x';
  g.addNode({ opType: 'Relu', name: 'r3', inputs: ['b'], outputs: ['z'] });
  t.same(names(g.consumers('x')), ['r1', 'r2'], 'the edited node reads x now');
  t.same(names(g.consumers('a')), [], 'and no longer reads a');
  g.nodes[2]!.inputs[0] = 'a';
  g.setInitializer(Tensor.fromFloat32('w', [1], [1]));
  t.same(names(g.consumers('a')), ['r3'], 'seen after setInitializer too');
});

t.test('namer: names unique against the graph and against each other, as uniqueName gives one at a time', async (t) => {
  const g = chain(t);
  g.setInitializer(Tensor.fromFloat32('w', [1], [1]));
  const fresh = g.namer();
  t.equal(fresh('a'), 'a_1', 'a value of the graph is not given again');
  t.equal(fresh('x'), 'x_1', 'nor a graph input');
  t.equal(fresh('w'), 'w_1', 'nor an initializer');
  t.equal(fresh('a'), 'a_2', 'nor a name it gave before');
  t.equal(fresh('new'), 'new', 'a free name is given as asked');
  t.equal(fresh('new'), 'new_1');
  t.equal(g.uniqueName('b'), 'b_1', 'uniqueName agrees on names in the graph');
});
