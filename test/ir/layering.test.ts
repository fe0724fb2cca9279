import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { floatToHalf, halfToFloat } from '../../src/ir/float16.js';

// dist/test/ir -> src/
const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function imports(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]!);
}

t.test('src/ir imports nothing above it (no onnx codec, no passes, no analysis)', async (t) => {
  const bad: string[] = [];
  for (const f of tsFiles(join(SRC, 'ir'))) {
    for (const i of imports(f)) if (i.startsWith('../') && i !== '../errors.js' && !i.startsWith('../util/')) bad.push(`${f}: ${i}`);
  }
  t.same(bad, []);
});

t.test('one float16 converter: no other module hand-rolls the half-float bit layout', async (t) => {
  // the float16 exponent (0x7c00) and mantissa (0x3ff) masks: every half <-> float conversion needs one
  const others = tsFiles(SRC).filter((f) => !f.endsWith(join('ir', 'float16.ts')) && /0x7c00|0x3ff\b/i.test(readFileSync(f, 'utf8')));
  t.same(others, []);
  t.equal(floatToHalf(1), 0x3c00);
  t.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'a tie rounds to even');
  t.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'a tie rounds to even (up)');
  t.equal(halfToFloat(floatToHalf(-2.5)), -2.5);
});
