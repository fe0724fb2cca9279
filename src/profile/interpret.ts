// Raw text -> the parts of the hardware profile that systeminformation cannot give:
// board, throttling, CPU features and core types, user-space width, int8 flavour.
import { identifyBoard } from './board.js';
import { parseCpuInfo } from './cpuinfo.js';
import { recommendInt8 } from './int8.js';
import type { RawSources } from './sources.js';
import { parseThrottled } from './throttle.js';
import type { BoardInfo, CpuInfo, Int8Flavour, Throttling, Userland } from './types.js';
import { decideUserland } from './userland.js';

export interface Interpreted {
  /** Architecture onnxruntime runs as (process.arch of the Node build). */
  arch: string;
  cpuinfo: CpuInfo;
  board: BoardInfo;
  throttling: Throttling | null;
  userland: Userland;
  int8: Int8Flavour;
}

export function interpretSources(raw: RawSources): Interpreted {
  const cpuinfo = parseCpuInfo(raw.cpuinfo ?? '');
  const board = identifyBoard({
    deviceTreeModel: raw.deviceTreeModel,
    cpuinfoModel: cpuinfo.model,
    cpuinfoRevision: cpuinfo.revision,
    nvTegraRelease: raw.nvTegraRelease,
  });
  const userland = decideUserland({ processArch: raw.processArch, elfHead: raw.elfHead, longBit: raw.longBit, machine: raw.machine });
  return {
    arch: raw.processArch,
    cpuinfo,
    board,
    throttling: parseThrottled(raw.throttled),
    userland,
    int8: recommendInt8(raw.processArch, cpuinfo.features),
  };
}
