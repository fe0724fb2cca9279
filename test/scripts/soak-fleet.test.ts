// The fleet soak (scripts/soak-fleet.ts) at a small scale for a few seconds: a real Mosquitto,
// the dashboard, 5 simulated devices, the real agent and a request flood. What is asserted is
// the report's structure and that the agent's metrics arrived, none lost, through the flood
// (the 10-minute, 1,000-device run is the script's default, run by hand); no timing.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MOSQUITTO } from '../../devkit/broker.js';
import { ROOT } from '../../devkit/paths.js';
import type { FleetSoakReport } from '../../devkit/soak.js';

t.test('a short small soak reports RSS rows, every metric arrived, the flood was sent and answered', { timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-soak-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'report.json');
  const args = [
    '--duration',
    '8',
    '--devices',
    '5',
    '--sim-rate',
    '1',
    '--flood-rate',
    '20',
    '--row-s',
    '4',
    '--drain-s',
    '30',
    '--json',
    out,
  ];
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [join(ROOT, 'dist/scripts/soak-fleet.js'), ...args], { timeout: 220_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  t.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(out, 'utf8')) as FleetSoakReport;
  t.match(rep.config, { durationS: 8, devices: 5, simRate: 1, floodRate: 20, metricsIntervalS: 1 });
  t.equal(rep.config.broker, existsSync(MOSQUITTO) ? 'mosquitto' : 'aedes');
  t.same(
    rep.rows.map((x) => x.s),
    [0, 4, 8],
    'a row at the start and one per --row-s',
  );
  for (const row of rep.rows) {
    t.ok(row.agentRssMb > 20 && row.agentRssMb < 1000, `agent RSS ${row.agentRssMb} MB is a process's`);
    t.ok(row.dashboardRssMb > 20 && row.dashboardRssMb < 1000, `dashboard RSS ${row.dashboardRssMb} MB is a process's`);
  }
  t.ok(rep.rows[rep.rows.length - 1]!.requestsSent >= 100, 'the flood ran at its rate');
  // metrics every second for 8 s plus the drain: all of them, in order, none lost
  t.ok(rep.metrics.received >= 8, `metrics received: ${rep.metrics.received}`);
  t.equal(rep.metrics.firstSeq, 1, "from the agent's first metrics message");
  t.equal(rep.metrics.lost, 0, 'no metric lost');
  t.equal(rep.metrics.stillQueued, 0, 'the outbox drained');
  t.ok(rep.metrics.produced !== null && rep.metrics.produced >= rep.metrics.received, 'produced is read from the agent');
  t.ok(rep.metrics.delayMaxS !== null && rep.metrics.delayMaxS >= 0);
  // every flood request is refused with a response (none was signed)
  t.equal(rep.flood.sent, rep.rows[rep.rows.length - 1]!.requestsSent);
  t.ok(rep.flood.responses > 0, 'the agent answered the flood');
  t.ok(rep.dashboard.devices !== null && rep.dashboard.devices >= 6, 'the dashboard saw the simulated devices and the agent');
  t.same(Object.keys(rep.rssMb), ['agent', 'dashboard']);
});
