// The device page says who may change the device, from the status payload's `control` (issue 20).
import t from 'tap';
import { controlLine } from '../../src/dashboard/web/device-view.js';
import { checkPayload } from '../../src/telemetry/validate.js';

t.test('each control mode in words; an older agent is flagged', async (t) => {
  const status = (control?: string) => ({
    v: 1,
    deviceId: 'd',
    state: 'online',
    reason: 'start',
    ts: new Date().toISOString(),
    agentVersion: 'x',
    ...(control ? { control } : {}),
  });
  for (const c of ['read-only', 'operator-key', 'hmac-legacy']) checkPayload('status', status(c));
  t.throws(() => checkPayload('status', status('open')), 'an unknown mode is not a valid status');
  t.doesNotThrow(() => checkPayload('status', status()), 'older agents (no control) still validate');
  t.match(controlLine(status('read-only')), /read-only: no operator key is pinned/);
  t.match(controlLine(status('operator-key')), /only signed commands are obeyed/);
  t.match(controlLine(status('hmac-legacy')), /legacy shared secret/);
  t.match(controlLine(status()), /unknown/);
  t.match(controlLine(null), /unknown/);
});
