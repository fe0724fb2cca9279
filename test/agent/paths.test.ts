// The state folder: config wins, then systemd's STATE_DIRECTORY, then the XDG state home; the
// layout under it is what install.sh, the dashboard and the crash tests expect.
import t from 'tap';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveStateDir, statePaths } from '../../src/agent/paths.js';

t.test('state folder precedence', async (t) => {
  const env = { STATE_DIRECTORY: '/var/lib/edgefit', XDG_STATE_HOME: '/x/state' };
  t.equal(resolveStateDir('rel/state', env), resolve('rel/state'), 'configured, made absolute');
  t.equal(resolveStateDir(null, env), '/var/lib/edgefit', 'systemd StateDirectory=');
  t.equal(resolveStateDir(null, { XDG_STATE_HOME: '/x/state' }), '/x/state/edgefit');
  t.equal(resolveStateDir(undefined, {}), join(homedir(), '.local/state/edgefit'));
});

t.test('layout', async (t) => {
  const p = statePaths('/s');
  t.same(
    { root: p.root, db: p.db, models: p.models, fit: p.fit(12) },
    { root: '/s', db: '/s/state.db', models: '/s/models', fit: '/s/fits/12' },
  );
});
