// Every limit in one place, with the relationships between them asserted at load.
import { assert } from './assert.js';

/** DESIGN §3: keys are at most 4 KiB of UTF-8. */
export const keyBytesMax = 4096;
/** DESIGN §3: values are at most 1 MiB by default. */
export const valueBytesMax = 1024 * 1024;
/** Operations in one txn (compares + success + failure). */
export const txnOpsMax = 1024;
/** Total bytes of keys and values in one txn (`too-large`). */
export const txnBytesMax = 8 * 1024 * 1024;
/** Keys and values one append or fetch carries at most (beyond its first entry): well inside a message. */
export const appendBytesMax = 16 * 1024 * 1024;
/** DESIGN §7: transport frame cap. */
export const frameBytesMax = 4 * 1024 * 1024;
/** DESIGN §7: a message reassembled from frames marked `more` (a request, a response). */
export const messageBytesMax = 64 * 1024 * 1024;
/** A message a peer may send before its handshake is done (hello, auth, welcome, goaway). */
export const handshakeMessageBytesMax = 4096;
/** Requests one connection may have in flight at the server before it stops reading more. */
export const connectionRequestsMax = 1024;
/** Response bytes queued on one connection before the server stops reading its requests. */
export const connectionWriteBytesMax = 16 * 1024 * 1024;
/** Requests a client holds while it has no connection (beyond them calls fail `unavailable`). */
export const clientPendingRequestsMax = 100_000;
/** A request's deadline as the server honours it (a longer one is cut to this). */
export const requestTimeoutMsMax = 600_000;
/** Keys returned by one range call when the caller sets no limit. */
export const rangeLimitDefault = 10_000;
export const rangeLimitMax = 100_000;
/**
 * Bytes of keys and values one range answer carries; past it the answer stops early with
 * `more` (a caller reads on from its last key). Keeps a range of large values within a message.
 */
export const rangeBytesMax = 16 * 1024 * 1024;
/** Client operations the holder evaluates into one group-commit batch. */
export const batchOpsMax = 512;
/** Batches appended to a brick but not yet acked (pipelining depth). */
export const batchesInFlightMax = 2;
/** Operations waiting for evaluation before new ones are refused. */
export const pendingOpsMax = 100_000;
/** Log entries a brick keeps behind its commitRev for heals (local policy, DESIGN §3). */
export const logRetainRevsDefault = 10_000;
/** How far behind the commit point a lagging voter may pin the holder's log (beyond it: a snapshot heal). */
export const logPinRevsMax = 1_000_000;
/** Committed entries a brick holds in memory before a checkpoint writes them to its tables. */
export const checkpointEntriesDefault = 4096;
/** Revs one checkpoint transaction covers (log commits queue behind one chunk at most). */
export const checkpointChunkRevs = 8192;
/** Value bytes a brick holds in memory before a checkpoint is due, whatever the entry count. */
export const checkpointBytesMax = 32 * 1024 * 1024;
/** Current records a brick keeps decoded in memory for point reads. */
export const recordCacheEntriesMax = 100_000;
/** Bytes of versions in one snapshot chunk: a chunk ends at the first version that reaches it. */
export const snapshotChunkBytes = 1024 * 1024;
/** What one version of a snapshot chunk counts beyond its key and value bytes (its encoding, with room). */
export const snapshotVersionOverheadBytes = 128;
/** Versions one snapshot chunk holds at most (each counts at least its overhead). */
export const snapshotChunkVersionsMax = Math.floor(snapshotChunkBytes / snapshotVersionOverheadBytes) + 1;
/** Key and value bytes one snapshot chunk holds at most: the budget, plus the version that crossed it. */
export const snapshotChunkBytesMax = snapshotChunkBytes + keyBytesMax + valueBytesMax;
/**
 * Bytes of watch messages buffered for one consumer (a watcher's queue in the library, or a
 * connection's unsent output at the server) before its watch is cancelled with `slow-consumer`.
 */
export const watchBacklogBytesMax = 32 * 1024 * 1024;
/** Events one replay step reconstructs from history (whole revs; at least one rev). */
export const watchReplayEventsMax = 10_000;
/** Watches one connection may hold at a server. */
export const watchStreamsPerConnectionMax = 10_000;
/** Encoded event bytes in one watch push; one rev's events beyond it span several pushes. */
export const watchPushEventBytesMax = 16 * 1024 * 1024;
/**
 * DESIGN §3: a client's writes past its ackedSeq (lastSeq − ackedSeq) that the volume keeps
 * results for, in as many slots per client (replication/dedupe.ts); beyond it a write gets
 * `too-many-in-flight`. The client library holds further writes back, so a client has at most
 * this many writes in flight.
 */
export const dedupeWindowMax = 1024;
/** The ttl of the session the client library opens for itself (its clientId, DESIGN §3). */
export const clientSessionTtlMsDefault = 30_000;
/** The longest session ttl (DESIGN §5: 1 h); the shortest is max(2 s, 4·leaseMs). */
export const sessionTtlMsMax = 3_600_000;
/** How often the holder judges session deadlines and idle marks. */
export const sessionTickMs = 50;
/** Samples kept per latency histogram in io-stats. */
export const latencySamplesMax = 4096;

/**
 * LMDB keys are at most 1978 bytes with the default 4 KiB page. Keys longer than this prefix are
 * stored under prefix + 0xFF + hash and re-sorted within their group on reads (store/keys.ts).
 */
export const lmdbKeyPrefixBytes = 1900;

assert(keyBytesMax > lmdbKeyPrefixBytes, 'long keys must be mapped');
assert(lmdbKeyPrefixBytes + 1 + 16 + 1 + 8 <= 1978, 'hist keys fit in an LMDB key');
assert(valueBytesMax + keyBytesMax + 1024 <= frameBytesMax, 'one put fits in one frame');
assert(txnBytesMax >= valueBytesMax, 'a txn can hold the largest value');
assert(messageBytesMax >= 2 * txnBytesMax && messageBytesMax % frameBytesMax === 0, 'the largest txn (and its response) fits in one message of whole frames');
assert(handshakeMessageBytesMax < frameBytesMax, 'a handshake message is one frame');
assert(rangeBytesMax * 2 <= messageBytesMax, 'a range answer fits a message, with room for its encoding');
assert(messageBytesMax < 2 ** 31, 'a message length fits a signed 32-bit int');
assert(snapshotChunkBytesMax + snapshotChunkVersionsMax * snapshotVersionOverheadBytes <= frameBytesMax, 'one snapshot chunk, encoded, fits in one frame');
assert(rangeLimitDefault <= rangeLimitMax, 'default range limit within max');
assert(rangeBytesMax >= valueBytesMax + keyBytesMax, 'a range answer holds at least one key');
assert(watchBacklogBytesMax >= 2 * rangeBytesMax, 'a range answer queued on a connection does not cancel its watches');
assert(watchPushEventBytesMax + 2 * (valueBytesMax + keyBytesMax) <= messageBytesMax, 'a watch push (a part of a rev, plus one event with prevKv) fits in a message');
