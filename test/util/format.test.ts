// Figures as users read them: a sub-millisecond budget must not print as 0.0 ms.
import t from 'tap';
import { ms } from '../../src/util/format.js';
import { shortfallLine } from '../../src/cli/commands/fit.js';

t.test('ms keeps two significant digits below 1 ms', async (t) => {
  t.equal(ms(123.4), '123');
  t.equal(ms(5.43), '5.4');
  t.equal(ms(0.0512), '0.051');
  t.equal(ms(0), '0');
  t.equal(ms(Number.NaN), 'NaN');
});

t.test('a fit that met no budget names each miss, readable for a 0.05 ms model', async (t) => {
  const line = shortfallLine({ shortfall: { latencyMs: 0.012, sizeMb: 0.043 }, latencyBudgetMs: 0.041 }, 0.053, undefined);
  t.match(line, /latency misses by 0\.012 ms \(budget 0\.041 ms, best p\d+ 0\.053 ms\)/);
  t.match(line, /compressed size misses by 0\.04 MB/);
  t.match(line, /keeps the fidelity floor$/);
});

t.test('a shortfall with nothing left to name (met on the re-timing) still says why', async (t) => {
  const line = shortfallLine({ shortfall: {}, latencyBudgetMs: 10 }, 9, 'latency');
  t.notMatch(line, /: ;/, 'no empty reason');
  t.match(line, /met the budgets when re-timed/);
  t.match(line, /--prefer latency/);
});
