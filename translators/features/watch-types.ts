// The watch fop's types (DESIGN §6): what features/watch takes and hands out, shared by the
// translators that carry a watch (protocol/server, protocol/client) and by the client library.
//
// A watch is a stream, not a request/response: the caller passes a sink with its args, the fop
// answers at once with the watch's id and its first rev, and the sink then receives, in rev order,
// one call per rev that touches the watched range, progress notifications if asked for, and at
// most one end. `unwatch` stops it (no end call follows).
import type { CoordError } from '../../src/common/errors.js';
import type { Rev } from '../../src/common/ids.js';
import type { KeySelector, KeyValue } from '../../replication/ops.js';

/** One change to one key. A delete's kv has the key and modRev (the delete's rev), no value. */
export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
  /** The key's record at rev − 1, when the watch asked for prevKv and the key existed. */
  readonly prevKv?: KeyValue;
}

/**
 * An event as the sinks of every watcher whose options agree receive it: the same object, and
 * its wire encoding made at most once however many connections it goes to.
 */
export interface SharedWatchEvent {
  readonly event: WatchEvent;
  /** The event's msgpack encoding (context-free: no shared record structures). */
  readonly encoded: Uint8Array;
  /** What it costs a consumer's buffer, roughly: keys, values and a fixed overhead. */
  readonly sizeBytes: number;
}

export interface WatchOptions {
  /** The first rev to deliver (≥ 1). Default: the serving brick's commitRev + 1 ("from now"). */
  readonly fromRev?: Rev;
  readonly prevKv?: boolean;
  /** Send progress notifications while the stream is idle. */
  readonly progress?: boolean;
}

/** Where a watch's output goes. Calls are made in rev order; none after end() or unwatch. */
export interface WatchSink {
  /** Every event of one rev that the watch selects, in key order. */
  events(rev: Rev, events: readonly SharedWatchEvent[]): void;
  /** Every event at or below `rev` has been sent to this sink already. */
  progress(rev: Rev): void;
  /** The watch is over (compacted, slow-consumer, closed, …). */
  end(error: CoordError): void;
  /** Bytes handed to the sink that its consumer has not taken yet. */
  readonly backlogBytes: number;
  /** Resolves once backlogBytes ≤ `bytes`, or the sink will take nothing more: replay paces on it. */
  drained(bytes: number): Promise<void>;
  /** The buffer the backlog sits in, for statedump ('connection 3', 'watcher 7'). */
  readonly owner: string;
}

export type WatchArgs = KeySelector & WatchOptions & { readonly sink: WatchSink };

export interface WatchResult {
  /** Names the watch for unwatch (unique per translator that answered). */
  readonly watchId: number;
  /** The first rev the stream delivers: fromRev, or the brick's commitRev + 1 when none was given. */
  readonly fromRev: Rev;
}

export interface UnwatchArgs {
  readonly watchId: number;
}

/** The watch ops on the wire: a watch names the client-chosen stream its pushes arrive on. */
export type WireWatchArgs = KeySelector & WatchOptions & { readonly stream: number };
export interface WireUnwatchArgs {
  readonly stream: number;
}

/**
 * What a server pushes on a watch's stream. One rev's events may span several pushes (each with
 * `more` but the last) so that no message outgrows the wire's cap (DESIGN §7).
 */
export type WatchPush =
  /** `also`: other streams of the connection the same events go to (one push for all of them). */
  | { readonly kind: 'events'; readonly rev: number; readonly events: readonly Uint8Array[]; readonly more?: true; readonly also?: readonly number[] }
  | { readonly kind: 'progress'; readonly rev: number }
  | { readonly kind: 'end'; readonly error: { readonly code: string; readonly message: string; readonly details?: Readonly<Record<string, unknown>> } };
