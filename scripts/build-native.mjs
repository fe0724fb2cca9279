// Builds native/shm-map (the mmap addon of issue 19) with node-gyp, on `npm ci` (package.json's
// prepare) and by hand (`node scripts/build-native.mjs`). Node's headers come from
// npm_config_nodedir when set (npm passes it; the arm64 leg points it at the arm64 node), else
// from this node's own install prefix when it ships them (no download), else node-gyp fetches
// them. Without a C compiler the build fails: one warning line, exit 0, and the server keeps to
// positioned reads and writes for shared memory (the loader finds no addon).
/* global console, process */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'native', 'shm-map');
const prefix = join(dirname(process.execPath), '..');
const gyp =
  [process.env.npm_config_node_gyp, join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')].find(
    (p) => p && existsSync(p),
  ) ?? null;
const args = ['rebuild', '--directory', dir];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);

const warn = (why) => {
  console.warn(`edgefit: the shm-map addon was not built (${why}); shared memory stays on positioned reads and writes`);
  process.exit(0);
};
if (!gyp) warn('no node-gyp: npm ships it; set npm_config_node_gyp');
execFile(process.execPath, [gyp, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
  if (!err) {
    if (!existsSync(join(dir, 'build/Release/shm_map.node'))) warn('node-gyp left no build/Release/shm_map.node');
    return;
  }
  mkdirSync(join(dir, 'build'), { recursive: true });
  const log = join(dir, 'build', 'build-error.log');
  writeFileSync(log, `${stdout}\n${stderr}`);
  warn(`node-gyp failed, no C compiler? see ${log}`);
});
