// scripts/simulate-fleet as a user runs it: devices with Last Wills, one connection cut abruptly.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { ROOT } from '../../devkit/paths.js';
import { startBroker } from '../../devkit/broker.js';
import { checkPayload } from '../../src/telemetry/validate.js';
import type { StatusPayload } from '../../src/telemetry/payloads.js';

const SCRIPT = join(ROOT, 'dist/scripts/simulate-fleet.js');

function run(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, ...args], { timeout: 60_000 }, (err, _out, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
}

t.test('bad arguments: one line, exit 2', async (t) => {
  const r = await run(['--devices', '0']);
  t.equal(r.code, 2);
  t.equal(r.stderr, "simulate-fleet: --devices must be a positive number, got '0'\n");
  const r2 = await run(['--devices', '2', '--prefix', 'a/+/b', '--broker', 'mqtt://127.0.0.1:1']);
  t.equal(r2.code, 2);
  t.match(r2.stderr, /^simulate-fleet: bad --prefix 'a\/\+\/b'\n$/);
});

t.test('--kill cuts one device: the broker publishes its Last Will; the rest go offline cleanly', async (t) => {
  const broker = await startBroker();
  t.teardown(() => broker.stop());
  const w = await connectAsync(broker.url);
  t.teardown(() => w.endAsync());
  const seen: StatusPayload[] = [];
  w.on('message', (_t, p) => seen.push(checkPayload('status', JSON.parse(p.toString()))));
  await w.subscribeAsync('edgefit/+/status', { qos: 1 });
  const r = await run(['--broker', broker.url, '--devices', '3', '--duration', '2.5', '--kill', 'sim-0002', '--kill-after', '1']);
  t.equal(r.code, 0, r.stderr);
  const of = (id: string): string[] => seen.filter((s) => s.deviceId === id).map((s) => `${s.state}/${s.reason}`);
  t.same(of('sim-0001'), ['online/start', 'offline/shutdown']);
  t.same(of('sim-0002'), ['online/start', 'offline/lwt'], 'the Last Will, sent by the broker');
  t.same(of('sim-0003'), ['online/start', 'offline/shutdown']);
  t.match(r.stderr, /cut sim-0002's connection/);
});
