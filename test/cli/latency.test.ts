// `edgefit latency` (issue 17) as a user runs it: the report names the block and its evidence,
// the costliest layers and the build time; a second run reads the cache; a dynamic input
// without --shape is a one-line usage error naming the flag.
import t from 'tap';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OCR_MODELS, runCli } from '../../devkit/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-latency-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const env = { EDGEFIT_CACHE_DIR: dir };

t.test('latency: report, then the same tables from the cache', async (t) => {
  const r = await runCli(['latency', OCR_MODELS.cls.file, '--shape', 'x=1x3x48x192', '--top', '3'], { env });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /block: (4|8|16|32) channels \((measured|from the CPU features)/);
  t.match(r.stdout, /Conv 3x3 depthwise w at/);
  t.match(r.stdout, /top 3 layers by time/);
  t.match(r.stdout, /built in [\d.]+ s\n/);
  t.ok(readdirSync(join(dir, 'latency')).length >= 2, 'tables and block cached under latency/');
  const again = await runCli(['latency', OCR_MODELS.cls.file, '--shape', 'x=1x3x48x192', '--json'], { env });
  t.equal(again.code, 0, again.stderr);
  const j = JSON.parse(again.stdout) as { cached: boolean; layers: unknown[]; key: { threads: number } };
  t.equal(j.cached, true);
  t.equal(j.key.threads, 2);
  t.ok(j.layers.length >= 50);
});

t.test('latency: a dynamic input without --shape is a usage error', async (t) => {
  const r = await runCli(['latency', OCR_MODELS.cls.file], { env });
  t.equal(r.code, 2);
  t.match(r.stderr, /--shape x=/);
});
