// The one-way layering of issue 15, checked on the TypeScript sources: src/ never reaches dev-only
// code (devkit/, scripts/, test/), neither by import nor by a path it reads at run time; devkit/
// (shared by scripts and tests) imports neither of them, and scripts and tests do not import each
// other; the graph IR does not depend on the codec or the passes built on top of it. Specifiers come from
// TypeScript's own pre-processor (static, type-only, re-export and dynamic imports alike).
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import ts from 'typescript';
import { ROOT } from '../devkit/paths.js';

interface Edge {
  /** Importing files: repository-relative prefix. */
  from: string;
  /** Imported files that are forbidden to them. */
  to: string;
  why: string;
}

const FORBIDDEN: readonly Edge[] = [
  { from: 'src/', to: 'devkit/', why: 'devkit/ is dev-only code for scripts and tests, not shipped behaviour' },
  { from: 'src/', to: 'scripts/', why: 'scripts/ are benchmarks and tools run from a checkout' },
  { from: 'src/', to: 'test/', why: 'tests and their fixtures are not part of the package' },
  { from: 'devkit/', to: 'scripts/', why: 'devkit/ is what scripts and tests share; scripts build on it' },
  { from: 'devkit/', to: 'test/', why: 'devkit/ is what scripts and tests share; tests build on it' },
  { from: 'scripts/', to: 'test/', why: 'code both need belongs in devkit/' },
  { from: 'test/', to: 'scripts/', why: 'code both need belongs in devkit/ (a test may run a built script as a child process)' },
  { from: 'src/ir/', to: 'src/onnx/', why: 'src/onnx/ is the only protobuf code; it may import ir/, never the reverse' },
  { from: 'src/ir/', to: 'src/passes/', why: 'passes transform the IR; the IR must not depend on them' },
] as const;

/** Dev-only folders named at the start of a string literal (a path src would read at run time). */
const DEV_PATH = /^(?:\.\.?\/)*(?:devkit|scripts|test)\//;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Repository-relative targets of the relative import specifiers of `file` (repository-relative, posix). */
function importTargets(file: string, source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((s) => s.startsWith('.'))
    .map((s) => posix.normalize(posix.join(posix.dirname(file), s)));
}

/** String literals of `source` that start with a dev-only folder. */
function devPathLiterals(source: string): string[] {
  const sf = ts.createSourceFile('x.ts', source, ts.ScriptTarget.ES2022, false);
  const hits: string[] = [];
  const visit = (n: ts.Node): void => {
    if ((ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n) || ts.isTemplateHead(n)) && DEV_PATH.test(n.text)) {
      // import specifiers are the import rules' business
      if (!(n.parent && (ts.isImportDeclaration(n.parent) || ts.isExportDeclaration(n.parent)))) hits.push(n.text);
    }
    n.forEachChild(visit);
  };
  visit(sf);
  return hits;
}

function violations(edge: Edge, files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [file, source] of files) {
    if (!file.startsWith(edge.from)) continue;
    for (const target of importTargets(file, source)) if (target.startsWith(edge.to)) out.push(`${file} -> ${target}`);
  }
  return out;
}

const files = new Map(
  ['src', 'devkit', 'scripts', 'test']
    .flatMap((d) => tsFiles(join(ROOT, d)))
    .map((p) => [relative(ROOT, p).split('\\').join('/'), readFileSync(p, 'utf8')] as const),
);
const srcFiles = [...files].filter(([f]) => f.startsWith('src/'));

t.test('the scan sees the sources and would catch a violation', async (t) => {
  t.ok(srcFiles.length > 100, `${srcFiles.length} files under src/`);
  for (const d of ['devkit/', 'scripts/', 'test/'])
    t.ok(
      [...files.keys()].some((f) => f.startsWith(d)),
      `${d} is scanned too`,
    );
  const probe =
    "import { x } from '../../devkit/paths.js';\nexport * from './b.js';\nconst m = await import('../../test/helpers/agent-proc.js');\n";
  t.same(importTargets('src/agent/a.ts', probe), ['devkit/paths.js', 'src/agent/b.js', 'test/helpers/agent-proc.js']);
  const fake = new Map([['src/ir/x.ts', "import type { DType } from '../onnx/dtype.js';\n"]]);
  t.same(violations({ from: 'src/ir/', to: 'src/onnx/', why: '' }, fake), ['src/ir/x.ts -> src/onnx/dtype.js']);
  t.same(devPathLiterals("const D = [join(ROOT, 'test/fixtures/ocr/det')];\nconst s = `scripts/${x}`;\nconst ok = 'assets/calib/det';"), [
    'test/fixtures/ocr/det',
    'scripts/',
  ]);
});

for (const edge of FORBIDDEN) {
  const bad = violations(edge, files);
  t.test(`${edge.from} does not import ${edge.to}`, async (t) => {
    t.same(bad, [], edge.why);
  });
}

/**
 * src/'s layers, lowest first (the README's one-way map): a module may import its own folder and
 * folders of lower layers only. A new folder must be placed here, so its place is a decision.
 */
const LAYERS = [
  ['errors.ts', 'util'],
  ['ir'],
  ['onnx', 'data'],
  ['runtime', 'fidelity', 'budgets'],
  ['analyze', 'calib', 'config'],
  ['profile'],
  ['passes'],
  ['evaluate'],
  ['fit'],
  ['store', 'telemetry', 'serve'],
  ['agent', 'dashboard'],
  ['cli'],
] as const;

/** src/<top>/... -> top (a folder, or a file directly in src/). */
const topOf = (f: string): string => f.split('/')[1]!;
const layerOf = (top: string): number => LAYERS.findIndex((l) => (l as readonly string[]).includes(top));

function upwardImports(files: Iterable<readonly [string, string]>): string[] {
  const bad: string[] = [];
  for (const [file, source] of files) {
    const from = topOf(file);
    for (const target of importTargets(file, source)) {
      if (!target.startsWith('src/')) continue;
      const to = topOf(target);
      if (to !== from && !(layerOf(to) < layerOf(from))) bad.push(`${file} -> ${target}`);
    }
  }
  return bad;
}

t.test('every src/ folder has a layer, and imports go down the layers only', async (t) => {
  const tops = new Set(srcFiles.map(([f]) => topOf(f)));
  for (const top of tops) t.ok(layerOf(top) >= 0, `src/${top} is placed in LAYERS`);
  const fake = [
    ['src/analyze/x.ts', "import { normalize } from '../passes/normalize.js';\nimport { a } from '../ir/graph.js';\n"],
  ] as const;
  t.same(upwardImports(fake), ['src/analyze/x.ts -> src/passes/normalize.js'], 'the rule catches an upward import');
  t.same(upwardImports(srcFiles), [], 'an upward or sideways import: move the shared code down, or the caller up');
});

t.test('src/ reads no file from devkit/, scripts/ or test/ at run time', async (t) => {
  const bad = srcFiles.flatMap(([file, source]) => devPathLiterals(source).map((s) => `${file}: '${s}'`));
  t.same(bad, [], 'an installed package has none of these folders (install.sh and npm pack ship dist/, assets/, profiles/)');
});

t.test('the edge table names real folders', async (t) => {
  for (const e of FORBIDDEN) {
    for (const dir of [e.from, e.to]) {
      let ok = true;
      try {
        readdirSync(join(ROOT, dir));
      } catch {
        ok = false;
      }
      t.ok(ok, `${dir} exists`);
    }
  }
});
