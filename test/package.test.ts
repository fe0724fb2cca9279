// package.json must describe what the build produces and what an installed edgefit reads: every
// entry point exists after `tsc -p .`, and "files" ships the run-time folders (assets/, profiles/)
// beside the compiled src, but not the dev-only code (tests, scripts, devkit).
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../devkit/paths.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  main?: string;
  bin?: Record<string, string>;
  exports?: unknown;
  files?: string[];
  allowScripts?: Record<string, boolean>;
};

t.test('entry points exist in the build', async (t) => {
  const entries = [...Object.values(pkg.bin ?? {}), ...(pkg.main ? [pkg.main] : [])];
  t.ok(entries.length > 0, 'the CLI is the entry point');
  for (const e of entries) t.ok(existsSync(join(ROOT, e)), `${e} is built`);
  t.equal(pkg.exports, undefined, 'edgefit is a CLI and agent, not a library');
});

t.test('"files" ships the compiled src and the run-time data, not dev-only code', async (t) => {
  const files = pkg.files ?? [];
  const shipped = (p: string): boolean => files.some((f) => p === f || p.startsWith(`${f}/`));
  for (const p of [
    'dist/src/cli/main.js',
    'assets/calib/det/calibrate/preprocess.json',
    'assets/calib/det/judge/preprocess.json',
    'assets/LICENSES.md',
    'profiles/schema.json',
    'systemd/edgefit.service',
  ]) {
    t.ok(shipped(p), `${p} is in the package`);
    t.ok(existsSync(join(ROOT, p)), `${p} exists`);
  }
  for (const p of ['dist/test/layering.test.js', 'dist/devkit/paths.js', 'dist/scripts/simulate-fleet.js', 'test/fixtures/LICENSES.md']) {
    t.notOk(shipped(p), `${p} stays out`);
  }
});

// npm 11.16+ lists dependencies whose install scripts no `allowScripts` entry covers, and npm 12
// blocks them: better-sqlite3's native build must be allowed or the agent cannot open its state;
// onnxruntime-node's postinstall only downloads (skipped by .npmrc anyway) and protobufjs's only
// checks versions, so both are denied outright.
t.test('allowScripts reviews every installed package with an install script', async (t) => {
  const allow = pkg.allowScripts ?? {};
  const covered = (name: string, version: string): boolean => name in allow || `${name}@${version}` in allow;
  const nm = join(ROOT, 'node_modules');
  const dirs = readdirSync(nm).flatMap((d) => (d.startsWith('@') ? readdirSync(join(nm, d)).map((s) => `${d}/${s}`) : [d]));
  const withScripts: string[] = [];
  for (const d of dirs) {
    const file = join(nm, d, 'package.json');
    if (!existsSync(file)) continue;
    const p = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string; scripts?: Record<string, string> };
    if (!['preinstall', 'install', 'postinstall'].some((k) => p.scripts?.[k])) continue;
    withScripts.push(d);
    t.ok(covered(p.name ?? d, p.version ?? ''), `${d}'s install script is reviewed in allowScripts`);
  }
  t.ok(withScripts.includes('better-sqlite3'), 'better-sqlite3 has its native build script');
  t.equal(allow['better-sqlite3'], true, 'and it is allowed');
  t.equal(allow['onnxruntime-node'], false, "onnxruntime-node's download script is denied");
});
