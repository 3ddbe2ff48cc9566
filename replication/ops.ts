// Client operations and their results (DESIGN §3). They live here because the holder evaluates
// them (replication/evaluate.ts); translators and the client library re-export them.
import type { Rev, SessionId } from '../src/common/ids.js';
import type { KeyValue, VolumeConfig } from '../store/types.js';
import type { ConfigChange } from './config.js';

export type { KeyValue } from '../store/types.js';

export type Consistency = 'linearizable' | 'serializable';

export interface ReadOptions {
  /** Read as of this rev (must be in [compactRev, readRev]); default: the read rev. */
  readonly rev?: Rev;
  readonly consistency?: Consistency;
  /** Serializable reads: the highest rev the client has seen (never go back in time). */
  readonly minRev?: Rev;
}

export interface GetArgs extends ReadOptions {
  readonly key: string;
}
export interface GetResult {
  readonly rev: Rev;
  readonly kv: KeyValue | undefined;
}

/** A key selection: one key, a prefix, or a half-open range [start, end) (end omitted: to the last key). */
export type KeySelector =
  | { readonly key: string; readonly prefix?: undefined; readonly start?: undefined; readonly end?: undefined }
  | { readonly prefix: string; readonly key?: undefined; readonly start?: undefined; readonly end?: undefined }
  | { readonly start: string; readonly end?: string; readonly key?: undefined; readonly prefix?: undefined };

export interface RangeQuery {
  readonly limit?: number;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  /** List the direct children of a path, like ZooKeeper's getChildren (requires a prefix). */
  readonly children?: boolean;
}

export type RangeArgs = KeySelector & RangeQuery & ReadOptions;

export interface RangeResult {
  readonly rev: Rev;
  readonly kvs: readonly KeyValue[];
  /** Keys in the whole range, regardless of limit. */
  readonly count: number;
  /** More keys exist beyond `limit`. */
  readonly more: boolean;
  /** With `children`: the distinct next path segments below the prefix, sorted. */
  readonly children?: readonly string[];
}

export interface PutArgs {
  readonly key: string;
  readonly value: Uint8Array;
  readonly prevKv?: boolean;
  /** Makes the key ephemeral: it goes when this session expires or closes (DESIGN §5). */
  readonly session?: SessionId;
  /** Appends a zero-padded, volume-wide increasing counter to the key. */
  readonly sequential?: boolean;
}
/**
 * Who sent a write (DESIGN §3, exactly-once): the client's session id, the write's place in that
 * client's sequence (from 1), and the highest seq such that the client holds the reply to it and
 * to every lower one. A retry carries the same (clientId, seq); the volume answers it from the
 * result it stored, marked `duplicate`, instead of applying it twice.
 */
export interface Origin {
  readonly clientId: SessionId;
  readonly seq: number;
  readonly ackedSeq: number;
}

/** A retried write answered from the stored result: no values, no prevKv (DESIGN §3). */
export interface Deduplicated {
  readonly duplicate?: true;
}

export interface PutResult extends Deduplicated {
  readonly rev: Rev;
  /** The final key (with its counter, for a sequential put). */
  readonly key: string;
  readonly prevKv?: KeyValue | undefined;
}

export type DeleteArgs = KeySelector & { readonly prevKv?: boolean };
export interface DeleteResult extends Deduplicated {
  readonly rev: Rev;
  readonly deleted: number;
  readonly prevKvs?: readonly KeyValue[];
}

export type CompareTarget = 'value' | 'version' | 'createRev' | 'modRev' | 'exists';
export type CompareOp = '=' | '!=' | '<' | '>';
export type Compare =
  | { readonly key: string; readonly target: 'value'; readonly op: CompareOp; readonly value: Uint8Array }
  | { readonly key: string; readonly target: 'version' | 'createRev' | 'modRev'; readonly op: CompareOp; readonly value: number }
  | { readonly key: string; readonly target: 'exists'; readonly op: '=' | '!='; readonly value: boolean };

export type TxnOp =
  | ({ readonly op: 'put' } & PutArgs)
  | ({ readonly op: 'delete' } & DeleteArgs)
  | ({ readonly op: 'get'; readonly key: string })
  | ({ readonly op: 'range' } & KeySelector & RangeQuery);

