// A signal while the agent is still starting (profiling, starting its broker and serve process:
// seconds on a Pi) ends in the same clean stop as one after: exit 0, the stop logged, the serve
// process gone, the state file intact. Before, the handlers were installed only after start(),
// so a SIGTERM from systemd during a slow start was Node's default kill (exit by signal).
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { cleanupDir, freePort } from '../../devkit/broker.js';
import { startAgentProc, type AgentProc } from '../helpers/agent-proc.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-sigstart-'));
const procs: AgentProc[] = [];
t.teardown(() => {
  for (const p of procs) p.child.kill('SIGKILL');
  cleanupDir(dir);
});

async function until(what: string, ms: number, f: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${sig} during start: a clean stop once started, exit 0`, async (t) => {
    const state = join(dir, sig);
    const cfg = join(dir, `${sig}.json`);
    writeFileSync(cfg, JSON.stringify({ mqtt: { embeddedPort: await freePort() } }));
    const p = startAgentProc({ deviceId: `sig-${sig.toLowerCase()}`, stateDir: state, extraArgs: ['--config', cfg, '--no-dashboard'] });
    procs.push(p);
    // the control line is logged inside start(), before the broker, serve process and profiling
    await until('the agent starting', 60_000, () => /control: /.test(p.output()));
    p.child.kill(sig);
    t.equal(await p.exited, 0, 'exit 0, not a kill by the signal');
    t.match(p.output(), new RegExp(`${sig} while starting: stopping once started`), 'the signal was taken during start');
    t.match(p.output(), new RegExp(`stopping \\(${sig}\\)`), 'then the ordinary stop ran');
    const db = new Database(join(state, 'state.db'), { readonly: true });
    t.teardown(() => db.close());
    t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'the state file is intact');
  });
}

t.test('a second signal during start exits at once', async (t) => {
  const state = join(dir, 'twice');
  const cfg = join(dir, 'twice.json');
  writeFileSync(cfg, JSON.stringify({ mqtt: { embeddedPort: await freePort() } }));
  const p = startAgentProc({ deviceId: 'sig-twice', stateDir: state, extraArgs: ['--config', cfg, '--no-dashboard'] });
  procs.push(p);
  await until('the agent starting', 60_000, () => /control: /.test(p.output()));
  p.child.kill('SIGINT');
  await until('the first signal taken', 30_000, () => /SIGINT while starting/.test(p.output()));
  p.child.kill('SIGINT');
  t.equal(await p.exited, 130, "exit 130 (Ctrl-C's code), without waiting for start");
});
