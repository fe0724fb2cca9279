// A throw-away PKI for TLS broker tests: a CA, a server certificate for 127.0.0.1/localhost and
// one client certificate per identity (CN = device id or user name), made with openssl through
// execFile with argument arrays (no shell) into a temp folder. EC P-256 keys: quick to make.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const OPENSSL = process.env.EDGEFIT_OPENSSL ?? '/usr/bin/openssl';

export interface Pki {
  dir: string;
  caFile: string;
  caKeyFile: string;
  server: { certFile: string; keyFile: string };
  /** per identity: <dir>/<name>.crt and <name>.key */
  clients: Record<string, { certFile: string; keyFile: string }>;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function openssl(args: string[]): Promise<void> {
  await run(OPENSSL, args, { timeout: 30_000 });
}

/** A CA named `name` in `dir` (created), with a server and the given clients signed by it. */
export async function makePki(dir: string, opts: { name?: string; clients?: string[] } = {}): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const p = (f: string): string => join(dir, f);
  const caFile = p('ca.crt');
  const caKeyFile = p('ca.key');
  await openssl([
    'req',
    '-x509',
    ...KEY,
    '-keyout',
    caKeyFile,
    '-out',
    caFile,
    '-days',
    '2',
    '-subj',
    `/CN=${opts.name ?? 'edgefit-test-ca'}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaf = async (name: string, cn: string, ext: string): Promise<{ certFile: string; keyFile: string }> => {
    const keyFile = p(`${name}.key`);
    const certFile = p(`${name}.crt`);
    const csr = p(`${name}.csr`);
    const extFile = p(`${name}.ext`);
    writeFileSync(extFile, ext);
    await openssl(['req', ...KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${cn}`]);
    await openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caFile,
      '-CAkey',
      caKeyFile,
      '-CAcreateserial',
      '-out',
      certFile,
      '-days',
      '2',
      '-extfile',
      extFile,
    ]);
    return { certFile, keyFile };
  };
  const server = await leaf(
    'server',
    'localhost',
    'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  const clients: Pki['clients'] = {};
  for (const c of opts.clients ?? []) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(c) || c === 'server' || c === 'ca') throw new Error(`bad client name '${c}'`);
    clients[c] = await leaf(c, c, 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  }
  return { dir, caFile, caKeyFile, server, clients };
}