export type TxnOpResult =
  | ({ readonly op: 'put' } & Omit<PutResult, 'rev'>)
  | ({ readonly op: 'delete' } & Omit<DeleteResult, 'rev'>)
  | ({ readonly op: 'get'; readonly kv: KeyValue | undefined })
  | ({ readonly op: 'range' } & Omit<RangeResult, 'rev'>);

export interface TxnArgs {
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}
export interface TxnResult extends Deduplicated {
  /** The rev the txn wrote at, or the rev it was evaluated at if it wrote nothing. */
  readonly rev: Rev;
  readonly succeeded: boolean;
  readonly results: readonly TxnOpResult[];
}

export interface CompactArgs {
  readonly rev: Rev;
}
export interface CompactResult extends Deduplicated {
  /** The rev of the compact entry itself. */
  readonly rev: Rev;
  readonly compactRev: Rev;
}

export interface SessionOpenArgs {
  readonly ttlMs: number;
  /** 128 bits the client picks (32 hex digits): a retried open finds the session it made. */
  readonly nonce: string;
  /** Who holds the session (host:pid, or the client's address), for `sessions()`. */
  readonly owner?: string;
  /** A client library's own session, naming its writes for exactly-once retries (DESIGN §3). */
  readonly client?: boolean;
}
export interface SessionOpenResult {
  /** The rev of the entry that opened it (for a retried open: that same rev). */
  readonly rev: Rev;
  readonly id: SessionId;
  readonly ttlMs: number;
}
export interface SessionIdArgs {
  readonly id: SessionId;
}
export interface KeepaliveResult {
  readonly id: SessionId;
  readonly ttlMs: number;
}
export interface SessionCloseResult extends Deduplicated {
  readonly rev: Rev;
}
export interface SessionInfo {
  readonly id: SessionId;
  readonly ttlMs: number;
  /** ms until the holder expires it unless a keepalive arrives (holder's view). */
  readonly remainingMs: number;
  readonly owner: string;
  readonly keys: number;
  readonly state: 'active' | 'idle';
  /** A client library's own session (its clientId), not one that owns ephemeral keys by request. */
  readonly client: boolean;
}
export interface SessionsResult {
  readonly rev: Rev;
  readonly sessions: readonly SessionInfo[];
}

/** A holder-made mark (DESIGN §5): idle with idleUntil on the session clock, or active again. */
export interface SessionMark {
  readonly id: SessionId;
  readonly mode: 'active' | 'idle';
  readonly idleUntil?: number;
}

/** A write the holder evaluates into one log entry. */
export type WriteOp =
  | { readonly type: 'put'; readonly args: PutArgs }
  | { readonly type: 'delete'; readonly args: DeleteArgs }
  | { readonly type: 'txn'; readonly args: TxnArgs }
  | { readonly type: 'compact'; readonly args: CompactArgs }
  | { readonly type: 'session-open'; readonly args: SessionOpenArgs }
  | { readonly type: 'keepalive'; readonly args: SessionIdArgs }
  | { readonly type: 'session-close'; readonly args: SessionIdArgs }
  // Made by the holder itself, never taken off the wire:
  | { readonly type: 'session-expire'; readonly args: SessionIdArgs }
  | { readonly type: 'session-mark'; readonly args: { readonly marks: readonly SessionMark[] } }
  // A membership change (DESIGN §4.7), evaluated by the holder itself (it knows who caught up):
  | { readonly type: 'config-change'; readonly args: ConfigChange };

export type WriteResult =
  | { readonly type: 'put'; readonly result: PutResult }
  | { readonly type: 'delete'; readonly result: DeleteResult }
  | { readonly type: 'txn'; readonly result: TxnResult }
  | { readonly type: 'compact'; readonly result: CompactResult }
  | { readonly type: 'session-open'; readonly result: SessionOpenResult }
  | { readonly type: 'keepalive'; readonly result: KeepaliveResult }
  | { readonly type: 'session-close'; readonly result: SessionCloseResult }
  | { readonly type: 'session-expire'; readonly result: SessionCloseResult }
  | { readonly type: 'session-mark'; readonly result: SessionCloseResult }
  | { readonly type: 'config-change'; readonly result: ConfigChangeResult };

/** A config entry appended and committed: its rev and the config now in force. */
export interface ConfigChangeResult {
  readonly rev: Rev;
  readonly config: VolumeConfig;
}
