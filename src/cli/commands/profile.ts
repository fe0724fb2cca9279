// `edgefit profile`: what this box is (CPU, features, memory, board, int8 flavour, optionally a
// micro-benchmark) and which board profile edgefit will apply to it.
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { captureSources, findProfile, loadProfiles, probeHardware, selectProfile } from '../../profile/index.js';
import { formatProfile } from '../../profile/format.js';
import { printJson } from '../output.js';

interface Args {
  json?: boolean;
  bench?: boolean;
  profile?: string;
  'profiles-dir'?: string;
  threads?: number;
  'facts-dir'?: string;
  capture?: string;
}

export const command: CommandModule<object, Args> = {
  command: 'profile',
  describe: 'print the hardware profile of this machine and the board profile chosen for it',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', describe: 'print JSON ({hardware, profile})' })
      .option('bench', {
        type: 'boolean',
        describe: 'also run a ~8 s onnxruntime micro-benchmark (fp32 vs int8 GEMM/Conv, memory bandwidth)',
      })
      .option('profile', { type: 'string', describe: 'use this board profile instead of the matching one' })
      .option('profiles-dir', { type: 'string', describe: 'folder of board profiles (default: the profiles/ shipped with edgefit)' })
      .option('threads', { type: 'number', describe: 'threads for --bench (default: physical cores)' })
      .option('facts-dir', {
        type: 'string',
        describe: 'read hardware facts from this captured facts folder instead of the live machine (docs/facts-dir.md)',
      })
      .option('capture', {
        type: 'string',
        describe: "write this machine's hardware facts into a new folder DIR (to send to support, or to replay with --facts-dir)",
      })
      .conflicts('capture', ['facts-dir', 'bench']) as never,
  handler: async (a) => {
    if (a.threads !== undefined && (!Number.isInteger(a.threads) || a.threads < 1 || a.threads > 256)) {
      throw new EdgefitError('USAGE', `--threads must be an integer 1..256, got ${a.threads}`);
    }
    const factsDir = a['facts-dir'] ?? process.env.EDGEFIT_FACTS_DIR ?? null;
    if (a.capture !== undefined) {
      const written = await captureSources(a.capture);
      process.stdout.write(`captured ${written.length} files into ${a.capture}: ${written.join(', ')}\n`);
      return;
    }
    // profiles first: a malformed profile or unknown --profile fails before the slow benchmark
    const profiles = loadProfiles(a['profiles-dir']);
    if (a.profile !== undefined) findProfile(profiles, a.profile);
    const hw = await probeHardware({
      bench: a.bench === true,
      factsDir,
      ...(a.threads !== undefined ? { benchThreads: a.threads } : {}),
    });
    const sel = selectProfile(hw, a.profile, profiles);
    if (a.json) {
      const { profile, ...resolved } = sel;
      printJson({ hardware: hw, profile: { ...profile, resolved } });
    } else {
      process.stdout.write(formatProfile(hw, sel));
    }
  },
};
