#!/usr/bin/env node
// Entry point. Each command lives in its own file under ./commands and exports `command`
// (a yargs CommandModule); they are found at start-up so adding a command touches no shared file.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { reportError } from './output.js';

async function loadCommands(first: string | undefined): Promise<CommandModule[]> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'commands');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .sort();
  // A command names its file: load only that one. Command modules pull in heavy dependencies
  // (onnxruntime, the passes) that the long-running `agent` must not carry; help and unknown
  // commands load them all.
  if (first && /^[a-z][a-z0-9-]*$/.test(first) && files.includes(`${first}.js`)) {
    const mod = (await import(pathToFileURL(join(dir, `${first}.js`)).href)) as { command?: CommandModule };
    const name = typeof mod.command?.command === 'string' ? mod.command.command.split(' ')[0] : undefined;
    if (mod.command && name === first) return [mod.command];
  }
  const mods: CommandModule[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { command?: CommandModule };
    if (mod.command) mods.push(mod.command);
  }
  return mods;
}

async function main(): Promise<void> {
  const argv = hideBin(process.argv);
  const verbose = argv.includes('--verbose');
  try {
    let y = yargs(argv)
      .scriptName('edgefit')
      .usage('$0 <command> [options]\n\nFit neural networks to the edge box they run on.')
      .option('verbose', { type: 'boolean', describe: 'print stack traces on errors', global: true })
      .strict()
      .demandCommand(1, 'name a command; see edgefit --help')
      .recommendCommands()
      .fail((msg, err) => {
        if (err) throw err;
        // yargs puts the detail on later lines ("Invalid values:\n  Argument: ..."); errors print one line
        const line = msg
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean)
          .join(' ');
        throw Object.assign(new Error(line), { usage: true });
      })
      .help()
      .version();
    for (const c of await loadCommands(argv[0])) y = y.command(c);
    await y.parseAsync();
  } catch (e) {
    process.exitCode = reportError(e, verbose);
  }
}

await main();
