import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import {
  topicsFor,
  backoffDelay,
  checkPayload,
  checkArgs,
  signRequest,
  loadPrivateKey,
  verifyRequest,
  loadPublicKey,
} from '../../src/telemetry/index.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { Adaptation } from '../../src/agent/index.js';
import { mergeBudgets } from '../../src/budgets/index.js';

t.test('topics: prefix, verbs, no wildcards', async (t) => {
  const tp = topicsFor('dev1');
  t.equal(tp.status, 'edgefit/dev1/status');
  t.equal(tp.verbOf('edgefit/dev1/request/ping'), 'ping');
  t.equal(tp.verbOf('edgefit/dev2/request/ping'), undefined, 'another device');
  t.equal(tp.verbOf('edgefit/dev1/request/a/b'), undefined);
  t.throws(() => topicsFor('dev/1'), { code: 'CONFIG' });
  t.throws(() => topicsFor('d', 'fleet/+/'), { code: 'CONFIG' });
  t.equal(topicsFor('d', 'site/{deviceId}').metrics, 'site/d/metrics');
});

t.test('backoff grows, is capped and jittered', async (t) => {
  t.equal(
    backoffDelay(0, 500, 30000, () => 0),
    250,
  );
  t.equal(
    backoffDelay(0, 500, 30000, () => 1),
    500,
  );
  t.equal(
    backoffDelay(20, 500, 30000, () => 1),
    30000,
  );
  t.ok(backoffDelay(3, 500, 30000, () => 0.5) > backoffDelay(1, 500, 30000, () => 0.5));
});

t.test('payload validation lists every error with its path', async (t) => {
  t.throws(() => checkPayload('request', { txn: 'bad txn!', extra: 1 }), /txn.*extra|extra.*txn/);
  t.throws(() => checkArgs('set-budget', { latencyMs: 5, latencyFactor: 0.5 }), { code: 'DATA' });
  t.throws(() => checkArgs('set-budget', {}), { code: 'DATA' });
  t.throws(() => checkArgs('deploy', { path: '/etc/shadow' }), { code: 'DATA' });
  t.same(checkArgs('deploy', { candidateId: 'c1' }), { candidateId: 'c1' });
});

t.test('HMAC and ed25519 request signing, bound to device, verb and args', async (t) => {
  const now = Date.now();
  const hmac = { mode: 'hmac' as const, secret: 's'.repeat(32), maxSkewMs: 60_000 };
  const hkey = { mode: 'hmac' as const, secret: hmac.secret };
  const sig = signRequest(hkey, 'd1', 'fit', 't1', now, { budgets: { ramMb: 100 } });
  t.doesNotThrow(() => verifyRequest(hmac, 'd1', 'fit', { txn: 't1', ts: now, args: { budgets: { ramMb: 100 } }, sig }));
  t.throws(
    () => verifyRequest(hmac, 'd1', 'deploy', { txn: 't1', ts: now, args: { budgets: { ramMb: 100 } }, sig }),
    { code: 'INTEGRITY' },
    'verb bound',
  );
  t.throws(
    () => verifyRequest(hmac, 'd2', 'fit', { txn: 't1', ts: now, args: { budgets: { ramMb: 100 } }, sig }),
    { code: 'INTEGRITY' },
    'device bound',
  );
  t.throws(
    () => verifyRequest(hmac, 'd1', 'fit', { txn: 't1', ts: now, args: { budgets: { ramMb: 1 } }, sig }),
    { code: 'INTEGRITY' },
    'args bound',
  );
  t.throws(() => verifyRequest(hmac, 'd1', 'fit', { txn: 't1', ts: now }), /not signed/);
  t.throws(
    () => verifyRequest(hmac, 'd1', 'fit', { txn: 't1', ts: now - 120_000, sig: signRequest(hkey, 'd1', 'fit', 't1', now - 120_000, {}) }),
    /away from the device clock/,
  );
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const ed = {
    mode: 'ed25519' as const,
    publicKeys: [other.publicKey, loadPublicKey(publicKey.export({ type: 'spki', format: 'pem' }).toString())],
    maxSkewMs: 60_000,
  };
  const ekey = { mode: 'ed25519' as const, privateKey: loadPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()) };
  const s2 = signRequest(ekey, 'd1', 'rollback', 't2', now, {});
  t.doesNotThrow(() => verifyRequest(ed, 'd1', 'rollback', { txn: 't2', ts: now, sig: s2 }), 'any pinned key verifies');
  t.throws(() => verifyRequest(ed, 'd1', 'rollback', { txn: 't3', ts: now, sig: s2 }), { code: 'INTEGRITY' });
  t.throws(() => verifyRequest({ ...ed, publicKeys: [other.publicKey] }, 'd1', 'rollback', { txn: 't2', ts: now, sig: s2 }), {
    code: 'INTEGRITY',
  });
});

