// The volfiles a master starts from (DESIGN §8). The embedded default is one brick: a storage
// translator with the volume lock on it, the replicate translator as holder, io-stats on both
// sides so `profile` shows the client-facing and the brick-facing latency.
import { formatVolfile } from '../../translators/volfile.js';

export interface SingleBrickVolfileOptions {
  readonly volumeName: string;
  /** The brick directory, relative to the volfile's folder or absolute. */
  readonly brickDir: string;
  readonly fsync: boolean;
  /** The brick's host:path identity (default: the storage translator's). */
  readonly brick?: string;
  readonly leaseMs?: number;
  /** Entries a brick holds in memory before checkpointing (default 4096). */
  readonly checkpointEntries?: number;
}

export function singleBrickVolfile(o: SingleBrickVolfileOptions): string {
  const v = o.volumeName;
  const brickOptions = [
    { key: 'directory', value: o.brickDir },
    { key: 'fsync', value: o.fsync ? 'on' : 'off' },
    { key: 'volume-name', value: v },
    ...(o.brick ? [{ key: 'brick', value: o.brick }] : []),
    ...(o.checkpointEntries !== undefined ? [{ key: 'checkpoint-entries', value: String(o.checkpointEntries) }] : []),
  ];
  return formatVolfile([
    { name: `${v}-brick`, type: 'storage/lmdb', options: brickOptions, subvolumes: [] },
    { name: `${v}-locks`, type: 'features/locks', options: o.leaseMs ? [{ key: 'lease-ms', value: `${o.leaseMs}ms` }] : [], subvolumes: [`${v}-brick`] },
    { name: `${v}-brick-stats`, type: 'debug/io-stats', options: [], subvolumes: [`${v}-locks`] },
    { name: `${v}-replicate`, type: 'cluster/replicate', options: [], subvolumes: [`${v}-brick-stats`] },
    { name: v, type: 'debug/io-stats', options: [], subvolumes: [`${v}-replicate`] },
  ]);
}
