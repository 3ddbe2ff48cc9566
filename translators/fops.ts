// The one list of fops (STYLE §2): every translator implements the same operations, and the base
// translator passes each to its child unless it overrides it.
import type { Epoch, Rev } from '../src/common/ids.js';
import type {
  CompactArgs, CompactResult, DeleteArgs, DeleteResult, GetArgs, GetResult, PutArgs, PutResult,
  RangeArgs, RangeResult, TxnArgs, TxnResult, SessionOpenArgs, SessionOpenResult, SessionIdArgs, KeepaliveResult,
  SessionCloseResult, SessionsResult, Origin,
} from '../replication/ops.js';
import type { LogPosition, VolumeConfig } from '../store/types.js';
import type { UnwatchArgs, WatchArgs, WatchResult } from './features/watch-types.js';

export type * from '../replication/ops.js';
export type * from './features/watch-types.js';

/** Per-call context: typed, no side bag. */
export interface FopContext {
  /** Monotonic deadline (ms, the graph clock's time base); past it, waits end with `timeout`. */
  readonly deadlineMs?: number;
  /** A write's sender and place in its client's sequence, for exactly-once retries (DESIGN §3). */
  readonly origin?: Origin;
}

export interface BrickStatus {
  readonly brickId: string;
  readonly path: string;
  readonly lastEpoch: Epoch;
  readonly lastRev: Rev;
  readonly commitRev: Rev;
  readonly compactRev: Rev;
  readonly promisedEpoch: Epoch;
  readonly keys: number;
}

export interface VolumeStatus {
  readonly volumeId: string;
  readonly volumeName: string;
  readonly epoch: Epoch;
  readonly holder: string;
  readonly commitRev: Rev;
  readonly compactRev: Rev;
  readonly quorum: number;
  readonly bricks: readonly (BrickStatus & {
    readonly role: 'holder' | 'voter' | 'learner';
    readonly lag: number;
    /** The holder heard from it within a lease (absent: this master is not the holder and could not ask it). */
    readonly reachable?: boolean;
    /** It needs entries the holder's log no longer holds: a snapshot heal (not built yet). */
    readonly needsSnapshot?: boolean;
  })[];
}

export interface StatusResult {
  readonly volume?: VolumeStatus;
  readonly brick?: BrickStatus;
}

/** One translator's state for inspection. Free-form by nature: it is a debugging dump. */
export interface TranslatorDump {
  readonly name: string;
  readonly type: string;
  readonly state: Readonly<Record<string, unknown>>;
}

export interface FopStats {
  readonly count: number;
  readonly errors: number;
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly latencyMsMax: number;
  /** Sum of every latency since start (with count: the mean, and Prometheus's _sum). */
  readonly latencyMsSum: number;
}
export interface ProfileEntry {
  readonly name: string;
  readonly fops: Readonly<Record<string, FopStats>>;
}

// Brick fops: the replication protocol between the replicate translator and each brick.
export type { AppendArgs, AppendResult, FetchArgs, FetchResult, LockArgs, LockResult, ProbeArgs, ProbeResult } from '../replication/messages.js';
import type { AppendArgs, AppendResult, FetchArgs, FetchResult, LockArgs, LockResult, ProbeArgs, ProbeResult } from '../replication/messages.js';

export interface FopTable {
  get: [GetArgs, GetResult];
  range: [RangeArgs, RangeResult];
  put: [PutArgs, PutResult];
  delete: [DeleteArgs, DeleteResult];
  txn: [TxnArgs, TxnResult];
  compact: [CompactArgs, CompactResult];
  status: [Record<string, never>, StatusResult];
  statedump: [Record<string, never>, readonly TranslatorDump[]];
  profile: [Record<string, never>, readonly ProfileEntry[]];
  lock: [LockArgs, LockResult];
  append: [AppendArgs, AppendResult];
  probe: [ProbeArgs, ProbeResult];
  fetch: [FetchArgs, FetchResult];
  /** A stream: the sink in the args receives the events (features/watch, DESIGN §6). */
  watch: [WatchArgs, WatchResult];
  unwatch: [UnwatchArgs, Record<string, never>];
  sessionOpen: [SessionOpenArgs, SessionOpenResult];
  keepalive: [SessionIdArgs, KeepaliveResult];
  sessionClose: [SessionIdArgs, SessionCloseResult];
  sessions: [Record<string, never>, SessionsResult];
}

export type FopName = keyof FopTable;
export type FopArgs<F extends FopName> = FopTable[F][0];
export type FopResult<F extends FopName> = FopTable[F][1];
export type FopHandler<F extends FopName> = (ctx: FopContext, args: FopArgs<F>) => Promise<FopResult<F>>;
export type FopHandlers = { [F in FopName]?: FopHandler<F> };

export const FOP_NAMES = ['get', 'range', 'put', 'delete', 'txn', 'compact', 'status', 'statedump', 'profile', 'lock', 'append', 'probe', 'fetch', 'watch', 'unwatch', 'sessionOpen', 'keepalive', 'sessionClose', 'sessions'] as const satisfies readonly FopName[];

/** The writes that carry an origin for exactly-once retries (DESIGN §3); keepalives and opens are idempotent without one. */
export const ORIGIN_FOPS: ReadonlySet<FopName> = new Set<FopName>(['put', 'delete', 'txn', 'compact', 'sessionClose']);