t.test('agent config: defaults, env and flags override, all errors at once', async (t) => {
  const c = loadAgentConfig({ env: { EDGEFIT_BROKER: 'mqtt://h:1', EDGEFIT_METRICS_INTERVAL: '7' }, flags: { metricsIntervalS: 3 } });
  t.equal(c.mqtt.url, 'mqtt://h:1');
  t.equal(c.metricsIntervalS, 3, 'flag beats env');
  t.equal(c.probe.stepDownAfter, 3, 'default filled');
  t.throws(
    () => loadAgentConfig({ flags: { metricsIntervalS: -1, mqtt: { keepaliveS: 'x' }, bogus: 1 } }),
    /metricsIntervalS.*mqtt\.keepaliveS.*bogus|bogus/,
  );
  t.throws(() => loadAgentConfig({ file: '/nonexistent/cfg.json' }), { code: 'FILE_NOT_FOUND' });
  t.equal(c.model.calib, null, 'no calibration path by default (the agent picks the bundled images for the bundled model)');
  const k = loadAgentConfig({
    env: { EDGEFIT_CALIB: '/data/imgs', EDGEFIT_MODEL: '/m.onnx' },
    flags: { model: { shapes: { x: [1, 3, 8, 8] } } },
  });
  t.same(
    [k.model.path, k.model.calib, k.model.shapes],
    ['/m.onnx', '/data/imgs', { x: [1, 3, 8, 8] }],
    'EDGEFIT_CALIB and the model flags merge',
  );
});

t.test('budget layers and frontier adaptation', async (t) => {
  t.same(mergeBudgets({ latencyFactor: 0.5, ramMb: 100 }, { latencyMs: 20 }), { ramMb: 100, latencyMs: 20 });
  const entry = (id: string, p50: number) => ({
    id,
    config: { structured: 0, unstructured: 0, quant: 'none' as const, threads: 1 },
    modelPath: '',
    sha256: '',
    sizeBytes: 0,
    latencyP50Ms: p50,
    latencyP95Ms: p50,
    modelRssMb: 0,
    fidelity: 1,
    meets: { latency: true, ram: true, fidelity: true },
  });
  const f = [entry('big', 10), entry('small', 5)];
  const a = new Adaptation(2, 2, 0.9);
  t.same(a.observe(15, 12, f, 0, 0), { kind: 'stay' });
  t.same(a.observe(15, 12, f, 0, 0), { kind: 'down', to: 1 }, 'two probes over budget in a row');
  t.same(a.observe(7, 12, f, 1, 0), { kind: 'stay' }, 'predicted 14 ms for big: not yet');
  t.same(a.observe(5, 12, f, 1, 0), { kind: 'stay' });
  t.same(a.observe(5, 12, f, 1, 0), { kind: 'up', to: 0 }, 'predicted 10 ms <= 10.8 twice');
});

t.test('MQTT TLS options: files only with a TLS URL, cert and key together, unreadable files are CONFIG', async (t) => {
  const { mqttTlsOptions } = await import('../../src/telemetry/tls.js');
  const ca = new URL('../../../test/fixtures', import.meta.url).pathname; // a folder: readable path, not a file
  t.throws(() => mqttTlsOptions('mqtt://broker:1883', { caFile: '/etc/hostname' }), { code: 'CONFIG', message: /not TLS: use mqtts/ });
  t.throws(() => mqttTlsOptions('tls://broker:8883', { caFile: '/etc/hostname' }), { code: 'CONFIG' }, 'tls: breaks mqtt.js client certs');
  t.throws(() => mqttTlsOptions('mqtts://broker:8883', { certFile: '/etc/hostname' }), {
    code: 'CONFIG',
    message: /both certFile and keyFile/,
  });
  t.throws(() => mqttTlsOptions('mqtts://broker:8883', { caFile: '/nonexistent/ca.crt' }), {
    code: 'CONFIG',
    message: /cannot read MQTT TLS CA file/,
  });
  t.throws(() => mqttTlsOptions('mqtts://broker:8883', { caFile: ca }), { code: 'CONFIG' });
  const o = mqttTlsOptions('mqtts://broker:8883', { caFile: '/etc/hostname' });
  t.ok(Buffer.isBuffer(o.ca));
  t.equal(o.rejectUnauthorized, true, 'server certificates are checked unless switched off');
  t.same(mqttTlsOptions('mqtt://127.0.0.1:1883', {}), { rejectUnauthorized: true }, 'no files: plain URLs stay allowed');
});
