// The replication protocol between a master's replicate translator and the bricks (DESIGN §4):
// probe (pre-vote), lock (election), append (log shipping, heartbeats) and fetch (the heal on
// lock reads the source's log). Bricks never talk to each other; every request comes from a
// master and every reply goes back to it. Defined here, not in translators/, so the simulator
// and the brick acceptor (brick.ts) share them with the real translators.
import type { Epoch, Rev } from '../src/common/ids.js';
import type { Entry, LogPosition, VolumeConfig } from '../store/types.js';

/** Pre-vote (Raft §9.6): changes nothing on the brick. */
export interface ProbeArgs {
  readonly epoch: Epoch;
  readonly candidate: string;
}
export interface ProbeResult {
  readonly wouldGrant: boolean;
  readonly promisedEpoch: Epoch;
  /** The brick's last entry: a candidate whose log is behind may back off longer. */
  readonly last: LogPosition;
}

export interface LockArgs {
  readonly epoch: Epoch;
  readonly candidate: string;
}
export type LockResult =
  | {
      readonly granted: true;
      readonly brickId: string;
      readonly last: LogPosition;
      readonly commitRev: Rev;
      readonly compactRev: Rev;
      readonly config: VolumeConfig;
      /** The session clock of the brick's last entry (DESIGN §5). */
      readonly lastSclock: number;
      /** ms since the brick's log last changed, or since it started if later (DESIGN §5). */
      readonly quietMs: number;
      /** The brick's lease: sessions are at least max(2 s, 4·leaseMs). */
      readonly leaseMs: number;
    }
  | { readonly granted: false; readonly promisedEpoch: Epoch; readonly reason: 'epoch' | 'lease' };

export interface AppendMessage {
  readonly epoch: Epoch;
  readonly prevEpoch: Epoch;
  readonly prevRev: Rev;
  /** Empty: a heartbeat. */
  readonly entries: readonly Entry[];
  readonly commitRev: Rev;
}

/** The holder's append and its id, which the brick's lease record names. */
export type AppendArgs = AppendMessage & { readonly sender: string };
export type AppendResult =
  /** lastRev: the last rev this message covered, now durable; commitRev: the brick's applied point. */
  | { readonly ok: true; readonly lastRev: Rev; readonly commitRev: Rev }
  | { readonly ok: false; readonly reason: 'fenced'; readonly promisedEpoch: Epoch }
  | { readonly ok: false; readonly reason: 'mismatch'; readonly hintEpoch: Epoch | undefined; readonly hintFirstRev: Rev | undefined; readonly lastRev: Rev };

/**
 * The heal on lock (DESIGN §4.3) reads the source brick's log from `from`. Fenced like an append
 * (a brick answers only a fetch at its promisedEpoch), but it changes nothing and sets no lease.
 */
export interface FetchArgs {
  readonly epoch: Epoch;
  readonly from: Rev;
  readonly maxEntries: number;
}
export type FetchResult =
  | {
      readonly ok: true;
      /** The epoch of the entry at from − 1 (the append's prevEpoch), undefined below the retained log. */
      readonly prevEpoch: Epoch | undefined;
      readonly entries: readonly Entry[];
      readonly last: LogPosition;
      readonly commitRev: Rev;
    }
  | { readonly ok: false; readonly reason: 'fenced'; readonly promisedEpoch: Epoch }
  /** The log no longer holds `from`: a snapshot heal is needed (DESIGN §4.8). */
  | { readonly ok: false; readonly reason: 'compacted'; readonly firstRev: Rev };

/**
 * A snapshot heal (DESIGN §4.8): the holder asks its carrier (the replicate translator, or the
 * simulator) to ship the local brick's committed state to a voter or learner whose next entry
 * the local log no longer holds. The carrier picks the snapshot's rev s (the local brick's
 * commitRev) and streams it in chunks, each a SnapshotChunkArgs, fenced like an append.
 */
export interface SnapshotArgs {
  readonly epoch: Epoch;
  readonly sender: string;
}
/** What every chunk of a snapshot stream carries: the sender's epoch and id, and s with its epoch. */
export interface SnapshotChunkArgs extends SnapshotArgs {
  /** s: the snapshot is the committed state at this rev. */
  readonly rev: Rev;
  /** The epoch of entry s. */
  readonly revEpoch: Epoch;
}
export type SnapshotResult =
  /** The brick holds the committed state at lastRev (installed now, or it was committed there already). */
  | { readonly ok: true; readonly lastRev: Rev; readonly commitRev: Rev }
  | { readonly ok: false; readonly reason: 'fenced'; readonly promisedEpoch: Epoch }
  /** The transfer broke (connection, export or install error): the holder tries again later. */
  | { readonly ok: false; readonly reason: 'failed'; readonly message: string };

export type BrickRequest =
  | { readonly t: 'probe'; readonly args: ProbeArgs }
  | { readonly t: 'lock'; readonly args: LockArgs }
  | { readonly t: 'append'; readonly args: AppendArgs }
  | { readonly t: 'fetch'; readonly args: FetchArgs }
  | { readonly t: 'snapshot'; readonly args: SnapshotArgs };

export type BrickReply =
  | { readonly t: 'probe'; readonly res: ProbeResult }
  | { readonly t: 'lock'; readonly res: LockResult }
  | { readonly t: 'append'; readonly res: AppendResult }
  | { readonly t: 'fetch'; readonly res: FetchResult }
  | { readonly t: 'snapshot'; readonly res: SnapshotResult };

/** The bytes an entry's keys and values take on the wire, roughly (for the append and fetch byte budget). */
export function entryBytes(e: Entry): number {
  let n = 32;
  for (const fx of e.effects) {
    n += 16;
    if (fx.t === 'put') n += fx.key.length + fx.value.byteLength;
    else if (fx.t === 'del') n += fx.key.length;
    else if (fx.t === 'config') n += 64 + [...fx.config.bricks, ...(fx.config.learners ?? [])].reduce((m, b) => m + b.length, 0);
  }
  return n;
}
