// A library error names what is wrong in domain terms and carries a remedy; the CLI turns the
// remedy into its flag, the agent into its config key. The same error must read right in both.
import t from 'tap';
import { EdgefitError } from '../../src/errors.js';
import { cliMessage } from '../../src/cli/output.js';
import { configMessage } from '../../src/config/remedy.js';
import { resolveShape } from '../../src/data/inputs.js';

t.test('a dynamic input: the CLI says --shape with an example, the agent says model.shapes', async (t) => {
  const e = t.throws(() => resolveShape({ name: 'x', dtype: 'float32', shape: ['N', 3, 'H', 'W'] })) as EdgefitError;
  t.notMatch(e.message, /--|config/, 'the library message names neither a flag nor a config key');
  t.equal(cliMessage(e), "input 'x' has dynamic dims ?x3x?x?: give --shape x=1x3x224x224");
  t.equal(configMessage(e), "input 'x' has dynamic dims ?x3x?x?: set model.shapes.x in the config (e.g. [1, 3, 224, 224])");
});

t.test('a value to correct names its flag or key; an option the agent has no key for is left alone', async (t) => {
  const size = new EdgefitError('USAGE', 'the size budget must be a positive number of MB, got -1', { remedy: { option: 'sizeMb' } });
  t.equal(cliMessage(size), 'the size budget must be a positive number of MB, got -1 (--size-mb)');
  t.equal(configMessage(size), 'the size budget must be a positive number of MB, got -1 (config: budgets.sizeMb)');
  const steps = new EdgefitError('USAGE', 'prune steps must be an integer 1..50, got 0', { remedy: { option: 'steps' } });
  t.equal(cliMessage(steps), 'prune steps must be an integer 1..50, got 0 (--steps)');
  t.equal(configMessage(steps), 'prune steps must be an integer 1..50, got 0');
  const profile = new EdgefitError('CONFIG', 'no board profile matches', { remedy: { option: 'profile', choices: ['a', 'b'] } });
  t.equal(cliMessage(profile), 'no board profile matches: pass --profile with one of: a, b');
  t.equal(configMessage(profile), 'no board profile matches: set profile in the config to one of: a, b');
});

t.test('errors without a remedy, and foreign errors, stay one line as they are', async (t) => {
  t.equal(cliMessage(new EdgefitError('DATA', 'bad npy header\nsecond line')), 'bad npy header');
  t.equal(configMessage(new Error('plain')), 'plain');
  t.equal(cliMessage('a string'), 'a string');
});
