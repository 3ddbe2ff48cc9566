// The one list of fops (STYLE §2): every translator implements the same operations, and the base
// translator passes each to its child unless it overrides it.
import type { Epoch, Rev } from '../src/common/ids.js';
import type {
  CompactArgs, CompactResult, DeleteArgs, DeleteResult, GetArgs, GetResult, PutArgs, PutResult,
  RangeArgs, RangeResult, TxnArgs, TxnResult, SessionOpenArgs, SessionOpenResult, SessionIdArgs, KeepaliveResult,
  SessionCloseResult, SessionsResult, Origin, ConfigChangeResult,
} from '../replication/ops.js';
import type { ConfigChange } from '../replication/config.js';
import type { LogPosition, VolumeConfig } from '../store/types.js';
import type { UnwatchArgs, WatchArgs, WatchResult } from './features/watch-types.js';
import type { PeerInfo, PeerJoinArgs, PeerJoinResult } from './protocol/mgmt.js';

export type * from '../replication/ops.js';
export type * from './features/watch-types.js';
export type * from './protocol/mgmt.js';

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
  /** Client keys at its commit point; absent for a remote brick in a volume status (not asked). */
  readonly keys?: number;
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
    /** removed: the local brick, which a config entry took out of the volume. */
    readonly role: 'holder' | 'voter' | 'learner' | 'removed';
    readonly lag: number;
    /** The holder heard from it within a lease (absent: this master is not the holder and could not ask it). */
    readonly reachable?: boolean;
    /** It needs entries the holder's log no longer holds: a snapshot heal. */
    readonly needsSnapshot?: boolean;
    /** The snapshot heal now streaming to it from this holder, if any. */
    readonly snapshot?: SnapshotProgress;
  })[];
}

/**
 * A snapshot heal in flight, as the holder's carrier counts it. The export does not know its
 * size up front (it streams the history table), so there is no total: what has gone, and since when.
 */
export interface SnapshotProgress {
  /** s: the snapshot is the committed state at this rev. */
  readonly rev: Rev;
  readonly versionsSent: number;
  readonly chunksSent: number;
  /** Key and value bytes sent. */
  readonly bytesSent: number;
  readonly elapsedMs: number;
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
export type { AppendArgs, AppendResult, FetchArgs, FetchResult, LockArgs, LockResult, ProbeArgs, ProbeResult, SnapshotChunkArgs, SnapshotResult } from '../replication/messages.js';
import type { AppendArgs, AppendResult, FetchArgs, FetchResult, LockArgs, LockResult, ProbeArgs, ProbeResult, SnapshotChunkArgs, SnapshotResult } from '../replication/messages.js';
import type { SnapshotChunk } from '../store/snapshot.js';

/**
 * One chunk of a snapshot heal (DESIGN §4.8) as the carrier (cluster/replicate) sends it to a
 * brick (features/locks): the fenced part (epoch, sender, rev s, revEpoch) on every chunk, and
 * the stream's place: `transfer` names one stream, `seq` counts its chunks from 0 (the header)
 * to its `end` chunk. Chunks are sent one at a time, each after the answer to the one before.
 */
export interface SnapshotChunkFopArgs extends SnapshotChunkArgs {
  readonly transfer: string;
  readonly seq: number;
  readonly chunk: SnapshotChunk;
}
/**
 * The answer to a chunk: `{ ok: true, wanted }` to a header or versions chunk (wanted false: the
 * brick holds the state at s already and ignores the stream to its end), the SnapshotResult to
 * the `end` chunk; `fenced` or `failed` (the import broke) at any chunk, which ends the stream.
 */
export type SnapshotChunkFopResult = { readonly ok: true; readonly wanted: boolean } | SnapshotResult;

export interface FopTable {
  get: [GetArgs, GetResult];
  range: [RangeArgs, RangeResult];
  put: [PutArgs, PutResult];
  delete: [DeleteArgs, DeleteResult];
  txn: [TxnArgs, TxnResult];
  compact: [CompactArgs, CompactResult];
  /** A membership change (DESIGN §4.7), applied by the holder. */
  configChange: [ConfigChange, ConfigChangeResult];
  status: [Record<string, never>, StatusResult];
  statedump: [Record<string, never>, readonly TranslatorDump[]];
  profile: [Record<string, never>, readonly ProfileEntry[]];
  lock: [LockArgs, LockResult];
  append: [AppendArgs, AppendResult];
  probe: [ProbeArgs, ProbeResult];
  fetch: [FetchArgs, FetchResult];
  snapshotChunk: [SnapshotChunkFopArgs, SnapshotChunkFopResult];
  /** A stream: the sink in the args receives the events (features/watch, DESIGN §6). */
  watch: [WatchArgs, WatchResult];
  unwatch: [UnwatchArgs, Record<string, never>];
  sessionOpen: [SessionOpenArgs, SessionOpenResult];
  keepalive: [SessionIdArgs, KeepaliveResult];
  sessionClose: [SessionIdArgs, SessionCloseResult];
  sessions: [Record<string, never>, SessionsResult];
  /** Management (DESIGN §8), answered by the daemon behind protocol/server: who is this daemon. */
  peerInfo: [Record<string, never>, PeerInfo];
  /** Management: discard the fresh single-brick volume and join another. */
  peerJoin: [PeerJoinArgs, PeerJoinResult];
}

export type FopName = keyof FopTable;
export type FopArgs<F extends FopName> = FopTable[F][0];
export type FopResult<F extends FopName> = FopTable[F][1];
export type FopHandler<F extends FopName> = (ctx: FopContext, args: FopArgs<F>) => Promise<FopResult<F>>;
export type FopHandlers = { [F in FopName]?: FopHandler<F> };

export const FOP_NAMES = ['get', 'range', 'put', 'delete', 'txn', 'compact', 'configChange', 'status', 'statedump', 'profile', 'lock', 'append', 'probe', 'fetch', 'snapshotChunk', 'watch', 'unwatch', 'sessionOpen', 'keepalive', 'sessionClose', 'sessions', 'peerInfo', 'peerJoin'] as const satisfies readonly FopName[];

/** The writes that carry an origin for exactly-once retries (DESIGN §3); keepalives and opens are idempotent without one. */
export const ORIGIN_FOPS: ReadonlySet<FopName> = new Set<FopName>(['put', 'delete', 'txn', 'compact', 'sessionClose']);
