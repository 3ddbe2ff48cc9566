// What a brick stores: keys with their metadata, and the log of entries (epoch, rev, effects).
import type { BrickId, Epoch, Rev, SessionId, VolumeId } from '../src/common/ids.js';

/** A key's state at some rev. `version` counts puts since the key was (re)created. */
export interface KeyRecord {
  readonly value: Uint8Array;
  readonly createRev: Rev;
  readonly modRev: Rev;
  readonly version: number;
  readonly session: SessionId;
}

/**
 * The volume's config (DESIGN §4.1): the initial one is entry (0, 1), and its hash is the
 * volumeId (DESIGN §8); config entries change it one brick at a time (DESIGN §4.7).
 */
export interface VolumeConfig {
  readonly volumeName: string;
  /** host:path of every voter, sorted. */
  readonly bricks: readonly string[];
  readonly quorumCount: number;
  /** host:path of every learner (healed, sent every entry, never counted), sorted; absent: none. */
  readonly learners?: readonly string[];
  /**
   * brick (host:path) → the protocol address (host:port) of the master serving it, for bricks a
   * config change added at run time (`peer probe --as-master`): every master reaches them from
   * this, having no volfile subvolume for them yet. Absent: none (the volfiles name every brick).
   */
  readonly masters?: Readonly<Record<string, string>>;
}

/**
 * A resolved effect: what the holder decided, applied by bricks without re-evaluation
 * (DESIGN §4.4). createRev and version are resolved too, so applying is a pure write.
 */
export type Effect =
  | { readonly t: 'put'; readonly key: string; readonly value: Uint8Array; readonly createRev: Rev; readonly version: number; readonly session: SessionId }
  | { readonly t: 'del'; readonly key: string }
  | { readonly t: 'compact'; readonly rev: Rev }
  | { readonly t: 'config'; readonly config: VolumeConfig }
  | { readonly t: 'epoch-start' };

/** One rev of the replicated log. Every rev has exactly one entry. */
export interface Entry {
  readonly epoch: Epoch;
  readonly rev: Rev;
  readonly effects: readonly Effect[];
  /** The holder's session clock when it made the entry (DESIGN §5); absent in entries made before sessions. */
  readonly sclock?: number;
}

/** The brick's identity, fixed at creation. */
export interface BrickIdentity {
  readonly volumeId: VolumeId;
  readonly brickId: BrickId;
  readonly volumeName: string;
}

/** The last entry a brick holds: (lastEpoch, lastRev). */
export interface LogPosition {
  readonly epoch: Epoch;
  readonly rev: Rev;
}

/**
 * One atomic, durable change to a brick (DESIGN §4: "in one synced LMDB transaction").
 * Applied in this order: promise, truncation, append, commit.
 */
export interface BrickWrite {
  /** Adopt or grant a promise: promisedEpoch and the id it was granted to. */
  readonly promise?: { readonly epoch: Epoch; readonly grantee: string };
  /** Delete the entry at this rev and all after it (must be above commitRev). */
  readonly truncateFrom?: Rev;
  /** Entries to append right after the (possibly truncated) last entry. */
  readonly append?: readonly Entry[];
  /** Advance commitRev (never decreases) and apply entries up to it. */
  readonly commitRev?: Rev;
}

/** A key with its metadata, as reads return it. */
export interface KeyValue {
  readonly key: string;
  readonly value?: Uint8Array;
  readonly createRev: Rev;
  readonly modRev: Rev;
  readonly version: number;
  readonly session: SessionId;
}

/** A half-open key range [start, end); end undefined = to the last key. */
export interface KeyRange {
  readonly start: string;
  readonly end: string | undefined;
}
