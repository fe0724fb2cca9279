// The loader of native/shm-map (issue 19): mmap for shared-memory regions. The addon is built by
// `npm ci` (scripts/build-native.mjs); where it is missing (no compiler on the box that built the
// tree) or EDGEFIT_SHM_MMAP=0, callers get undefined and keep to positioned reads and writes.
// One place finds it, relative to this package, so the server, its workers and the dev client
// agree on which path they are on.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface ShmMapAddon {
  /** `length` bytes of the file at `offset`, mapped shared (page-aligned underneath); throws with `code` = errno name. */
  map(fd: number, offset: number, length: number, writable: boolean): ArrayBuffer;
  /** Detach the buffer (its views become empty) and munmap it; a second call does nothing. */
  unmap(buf: ArrayBuffer): void;
}

/** Where the build leaves it: native/shm-map under the package root (dist/src/serve is three folders down). */
export const SHM_MAP_ADDON = fileURLToPath(new URL('../../../native/shm-map/build/Release/shm_map.node', import.meta.url));

let loaded: ShmMapAddon | null | undefined;
/** Why it did not load (for a test and a diagnostic line), when it did not. */
export let shmMapError: string | null = null;

/** The addon, or undefined: not built, failed to load, or EDGEFIT_SHM_MMAP=0 (read each time: tests switch it). */
export function shmMap(): ShmMapAddon | undefined {
  if (process.env.EDGEFIT_SHM_MMAP === '0') return undefined;
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(SHM_MAP_ADDON) as ShmMapAddon;
    } catch (e) {
      loaded = null;
      shmMapError = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? 'error';
    }
  }
  return loaded ?? undefined;
}
