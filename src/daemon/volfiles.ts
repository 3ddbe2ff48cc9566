// The volfiles a master starts from (DESIGN §8). The embedded default is one brick: a storage
// translator with the volume lock on it, features/watch serving watches from the brick's log, the
// replicate translator as holder, io-stats on both sides so `profile` shows the client-facing and
// the brick-facing latency.
import { peerLinkOptions } from '../../translators/cluster/peer-link.js';
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
  const me = o.masters[o.self];
  if (!me) throw new Error(`master ${o.self} of ${o.masters.length}`);
  return masterVolfile({
    volumeName: o.volumeName,
    initialBricks: o.masters.map((m) => m.brick),
    self: me,
    others: o.masters.filter((_, i) => i !== o.self),
    brickDir: o.brickDir,
    secretFile: o.secretFile,
    fsync: o.fsync,
    ...(o.leaseMs !== undefined ? { leaseMs: o.leaseMs } : {}),
  });
}

export interface MasterVolfileOptions {
  readonly volumeName: string;
  /** The bricks of the volume's initial config (entry (0, 1)): with quorum-count, its id. */
  readonly initialBricks: readonly string[];
  /** The initial config's quorum-count, when it is not a majority of initialBricks. */
  readonly initialQuorumCount?: number;
  readonly self: { readonly listen: string; readonly brick: string };
  /** The other members' masters: a protocol/client each. */
  readonly others: readonly { readonly listen: string; readonly brick: string }[];
  readonly brickDir: string;
  readonly secretFile: string;
  readonly fsync: boolean;
  readonly leaseMs?: number;
  /** The brick joins the running volume (peer probe --as-master): storage option `join`. */
  readonly join?: boolean;
}

/** A master of a replicated volume: its brick, a link to each other member, replicate, the listener. */
export function masterVolfile(o: MasterVolfileOptions): string {
  const v = o.volumeName;
  const lease = o.leaseMs ? [{ key: 'lease-ms', value: `${o.leaseMs}ms` }] : [];
  const decls: VolfileDeclText[] = [
    {
      name: `${v}-brick`,
      type: 'storage/lmdb',
      options: [
        { key: 'directory', value: o.brickDir },
        { key: 'fsync', value: o.fsync ? 'on' : 'off' },
        { key: 'volume-name', value: v },
        { key: 'brick', value: o.self.brick },
        { key: 'volume-bricks', value: o.initialBricks.join(' ') },
        ...(o.initialQuorumCount !== undefined ? [{ key: 'quorum-count', value: String(o.initialQuorumCount) }] : []),
        ...(o.join === true ? [{ key: 'join', value: 'on' }] : []),
      ],
      subvolumes: [],
    },
    { name: `${v}-locks`, type: 'features/locks', options: lease, subvolumes: [`${v}-brick`] },
    { name: `${v}-watch`, type: 'features/watch', options: [], subvolumes: [`${v}-locks`] },
    { name: `${v}-brick-stats`, type: 'debug/io-stats', options: [], subvolumes: [`${v}-watch`] },
    ...o.others.map((m, i) => ({ name: `${v}-peer${i + 1}`, type: 'protocol/client', options: peerLinkOptions(m.listen, o.secretFile), subvolumes: [] })),
    {
      name: `${v}-replicate`,
      type: 'cluster/replicate',
      options: [
        { key: 'holder-id', value: o.self.listen },
        ...(o.others.length > 0
          ? [
              { key: 'remote-bricks', value: o.others.map((m) => m.brick).join(' ') },
              { key: 'remote-masters', value: o.others.map((m) => m.listen).join(' ') },
            ]
          : []),
        ...(o.join === true ? [{ key: 'secret-file', value: o.secretFile }] : []),
      ],
      subvolumes: [`${v}-brick-stats`, ...o.others.map((_, i) => `${v}-peer${i + 1}`)],
    },
    { name: v, type: 'debug/io-stats', options: [], subvolumes: [`${v}-replicate`] },
    { name: `${v}-server`, type: 'protocol/server', options: [{ key: 'listen', value: o.self.listen }, { key: 'secret-file', value: o.secretFile }], subvolumes: [v] },
  ];
  return formatVolfile(decls);
}

export interface ClientVolfileOptions {
  /** The masters' protocol addresses, tried in turn. */
  readonly masters: readonly string[];
  /** Where the plain peer serves the volume to local clients (and answers probes). */
  readonly listen: string;
  readonly secretFile: string;
  readonly volumeId: string;
}

/**
 * A plain peer's client volfile (DESIGN §8): a protocol/client to the masters, served on the
 * peer's own listener, so daemons on its host reach the volume through it.
 */
export function clientVolfile(o: ClientVolfileOptions): string {
  return formatVolfile([
    {
      name: 'coordvol-masters',
      type: 'protocol/client',
      options: [
        { key: 'remote', value: o.masters.join(' ') },
        { key: 'secret-file', value: o.secretFile },
        { key: 'expect-volume-id', value: o.volumeId },
        // Masters push the volume's masters when membership commits; the daemon writes them back here.
        { key: 'follow-members', value: 'on' },
      ],
      subvolumes: [],
    },
    { name: 'coordvol', type: 'debug/io-stats', options: [], subvolumes: ['coordvol-masters'] },
    { name: 'coordvol-server', type: 'protocol/server', options: [{ key: 'listen', value: o.listen }, { key: 'secret-file', value: o.secretFile }], subvolumes: ['coordvol'] },
  ]);
}

/**
 * Serves a volfile's graph on `listen`: sets the listen option of its protocol/server, or puts
 * one on top of the graph. For `coordvol start --listen`, applied in memory (the file is not
 * rewritten).
 */
export function withListen(text: string, file: string, listen: string): string {
  return formatVolfile(addServer(declsOf(text, file), listen));
}

/** A client volfile with its protocol/client's `remote` set to `remote`; `text` itself when it says so already. */
export function withRemote(text: string, file: string, remote: string): string {
  const decls = declsOf(text, file);
  const client = decls.find((d) => d.type === 'protocol/client');
  if (!client || client.options.find((o) => o.key === 'remote')?.value === remote) return text;
  const options = [...client.options.filter((o) => o.key !== 'remote'), { key: 'remote', value: remote }];
  return formatVolfile(decls.map((d) => (d === client ? { ...d, options } : d)));
}

/** A volfile's declarations without line numbers, to edit and write back. */
export function declsOf(text: string, file: string): VolfileDeclText[] {
  return parseVolfile(text, file).map((d) => ({
    name: d.name,
    type: d.type,
    options: d.options.map((o) => ({ key: o.key, value: o.value })),
    subvolumes: d.subvolumes.map((x) => x.name),
  }));
}

function addServer(given: VolfileDeclText[], listen: string): VolfileDeclText[] {
  // Other masters forward writes to the holder by its holder-id: a replicate that names none is
  // reached at the address it listens on (unless that is port 0, known only once bound).
  const decls = listen.endsWith(':0') ? given : given.map((d) => (d.type === 'cluster/replicate' && !d.options.some((o) => o.key === 'holder-id') ? { ...d, options: [{ key: 'holder-id', value: listen }, ...d.options] } : d));
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
