// What compare.ts needs from a system under test: start its servers, hand out clients, preload
// keys, tidy between write runs, stop. One driver per system (etcd.ts, zookeeper.ts, coordvol.ts).
import type { Endpoint } from './coord.js';
import type { Progress } from './proc.js';

export type ReadMode = 'serializable' | 'linearizable';

/** One client connection to the system; calls may be issued concurrently (pipelined). */
export interface KvClient {
  put(key: string, value: Uint8Array): Promise<void>;
  get(key: string, mode: ReadMode): Promise<void>;
  close(): Promise<void>;
}

export interface SystemDriver {
  /** The name used on the command line and in the table (`etcd`, `zookeeper`, `coordvol`, …). */
  readonly name: string;
  /** Installs the system if needed, starts its servers on loopback with data in a temp dir, waits until they serve. */
  start(): Promise<void>;
  /** A new client connection (call after start). */
  client(): Promise<KvClient>;
  /** Writes every key once with `value` (creating it where the system distinguishes create from update). */
  preload(keys: readonly string[], value: Uint8Array, inFlight: number): Promise<void>;
  /** Housekeeping before a write run (etcd: compact and defragment, as ANCHORS.md does). */
  beforeWriteRun(): Promise<void>;
  /** Stops every server it started (by PID) and removes its temp dirs. Safe to call twice. */
  stop(): Promise<void>;
  /** The server processes whose CPU the workloads measure (empty when the server runs in-process). */
  serverPids(): number[];
  /** One line for the report: version and setup (members, fsync, client library). */
  describe(): Promise<string>;
  /** How coordination clients reach it (W3, W5, W6; systems/coord.ts); absent when it cannot be reached from another process. */
  endpoint?(): Endpoint;
  /** W4: the member that leads now (etcd's leader, ZooKeeper's leader, coordvol's volume-lock holder) and its PID. */
  leader?(): Promise<Leader>;
  /** W4: a client for the failover writer and the check afterwards. */
  failoverClient?(o: FailoverClientOptions): Promise<FailoverClient>;
}

export interface Leader {
  /** How the report names it: `m2 (127.0.0.1:23452)`. */
  readonly name: string;
  readonly pid: number;
}

export interface FailoverClientOptions {
  /** Each call's deadline, as the client library takes it (the harness also bounds every call itself). */
  readonly callTimeoutMs: number;
  /** etcd only: keep the etcd3 client's default per-host circuit breaker (off unless asked). */
  readonly circuitBreaker?: boolean;
}

/** One connection to every member, as an application would hold it. */
export interface FailoverClient {
  /** Writes a new key (its parents created where the system needs them); resolves on acknowledgment. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** A linearizable read of `key`: its value, or undefined when it does not exist. */
  get(key: string): Promise<Uint8Array | undefined>;
  close(): Promise<void>;
}

export interface DriverOptions {
  /** Servers per system: 1, or 3 for a replicated cluster. */
  readonly members: number;
  readonly progress: Progress;
}

/** Runs `f` over `items` with at most `inFlight` calls outstanding. */
export async function forEachLimited<T>(items: readonly T[], inFlight: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await f(items[i] as T);
    }),
  );
}

/** Puts every key once over a fresh client (closed afterwards): how every driver preloads. */
export async function preloadWith(client: () => Promise<KvClient>, keys: readonly string[], value: Uint8Array, inFlight: number): Promise<void> {
  const c = await client();
  try {
    await forEachLimited(keys, inFlight, (k) => c.put(k, value));
  } finally {
    await c.close();
  }
}

/** The system cannot run in this tree (a missing piece, not a failure): compare.ts skips it in later rounds. */
export class Unavailable extends Error {
  override readonly name = 'Unavailable';
}
