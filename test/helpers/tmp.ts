// Temporary folders for tests: a test run must not leave folders in /tmp. They are removed when
// the test process exits, not per test, because a module-level folder is shared by its subtests
// and some tests inspect a folder after killing an agent that wrote to it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made = new Set<string>();
const removeMade = (): void => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
};

/** A new folder `<tmpdir>/<prefix>XXXXXX`, removed when the process exits. */
export function testDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (!made.size) process.once('exit', removeMade);
  made.add(dir);
  return dir;
}
