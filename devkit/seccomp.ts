// Run a command under the system-call filter of a systemd unit, without systemd: the unit's
// SystemCallFilter= lines are expanded with `systemd-analyze syscall-filter`, and a small C
// launcher (devkit/seccomp-run.c, built with gcc against libseccomp.so.2) loads that allow-list
// with EPERM for the rest before exec. Dev-time only: tests check that the agent works under the
// filter the installed unit declares. null from prepare() when a piece is missing on this box.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './paths.js';

const run = promisify(execFile);
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const GCC = '/usr/bin/gcc';

/** The libseccomp shared object of this box (no headers needed: the launcher declares its four calls). */
function libseccomp(): string | null {
  for (const dir of ['/usr/lib', '/lib']) {
    if (!existsSync(dir)) continue;
    for (const sub of readdirSync(dir)) {
      const f = join(dir, sub, 'libseccomp.so.2');
      if (sub.endsWith('-linux-gnu') && existsSync(f)) return f;
    }
  }
  return null;
}

export function seccompSkipReason(): string | null {
  if (process.platform !== 'linux') return 'seccomp is Linux only';
  if (!existsSync(SYSTEMD_ANALYZE)) return `${SYSTEMD_ANALYZE} not found`;
  if (!existsSync(GCC)) return `${GCC} not found`;
  if (!libseccomp()) return 'libseccomp.so.2 not found';
  return null;
}

/** The syscalls a group (`@system-service`) or a name stands for, groups expanded recursively. */
async function expand(entry: string, seen = new Set<string>()): Promise<Set<string>> {
  const out = new Set<string>();
  if (!entry.startsWith('@')) return out.add(entry);
  if (seen.has(entry)) return out;
  seen.add(entry);
  const { stdout } = await run(SYSTEMD_ANALYZE, ['syscall-filter', entry], { timeout: 30_000 });
  for (const raw of stdout.split('\n').slice(1)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    for (const x of await expand(line, seen)) out.add(x);
  }
  return out;
}

/** The allow-list a unit's SystemCallFilter= lines make: the allowed sets minus the `~` ones. */
export async function unitAllowList(unitText: string): Promise<Set<string>> {
  const allow = new Set<string>();
  const deny = new Set<string>();
  for (const m of unitText.matchAll(/^SystemCallFilter=(.*)$/gm)) {
    const v = m[1]!.trim();
    const negate = v.startsWith('~');
    for (const e of (negate ? v.slice(1) : v).split(/\s+/).filter(Boolean)) {
      for (const s of await expand(e)) (negate ? deny : allow).add(s);
    }
  }
  for (const s of deny) allow.delete(s);
  return allow;
}

/** Build the launcher and write the allow-list into `dir`; returns the argv prefix to run a command under it. */
export async function prepareSeccomp(dir: string, unitText: string): Promise<string[]> {
  const lib = libseccomp();
  if (!lib) throw new Error('libseccomp.so.2 not found');
  const bin = join(dir, 'seccomp-run');
  await run(GCC, ['-O1', '-o', bin, join(ROOT, 'devkit/seccomp-run.c'), lib], { timeout: 60_000 });
  const list = join(dir, 'allowed-syscalls.txt');
  const allow = await unitAllowList(unitText);
  if (allow.size === 0) throw new Error('the unit declares no SystemCallFilter=');
  writeFileSync(list, [...allow].sort().join('\n') + '\n');
  return [bin, list];
}

export function readUnit(path = join(ROOT, 'systemd/edgefit.service')): string {
  return readFileSync(path, 'utf8');
}
