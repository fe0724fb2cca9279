// Simulated fleet for demos, tests and benchmarks:
//   node dist/scripts/simulate-fleet.js --broker mqtt://127.0.0.1:1883 --devices 50 [--prefix edgefit]
//        [--rate 1] [--duration 600] [--kill-after 30 --kill sim-0003]
//        [--ca ca.crt] [--cert-dir certs/] [--insecure]   (TLS: mqtts:// broker; docs/fleet-broker.md)
// Each device logs in with <cert-dir>/<id>.crt/.key (CN = its id), or as username <id> with the
// password in EDGEFIT_SIM_PASSWORD (from the environment, so it stays out of `ps`).
// Each device is its own MQTT connection with a Last Will. --kill cuts one device's socket
// (no DISCONNECT) after --kill-after seconds so the broker publishes its offline Last Will.
import { parseArgs } from 'node:util';
import { EdgefitError, oneLine } from '../src/errors.js';
import { SimFleet } from '../devkit/sim.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      broker: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      devices: { type: 'string', default: '10' },
      prefix: { type: 'string', default: 'edgefit' },
      rate: { type: 'string', default: '1' },
      duration: { type: 'string' },
      kill: { type: 'string' },
      'kill-after': { type: 'string', default: '10' },
      ca: { type: 'string' },
      'cert-dir': { type: 'string' },
      insecure: { type: 'boolean', default: false },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: simulate-fleet --broker url --devices N [--prefix edgefit] [--rate 1] [--duration s] [--kill sim-0001 --kill-after s]\n' +
        '       [--ca ca.crt] [--cert-dir dir-of-<id>.crt/.key] [--insecure]; EDGEFIT_SIM_PASSWORD: password of username <id>\n',
    );
    return;
  }
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new EdgefitError('USAGE', `--${name} must be a positive number, got '${v}'`);
    return n;
  };
  const fleet = new SimFleet({
    broker: values.broker!,
    devices: num('devices', values.devices)!,
    prefix: values.prefix!,
    rate: num('rate', values.rate)!,
    tls: { ...(values.ca ? { caFile: values.ca } : {}), rejectUnauthorized: !values.insecure },
    ...(values['cert-dir'] ? { certDir: values['cert-dir'] } : {}),
    ...(process.env.EDGEFIT_SIM_PASSWORD ? { password: process.env.EDGEFIT_SIM_PASSWORD } : {}),
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const t0 = Date.now();
  await fleet.start();
  process.stderr.write(`simulate-fleet: ${fleet.devices.length} devices connected to ${values.broker} in ${Date.now() - t0} ms\n`);
  const timers: NodeJS.Timeout[] = [];
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    for (const t of timers) clearTimeout(t);
    await fleet.stop();
    process.stderr.write('simulate-fleet: stopped (devices published offline)\n');
  };
  if (values.kill) {
    const d = fleet.get(values.kill);
    if (!d) throw new EdgefitError('USAGE', `--kill: no simulated device '${values.kill}'`);
    timers.push(
      setTimeout(
        () => {
          d.kill();
          process.stderr.write(`simulate-fleet: cut ${d.id}'s connection\n`);
        },
        num('kill-after', values['kill-after'])! * 1000,
      ),
    );
  }
  const duration = num('duration', values.duration);
  await new Promise<void>((resolve) => {
    if (duration) timers.push(setTimeout(resolve, duration * 1000));
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await stop();
}

main().catch((e: unknown) => {
  process.stderr.write(`simulate-fleet: ${oneLine(e)}\n`);
  process.exitCode = e instanceof EdgefitError ? e.exitCode : 1;
});
