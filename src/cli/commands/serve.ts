import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { DEFAULT_SERVE_PORT } from '../../config/agent.js';
import { Engine } from '../../serve/engine.js';
import { isLoopback, ServeServer } from '../../serve/http.js';
import { parseShapes } from '../output.js';

interface Args {
  model: string;
  port: number;
  host: string;
  socket?: string;
  'token-file'?: string;
  threads: number;
  shape?: string[];
  'max-body-mb': number;
  name: string;
}

function sha256(file: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => res(h.digest('hex')))
      .on('error', rej);
  });
}

function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new EdgefitError('USAGE', `cannot read the token file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (token.length < 16) throw new EdgefitError('USAGE', `the token in ${file} is shorter than 16 characters`);
  return token;
}

export const command: CommandModule<object, Args> = {
  command: 'serve <model>',
  describe: "Serve a model to the box's applications: KServe v2 HTTP inference (JSON or binary tensors) on 127.0.0.1 and a Unix socket",
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model file' })
      .option('port', { type: 'number', default: DEFAULT_SERVE_PORT, describe: 'TCP port (0: any free one; -1: no TCP listener)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'TCP host (anything but loopback needs --token-file)' })
      .option('socket', { type: 'string', describe: 'also listen on this Unix socket path' })
      .option('token-file', { type: 'string', describe: 'file holding a bearer token every route but health then requires' })
      .option('threads', { type: 'number', default: 2, describe: 'onnxruntime intra-op threads' })
      .option('shape', { type: 'string', array: true, describe: 'warm-up dims for a dynamic input, e.g. x=1x3x640x640 (repeatable)' })
      .option('max-body-mb', { type: 'number', default: 64, describe: 'largest request body accepted, MiB (413 beyond)' })
      .option('name', { type: 'string', default: 'default', describe: 'the model name in request paths (/v2/models/<name>/infer)' }),
  handler: async (a) => {
    if (!Number.isInteger(a.threads) || a.threads < 1) throw new EdgefitError('USAGE', '--threads must be a positive integer');
    if (!Number.isInteger(a.port) || a.port < -1 || a.port > 65535)
      throw new EdgefitError('USAGE', '--port must be 0..65535 (or -1 for none)');
    if (a.port === -1 && !a.socket) throw new EdgefitError('USAGE', '--port -1 needs --socket: nothing would listen');
    const file = resolve(a.model);
    if (!existsSync(file)) throw new EdgefitError('FILE_NOT_FOUND', `no model file ${a.model}`);
    const shapes = Object.fromEntries(parseShapes(a.shape));
    const token = a['token-file'] ? readToken(a['token-file']) : null;
    if (a.port !== -1 && !token && !isLoopback(a.host))
      throw new EdgefitError('USAGE', `--host ${a.host} is not loopback: give --token-file too`);
    const engine = new Engine();
    const server = new ServeServer(engine, {
      host: a.host,
      port: a.port === -1 ? null : a.port,
      socket: a.socket ? resolve(a.socket) : null,
      token,
      maxBodyMb: a['max-body-mb'],
      name: a.name,
    });
    const hash = await sha256(file);
    const version = hash.slice(0, 12);
    try {
      const loaded = await engine.load({ file, version, sha256: hash, level: null, label: basename(file), threads: a.threads, shapes });
      const where = await server.listen();
      const at = [where.url, where.socket].filter(Boolean).join(' and ');
      process.stdout.write(
        `serving ${basename(file)} as '${server.name}' version ${version} (loaded in ${Math.round(loaded.loadMs)} ms) at ${at}\n`,
      );
      process.stdout.write(`  POST ${where.url ?? 'http://localhost'}/v2/models/${server.name}/infer   (docs/serving.md)\n`);
    } catch (e) {
      await engine.close();
      throw e;
    }
    // until SIGINT/SIGTERM, or the model's worker dies (nothing left to serve: exit non-zero)
    const died = await new Promise<string | null>((done) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        done(null);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      engine.once('error', (message) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        done(message);
      });
    });
    await server.close();
    await engine.close();
    if (died !== null) throw new EdgefitError('EVAL', died);
    process.stdout.write('stopped\n');
  },
};
