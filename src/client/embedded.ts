// The embedded default (DESIGN §8): a whole single-brick volume in-process, no network. A daemon
// uses it as its config store in a few lines:
//
//   const vol = await openVolume({ dir: './state' });
//   await vol.put('/config/mode', 'active');
//   const { kv } = await vol.get('/config/mode');
import { startMaster, type MasterOptions } from '../daemon/master.js';
import { FopVolume, type Volume } from './volume.js';

export interface OpenVolumeOptions {
  /** Data directory (created if missing): the volfile and the brick. */
  readonly dir: string;
  /** fsync every commit (default true). Off voids durability: tests and benchmarks only. */
  readonly fsync?: boolean;
  /** Use this volfile instead of <dir>/coordvol.vol. */
  readonly volfile?: string;
  readonly volumeName?: string;
  /** Brick lease (default 500 ms); a restarted brick waits one lease before its first write. */
  readonly leaseMs?: number;
  /** Entries the brick holds in memory before checkpointing them to its tables (default 4096). */
  readonly checkpointEntries?: number;
  /** Per-call deadline (default 10 s). */
  readonly timeoutMs?: number;
}

export interface EmbeddedVolume extends Volume {
  readonly volfilePath: string;
  readonly dir: string;
}

export async function openVolume(o: OpenVolumeOptions): Promise<EmbeddedVolume> {
  const mo: MasterOptions = {
    dir: o.dir,
    ...(o.volfile !== undefined ? { volfile: o.volfile } : {}),
    ...(o.fsync !== undefined ? { fsync: o.fsync } : {}),
    ...(o.volumeName !== undefined ? { volumeName: o.volumeName } : {}),
    ...(o.leaseMs !== undefined ? { leaseMs: o.leaseMs } : {}),
    ...(o.checkpointEntries !== undefined ? { checkpointEntries: o.checkpointEntries } : {}),
  };
  const master = await startMaster(mo);
  // master.top, not a copy of it: an edit of the volfile switches the graph (DESIGN §8).
  const vol = new FopVolume((fop, ctx, args) => master.top.call(fop, ctx, args), () => master.close(), o.timeoutMs);
  return Object.assign(vol, { volfilePath: master.volfilePath, dir: master.dir });
}
