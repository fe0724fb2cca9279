// RSS under qemu-user: process.memoryUsage().rss reads 0 there; the helper falls back to
// /proc/self/status VmRSS. The fallback is exercised by handing it Node's figure as 0, and its
// number is checked against Node's real one in this (native) process.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseVmRss, rssBytes, rssMb } from '../../src/util/rss.js';

t.test('VmRSS is parsed from a real /proc/self/status', async (t) => {
  const status = readFileSync('/proc/self/status', 'latin1');
  const v = parseVmRss(status);
  t.ok(v !== null && v > 10 * 2 ** 20, `VmRSS ${v} bytes`);
  t.equal(parseVmRss('Name:\tnode\nVmRSS:\t  12345 kB\n'), 12345 * 1024);
  t.equal(parseVmRss('Name:\tnode\n'), null, 'a kernel thread has no VmRSS');
});

t.test('when Node reports 0 (qemu-user), the helper still returns this process RSS', async (t) => {
  const hold = Buffer.alloc(64 * 2 ** 20, 1); // resident, so both readings see it
  const node = process.memoryUsage.rss();
  const viaProc = rssBytes(() => 0);
  t.ok(viaProc > 0, 'not 0');
  t.ok(Math.abs(viaProc - node) / node < 0.2, `VmRSS ${viaProc} within 20% of Node's ${node}`);
  t.ok(viaProc > hold.length, 'counts the resident buffer');
  t.equal(
    rssBytes(() => 123456789),
    123456789,
    "Node's own figure wins when it has one",
  );
  t.ok(rssMb() > 64);
});
