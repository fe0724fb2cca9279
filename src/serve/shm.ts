// Triton's system shared-memory extension (issue 19). An application on the box keeps a large input
// in a file under /dev/shm, registers it once as a named region, then sends requests that name the
// region instead of carrying the bytes; outputs can come back the same way. Over HTTP the socket
// trip of det's 4.9 MB input and 1.6 MB output was ~5 ms, 9 % of its run; here a request costs at
// most one memcpy per input and per output (none for a mapped input).
// A region is an open file descriptor, checked when registered and bounded at every access. Where
// native/shm-map is built (shm-map.ts), the worker running the session maps each region once
// (shm-mapped.ts) and onnxruntime reads the input where the client left it, outputs are copied once
// into the region; otherwise (EDGEFIT_SHM_MMAP=0, no addon) the input is read with pread into a
// reused buffer and outputs are written with pwrite. A region is held while a request that names
// it is in flight: unregistering it then frees the name at once, but its file descriptor is closed
// and the workers' mappings dropped only once those requests are answered (a worker never maps a
// closed, perhaps reused, descriptor). Routes (Triton's): POST /v2/systemsharedmemory/region/<name>/register
// {key, offset, byte_size}, POST .../region/<name>/unregister, POST /v2/systemsharedmemory/unregister,
// GET /v2/systemsharedmemory[/region/<name>]/status.
import { closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { bad, isObj, ProtocolError } from './protocol.js';
import { shmMap } from './shm-map.js';

/** Where POSIX shared-memory objects live on Linux: shm_open("/x") is /dev/shm/x. */
export const SHM_DIR = '/dev/shm';
/** Region names appear in URLs and requests; keys name a file directly under the shm folder. */
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const KEY_RE = /^\/?[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;
/** Registered regions at once: each holds a file descriptor. */
export const MAX_REGIONS = 64;
/** Their byte sizes added up: regions cost the server no memory of its own (files read per request, or mapped: the pages are the file's), but 2 GiB is far past any model's tensors. */
export const MAX_TOTAL_BYTES = 2 ** 31;

export interface RegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
  /** How requests reach it: mapped in the worker, or positioned reads and writes (an extension of Triton's status). */
  access: 'mmap' | 'pread';
}

interface Region extends Omit<RegionStatus, 'access'> {
  fd: number;
  /** Unique per registration: the workers key their mappings by it (a name can be registered again). */
  serial: number;
  /** Requests in flight that name it (hold/release). */
  uses: number;
  /** Unregistered while held: closed when the last request lets go. */
  dropped: boolean;
}

/** A span of a registered region as the worker maps it: the region's file range, and the span within it. */
export interface MappedSpan {
  region: string;
  serial: number;
  fd: number;
  /** The region's start in the file, and its size. */
  start: number;
  byteSize: number;
  /** The span within the region. */
  offset: number;
  size: number;
}

const whole = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Reads and writes inputs and outputs kept in shared memory: what parseInferRequest and the server use. */
export interface RegionIO {
  has(region: string): boolean;
  /** `size` bytes at `offset` of the region into `into` (its first `size` bytes). */
  read(region: string, offset: number, size: number, into: Buffer): void;
  /** `data` into the region at `offset`. */
  write(region: string, offset: number, data: Uint8Array): void;
  /** Is `size` bytes at `offset` in the region, and its file still that long? (400 if not.) */
  check(region: string, offset: number, size: number): void;
}

let serials = 0;

export class SharedMemory implements RegionIO {
  private readonly regions = new Map<string, Region>();
  /** Do requests use regions mapped in the worker (the addon loaded and EDGEFIT_SHM_MMAP is not 0)? */
  readonly mmap: boolean;
  /** Called with a region's serial once it is closed: the workers drop their mappings of it. */
  onDrop: (serial: number) => void = () => undefined;

  constructor(
    private readonly dir: string = SHM_DIR,
    mmap: boolean = shmMap() !== undefined,
  ) {
    this.mmap = mmap;
  }

  /** Register `name` from a request body {key, offset?, byte_size}. */
  register(name: string, body: unknown): RegionStatus {
    if (!NAME_RE.test(name)) throw bad(`region name '${name}' must be 1-64 letters, digits, '.', '_' or '-'`);
    if (!isObj(body)) throw bad('the register body must be a JSON object {key, offset, byte_size}');
    const { key, byte_size: size } = body;
    const offset = body.offset ?? 0;
    if (typeof key !== 'string' || !KEY_RE.test(key) || /^\/?\.\.?$/.test(key)) {
      throw bad(`key ${JSON.stringify(key)} must name a file directly under ${this.dir} (e.g. "/edgefit_in")`);
    }
    if (!whole(offset)) throw bad('offset must be a whole number of bytes');
    if (!whole(size) || size === 0) throw bad('byte_size must be a positive whole number of bytes');
    if (this.regions.has(name)) throw bad(`region '${name}' is already registered (unregister it first)`);
    if (this.regions.size >= MAX_REGIONS) throw bad(`at most ${MAX_REGIONS} regions may be registered`);
    const total = [...this.regions.values()].reduce((n, r) => n + r.byte_size, 0);
    if (total + size > MAX_TOTAL_BYTES) {
      throw bad(`byte_size ${size} would take the registered regions past ${MAX_TOTAL_BYTES} bytes (${total} now)`);
    }
    const file = join(this.dir, key.replace(/^\//, ''));
    let fd: number;
    try {
      // never through a symlink: the key names a shm object, not a way to any file the server can open
      fd = openSync(file, constants.O_RDWR | constants.O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw bad(
        `cannot open ${file}: ${code === 'ELOOP' ? 'it is a symbolic link' : code === 'ENOENT' ? 'no such file' : (code ?? 'error')}`,
      );
    }
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw bad(`${file} is not a regular file`);
    }
    if (offset + size > st.size) {
      closeSync(fd);
      throw bad(`offset ${offset} + byte_size ${size} is past the end of ${file} (${st.size} bytes)`);
    }
    const r: Region = { name, key, offset, byte_size: size, fd, serial: ++serials, uses: 0, dropped: false };
    this.regions.set(name, r);
    return this.describe(r);
  }

  /** Unregister one region, or all of them. Unknown names are refused (Triton answers 400 too). */
  unregister(name?: string): void {
    if (name === undefined) return this.clear();
    const r = this.regions.get(name);
    if (!r) throw bad(`no region '${name}' is registered`);
    this.regions.delete(name);
    this.drop(r);
  }

  status(name?: string): RegionStatus[] {
    if (name === undefined) return [...this.regions.values()].map((r) => this.describe(r));
    const r = this.regions.get(name);
    if (!r) throw new ProtocolError(404, `no region '${name}' is registered`);
    return [this.describe(r)];
  }

  has(region: string): boolean {
    return this.regions.has(region);
  }

  read(region: string, offset: number, size: number, into: Buffer): void {
    const r = this.span(region, offset, size);
    let n = 0;
    // one call moves it all from a page-cache file; the loop only covers a short read
    while (n < size) {
      const got = readSync(r.fd, into, n, size - n, r.offset + offset + n);
      if (got === 0) throw bad(`region '${region}': its file ended ${size - n} bytes early (truncated after it was registered?)`);
      n += got;
    }
  }

  write(region: string, offset: number, data: Uint8Array): void {
    const r = this.span(region, offset, data.byteLength);
    // a file truncated since registration would be silently regrown by the write: refuse instead
    checkLength(r.fd, region, r.offset + offset + data.byteLength);
    let n = 0;
    while (n < data.byteLength) n += writeSync(r.fd, data, n, data.byteLength - n, r.offset + offset + n);
  }

  clear(): void {
    for (const r of this.regions.values()) this.drop(r);
    this.regions.clear();
  }

  /**
   * Check a span a request names for the mapped path: in the region, and the file still as long as
   * registered (a mapping read past a file's end raises SIGBUS and would kill this process).
   */
  check(region: string, offset: number, size: number): void {
    const r = this.span(region, offset, size);
    checkLength(r.fd, region, r.offset + offset + size);
  }

  /** The spans as the worker maps them; their regions are held until `release` (call it once, whatever happens). */
  hold(spans: readonly { region: string; offset: number; size: number }[]): { spans: MappedSpan[]; release: () => void } {
    const out = spans.map((s) => {
      const r = this.span(s.region, s.offset, s.size);
      return {
        r,
        m: { region: r.name, serial: r.serial, fd: r.fd, start: r.offset, byteSize: r.byte_size, offset: s.offset, size: s.size },
      };
    });
    for (const { r } of out) r.uses++;
    let done = false;
    return {
      spans: out.map((o) => o.m),
      release: () => {
        if (done) return;
        done = true;
        for (const { r } of out) {
          r.uses--;
          if (r.dropped && r.uses === 0) this.close(r);
        }
      },
    };
  }

  /** Unregistered: closed now, or when the last request holding it is answered. */
  private drop(r: Region): void {
    r.dropped = true;
    if (r.uses === 0) this.close(r); // else the last hold's release closes it
  }

  private close(r: Region): void {
    closeSync(r.fd);
    if (this.mmap) this.onDrop(r.serial);
  }

  private span(region: string, offset: number, size: number): Region {
    const r = this.regions.get(region);
    if (!r) throw bad(`no shared-memory region '${region}' is registered`);
    if (!whole(offset) || !whole(size) || offset + size > r.byte_size) {
      throw bad(`region '${region}': ${size} bytes at offset ${offset} do not fit its ${r.byte_size} bytes`);
    }
    return r;
  }

  private describe(r: Region): RegionStatus {
    return { name: r.name, key: r.key, offset: r.offset, byte_size: r.byte_size, access: this.mmap ? 'mmap' : 'pread' };
  }
}

/** Refuse a file shorter than `end` bytes (truncated since it was registered). */
export function checkLength(fd: number, region: string, end: number): void {
  if (fstatSync(fd).size < end) throw bad(`region '${region}': its file is shorter than registered (truncated after it was registered?)`);
}
