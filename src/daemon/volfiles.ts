// The volfiles a master starts from (DESIGN §8). The embedded default is one brick: a storage
// translator with the volume lock on it, features/watch serving watches from the brick's log, the
// replicate translator as holder, io-stats on both sides so `profile` shows the client-facing and
// the brick-facing latency.
import { formatVolfile, parseVolfile, type VolfileDeclText } from '../../translators/volfile.js';

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
  /** Serve the volume on this host:port (a protocol/server on top). */
  readonly listen?: string;
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
  const decls: VolfileDeclText[] = [
    { name: `${v}-brick`, type: 'storage/lmdb', options: brickOptions, subvolumes: [] },
    { name: `${v}-locks`, type: 'features/locks', options: o.leaseMs ? [{ key: 'lease-ms', value: `${o.leaseMs}ms` }] : [], subvolumes: [`${v}-brick`] },
    // Watches are served from the brick's committed log, on the brick side of the graph.
    { name: `${v}-watch`, type: 'features/watch', options: [], subvolumes: [`${v}-locks`] },
    { name: `${v}-brick-stats`, type: 'debug/io-stats', options: [], subvolumes: [`${v}-watch`] },
    { name: `${v}-replicate`, type: 'cluster/replicate', options: [], subvolumes: [`${v}-brick-stats`] },
    { name: v, type: 'debug/io-stats', options: [], subvolumes: [`${v}-replicate`] },
  ];
  return formatVolfile(o.listen ? addServer(decls, o.listen) : decls);
}

export interface ReplicatedVolfileOptions {
  readonly volumeName: string;
  /** Every master of the volume, in order; `self` indexes this one. */
  readonly masters: readonly { readonly listen: string; readonly brick: string }[];
  readonly self: number;
  /** This master's brick directory, relative to the volfile's folder or absolute. */
  readonly brickDir: string;
  /** The cluster secret every master and client shares (relative to the volfile, or absolute). */
  readonly secretFile: string;
  readonly fsync: boolean;
  readonly leaseMs?: number;
}

/**
 * One master of a hand-configured replicated volume (DESIGN §8, the static bootstrap): its brick
 * (storage, locks, watch) serves its own replicate and the other masters' (over protocol/server);
 * its replicate reaches every other brick through a protocol/client. The brick list is the same
 * in every master's volfile, so all three derive the same volumeId from entry (0, 1).
 */
export function replicatedVolfile(o: ReplicatedVolfileOptions): string {
  const v = o.volumeName;
  const me = o.masters[o.self];
  if (!me) throw new Error(`master ${o.self} of ${o.masters.length}`);
  const others = o.masters.filter((_, i) => i !== o.self);
  const lease = o.leaseMs ? [{ key: 'lease-ms', value: `${o.leaseMs}ms` }] : [];
  const decls: VolfileDeclText[] = [
    {
      name: `${v}-brick`,
      type: 'storage/lmdb',
      options: [
        { key: 'directory', value: o.brickDir },
        { key: 'fsync', value: o.fsync ? 'on' : 'off' },
        { key: 'volume-name', value: v },
        { key: 'brick', value: me.brick },
        { key: 'volume-bricks', value: o.masters.map((m) => m.brick).join(' ') },
      ],
      subvolumes: [],
    },
    { name: `${v}-locks`, type: 'features/locks', options: lease, subvolumes: [`${v}-brick`] },
    { name: `${v}-watch`, type: 'features/watch', options: [], subvolumes: [`${v}-locks`] },
    { name: `${v}-brick-stats`, type: 'debug/io-stats', options: [], subvolumes: [`${v}-watch`] },
    ...others.map((m, i) => ({
      name: `${v}-peer${i + 1}`,
      type: 'protocol/client',
      options: [
        { key: 'remote', value: m.listen },
        { key: 'secret-file', value: o.secretFile },
        // Brick traffic needs quick failure detection: a dead peer must not hold a lease round.
        { key: 'ping-ms', value: '500ms' },
        { key: 'ping-timeout-ms', value: '1000ms' },
        { key: 'reconnect-max-ms', value: '500ms' },
        // A forwarded exactly-once write whose holder died is routed again at once (to the next
        // holder, same origin), not held for this link's reconnect.
        { key: 'resend-writes', value: 'off' },
      ],
      subvolumes: [],
    })),
    {
      name: `${v}-replicate`,
      type: 'cluster/replicate',
      options: [
        { key: 'holder-id', value: me.listen },
        { key: 'remote-bricks', value: others.map((m) => m.brick).join(' ') },
        { key: 'remote-masters', value: others.map((m) => m.listen).join(' ') },
      ],
      subvolumes: [`${v}-brick-stats`, ...others.map((_, i) => `${v}-peer${i + 1}`)],
    },
    { name: v, type: 'debug/io-stats', options: [], subvolumes: [`${v}-replicate`] },
    { name: `${v}-server`, type: 'protocol/server', options: [{ key: 'listen', value: me.listen }, { key: 'secret-file', value: o.secretFile }], subvolumes: [v] },
  ];
  return formatVolfile(decls);
}

/**
 * Serves a volfile's graph on `listen`: sets the listen option of its protocol/server, or puts
 * one on top of the graph. For `coordvol start --listen`, applied in memory (the file is not
 * rewritten).
 */
export function withListen(text: string, file: string, listen: string): string {
  const decls = parseVolfile(text, file).map((d) => ({
    name: d.name,
    type: d.type,
    options: d.options.map((o) => ({ key: o.key, value: o.value })),
    subvolumes: d.subvolumes.map((x) => x.name),
  }));
  return formatVolfile(addServer(decls, listen));
}

function addServer(decls: VolfileDeclText[], listen: string): VolfileDeclText[] {
  const server = decls.find((d) => d.type === 'protocol/server');
  if (server) {
    const options = [...server.options.filter((o) => o.key !== 'listen'), { key: 'listen', value: listen }];
    return decls.map((d) => (d === server ? { ...d, options } : d));
  }
  const used = new Set(decls.flatMap((d) => d.subvolumes));
  const top = decls.find((d) => !used.has(d.name));
  if (!top) return decls; // no single top: the graph builder reports it
  return [...decls, { name: `${top.name}-server`, type: 'protocol/server', options: [{ key: 'listen', value: listen }], subvolumes: [top.name] }];
}
