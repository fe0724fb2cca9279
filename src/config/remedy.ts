// A library error's remedy (src/errors.ts) in the agent's terms: the config key that supplies or
// corrects it. The CLI's flags for the same options live in src/cli/output.ts. Options the agent's
// config does not have (pruning knobs, the dashboard token) leave the message as it is.
import { EdgefitError, oneLine, type OptionName, type Remedy } from '../errors.js';

const CONFIG_KEYS: Partial<Record<OptionName, string>> = {
  shapes: 'model.shapes',
  profile: 'profile',
  calib: 'model.calib',
  latencyMs: 'budgets.latencyMs',
  latency: 'budgets.latencyFactor',
  minFidelity: 'budgets.minFidelity',
  ramMb: 'budgets.ramMb',
  sizeMb: 'budgets.sizeMb',
  task: 'model.task',
};

function remedyText(r: Remedy): string {
  const key = CONFIG_KEYS[r.option];
  if (!key) return '';
  if (r.option === 'shapes')
    return `: set ${key}${r.input ? `.${r.input}` : ''} in the config${r.example ? ` (e.g. [${r.example.split('x').join(', ')}])` : ''}`;
  if (r.option === 'profile' && r.choices) return `: set ${key} in the config to one of: ${r.choices.join(', ')}`;
  return ` (config: ${key})`;
}

/** The error's one line, with its remedy as a config change. */
export function configMessage(e: unknown): string {
  const msg = oneLine(e);
  return e instanceof EdgefitError && e.remedy ? `${msg}${remedyText(e.remedy)}` : msg;
}
