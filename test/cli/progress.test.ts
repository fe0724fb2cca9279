// The fit's progress lines: off a TTY one line per measured candidate, with the time left when
// the search has an estimate (issue 16).
import t from 'tap';
import { formatEta, progressPrinter } from '../../src/cli/progress.js';

t.test('time left is printed in seconds or minutes', async (t) => {
  t.equal(formatEta(8.4), '8 s');
  t.equal(formatEta(75), '1 min 15 s');
  t.equal(formatEta(-3), '0 s');
});

t.test('measured lines carry the time left; done does not', async (t) => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  const tty = process.stderr.isTTY;
  process.stderr.isTTY = false;
  process.stderr.write = ((s: string) => (lines.push(s), true)) as typeof process.stderr.write;
  try {
    const p = progressPrinter(true);
    p({ fraction: 0.2, stage: 'measured', message: 'm0.250', etaS: 130 });
    p({ fraction: 0.3, stage: 'measured', message: 'm0.500' });
    p({ fraction: 1, stage: 'done', etaS: 0 });
    progressPrinter(false)({ fraction: 0.5, stage: 'measured', etaS: 5 });
  } finally {
    process.stderr.write = write;
    process.stderr.isTTY = tty;
  }
  t.same(lines, ['edgefit: measured m0.250 (about 2 min 10 s left)\n', 'edgefit: measured m0.500\n', 'edgefit: done\n']);
});
