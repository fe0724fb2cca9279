// docs/int8-boards.md's table is the code's decision: regenerated from the board fixtures through
// interpretSources()/selectProfile() it must equal the committed one, and each row is checked
// against int8.ts directly so a generator bug cannot hide a wrong row.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BEGIN, DOC, END, FIXTURES, int8Rows, int8Table, ortGuidance } from '../../devkit/int8-table.js';
import { featuresFromFlags } from '../../src/profile/cpuinfo.js';
import { recommendInt8 } from '../../src/profile/int8.js';
import { interpretSources } from '../../src/profile/interpret.js';
import { readSourcesFromDir } from '../../src/profile/sources.js';

t.test('the committed table equals the one generated from the code', async (t) => {
  const doc = readFileSync(DOC, 'utf8');
  const block = doc.slice(doc.indexOf(BEGIN) + BEGIN.length, doc.indexOf(END)).trim();
  t.equal(block, int8Table(), 'run `node dist/devkit/int8-table.js --write` after changing int8.ts, profiles or fixtures');
});

t.test('the issue 21 boards: s8 with dot-product, u8 without; never reduce_range on Arm', async (t) => {
  const rows = Object.fromEntries(int8Rows().map((r) => [r.board, r]));
  const expect: Record<string, { cpu: string; dot: boolean; act: 'u8' | 's8' }> = {
    'raspberry-pi-3': { cpu: 'Cortex-A53', dot: false, act: 'u8' },
    'raspberry-pi-4': { cpu: 'Cortex-A72', dot: false, act: 'u8' },
    'raspberry-pi-5': { cpu: 'Cortex-A76', dot: true, act: 's8' },
    'jetson-nano': { cpu: 'Cortex-A57', dot: false, act: 'u8' },
    'jetson-orin-nano': { cpu: 'Cortex-A78AE', dot: true, act: 's8' },
  };
  for (const [board, e] of Object.entries(expect)) {
    const r = rows[board]!;
    t.match(r.cpu, e.cpu, `${board} cpu`);
    t.equal(r.features.asimddp, e.dot, `${board} asimddp`);
    const hw = interpretSources(readSourcesFromDir(join(FIXTURES, board)));
    t.same(hw.int8, recommendInt8('arm64', hw.cpuinfo.features), `${board}: the row is int8.ts's answer`);
    t.equal(hw.int8.activation, e.act, `${board} activation`);
    t.equal(hw.int8.reduceRange, false, `${board} reduce_range`);
    t.match(r.detected, `act ${e.act}`);
    t.match(r.applied, `act ${e.act}`, `${board}: the board profile agrees with the detection`);
    t.match(r.ort, e.dot ? /dot-product "can get better/ : /without dot-product/);
  }
  // the decision moves with the feature word, not with the board name
  t.equal(recommendInt8('arm64', featuresFromFlags(['fp', 'asimd', 'asimddp'])).activation, 's8');
  t.equal(recommendInt8('arm64', featuresFromFlags(['fp', 'asimd'])).activation, 'u8');
  t.match(ortGuidance('arm64', false), /no reduce_range/);
});
