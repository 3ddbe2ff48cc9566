// What W3, W5 and W6 need from a system beyond puts and gets: watches on a prefix or on one key,
// and sessions that own ephemeral keys. One client = one connection, made from an Endpoint: a
// plain JSON value, so W5's child process (session-child.ts) can connect the same way the
// harness does. Each system implements it in its own file (etcd-coord.ts, zookeeper-coord.ts,
// coordvol-coord.ts), loaded on demand so a missing piece of one system never breaks another.

/** How to reach a started system; JSON, handed to child processes on their command line. */
export type Endpoint =
  | { readonly system: 'etcd'; readonly hosts: readonly string[] }
  | { readonly system: 'zookeeper'; readonly connectString: string }
  | { readonly system: 'coordvol'; readonly servers: readonly string[]; readonly secretFile: string };

export interface ConnectOptions {
  /**
   * The TTL of the session `session()` opens, in ms. ZooKeeper ties a session to its
   * connection, so it is asked for when connecting (sessionTimeout); the others ignore it here.
   */
  readonly sessionTtlMs?: number;
}

/** Where a watch reports what it saw; `atMs` is performance.now() at receipt. */
export interface WatchSink {
  /** A change that arrived with a notification (event) of its own. */
  event(key: string, type: 'put' | 'delete', atMs: number): void;
  /**
   * Keys the watcher learnt of without a notification of their own: ZooKeeper's children found
   * when re-arming a one-shot watch; a coordvol resync batch. W3 counts these as missed.
   */
  unnotified(keys: readonly string[], atMs: number): void;
  /** The watch broke (a stream error, a failed re-arm). */
  error(e: unknown): void;
}

export interface WatchHandle {
  cancel(): Promise<void>;
}

export interface DeleteWatch {
  /** Resolves with performance.now() when the key's delete is received. */
  readonly deleted: Promise<number>;
  cancel(): Promise<void>;
}

export interface SessionHandle {
  /** The TTL the server granted (ZooKeeper negotiates; etcd reports grantedTTL), in ms. */
  readonly grantedTtlMs: number;
  /** Resolves with a reason if the session ends without close(): a W6 client that could not keep up. */
  readonly lost: Promise<string>;
  /** Puts `key` owned by this session: deleted when the session ends. */
  putEphemeral(key: string, value: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface CoordClient {
  /** A plain (persistent) put, resolved on acknowledgment; creates missing parents where the system needs them. */
  put(key: string, value: Uint8Array): Promise<void>;
  /**
   * Watches every key under `prefix` (which ends with '/'); resolves once the watch is armed.
   * ZooKeeper has one-shot child watches and no keys in its notifications: its watcher re-arms
   * with getChildren and attributes a notification to the smallest new child, so the keys
   * written under a watched prefix must sort in the order they are written (W3's do).
   */
  watchPrefix(prefix: string, sink: WatchSink): Promise<WatchHandle>;
  /** Watches one existing key for its delete; resolves once armed. */
  watchDelete(key: string): Promise<DeleteWatch>;
  /** Opens a session with the TTL given at connect (ConnectOptions.sessionTtlMs), kept alive by the client library. */
  session(): Promise<SessionHandle>;
  close(): Promise<void>;
}

/** A client for `e`. Throws Unavailable (types.ts) when the system lacks sessions or watches in this tree. */
export async function connectCoord(e: Endpoint, o: ConnectOptions = {}): Promise<CoordClient> {
  switch (e.system) {
    case 'etcd':
      return (await import('./etcd-coord.js')).etcdCoordClient(e, o);
    case 'zookeeper':
      return (await import('./zookeeper-coord.js')).zookeeperCoordClient(e, o);
    case 'coordvol':
      return (await import('./coordvol-coord.js')).coordvolCoordClient(e, o);
  }
}

/** A session TTL from ConnectOptions, or a clear error where one is needed. */
export function ttlOf(o: ConnectOptions, system: string): number {
  if (o.sessionTtlMs === undefined || !(o.sessionTtlMs > 0)) throw new Error(`${system}: session() needs ConnectOptions.sessionTtlMs`);
  return o.sessionTtlMs;
}
