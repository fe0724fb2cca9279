// The worker's side of mapped shared memory (issue 19): each registered region the worker's
// requests name is mapped once (keyed by its registration's serial, shm.ts) and kept until the
// server says it is dropped (unregistered and no longer held) or the worker ends (Node runs the
// addon's finalizers at a worker's teardown: the mappings go with it on a swap). The input tensor
// is a view of the mapping, so onnxruntime-node 1.30 reads the client's bytes where they are: its
// synchronous run builds the OrtValue over the typed array's memory (tensor_helper.cc,
// NapiValueToOrtValue; newer onnxruntime-node's asynchronous run copies inputs first). Each output
// is copied once into its span. Before each access the file's length is checked again: touching a
// mapping past a truncated file's end raises SIGBUS, which no JavaScript can catch.
import { ND_DTYPES, type NdArray, type NdDType, type NdData } from '../data/ndarray.js';
import { checkOutputFits } from './protocol.js';
import { checkLength, type MappedSpan } from './shm.js';
import type { ShmMapAddon } from './shm-map.js';

export class MappedRegions {
  private readonly maps = new Map<number, ArrayBuffer>();

  constructor(private readonly addon: ShmMapAddon) {}

  /** The span's bytes in place, after checking the file still holds them. */
  bytes(s: MappedSpan): Uint8Array {
    checkLength(s.fd, s.region, s.start + s.offset + s.size);
    let ab = this.maps.get(s.serial);
    if (!ab) {
      ab = this.addon.map(s.fd, s.start, s.byteSize, true);
      this.maps.set(s.serial, ab);
    }
    return new Uint8Array(ab, s.offset, s.size);
  }

  /** An input over the mapping (copied only when its place in memory is not aligned for its type). */
  input(s: MappedSpan, dtype: NdDType, shape: number[]): NdArray {
    const b = this.bytes(s);
    const Ctor = ND_DTYPES[dtype].ctor;
    const aligned = (b.byteOffset + s.start) % Ctor.BYTES_PER_ELEMENT === 0;
    const src = aligned ? b : b.slice();
    return { dtype, shape, data: new Ctor(src.buffer as ArrayBuffer, src.byteOffset, s.size / Ctor.BYTES_PER_ELEMENT) as NdData };
  }

  /** Copy an output into its span; the bytes written. */
  output(name: string, s: MappedSpan, data: NdData): number {
    checkOutputFits(name, data.byteLength, s.size);
    const into = this.bytes({ ...s, size: data.byteLength });
    into.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return data.byteLength;
  }

  /** Unmap a region (its registration is gone): any view of it becomes empty, never dangling. */
  drop(serial: number): void {
    const ab = this.maps.get(serial);
    if (!ab) return;
    this.maps.delete(serial);
    this.addon.unmap(ab);
  }
}
