// systemd readiness and watchdog. Node has no unix datagram sockets, so rather than a native
// addon we run systemd-notify (argument array, no shell); the unit sets NotifyAccess=all
// because the datagram then comes from the helper's pid, not ours.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

const BIN = ['/usr/bin/systemd-notify', '/bin/systemd-notify'].find((p) => existsSync(p));

function notify(args: string[]): void {
  if (!process.env.NOTIFY_SOCKET || !BIN) return;
  execFile(BIN, args, { timeout: 5000 }, () => undefined);
}

/** Tell systemd we are ready and start pinging the watchdog at half its period. */
export function sdReady(status: string): NodeJS.Timeout | undefined {
  notify(['--ready', `--status=${status}`]);
  const usec = Number(process.env.WATCHDOG_USEC ?? 0);
  if (!usec) return undefined;
  const t = setInterval(() => notify(['WATCHDOG=1']), Math.max(1000, usec / 2000));
  t.unref();
  return t;
}

export function sdStopping(): void {
  notify(['STOPPING=1']);
}
