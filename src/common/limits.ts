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
/** DESIGN §7: transport frame cap. */
export const frameBytesMax = 4 * 1024 * 1024;
/** Keys returned by one range call when the caller sets no limit. */
export const rangeLimitDefault = 10_000;
export const rangeLimitMax = 100_000;
/** Client operations the holder evaluates into one group-commit batch. */
export const batchOpsMax = 512;
/** Batches appended to a brick but not yet acked (pipelining depth). */
export const batchesInFlightMax = 2;
/** Operations waiting for evaluation before new ones are refused. */
export const pendingOpsMax = 100_000;
/** Log entries a brick keeps behind its commitRev for heals (local policy, DESIGN §3). */
export const logRetainRevsDefault = 10_000;
/** Committed entries a brick holds in memory before a checkpoint writes them to its tables. */
export const checkpointEntriesDefault = 4096;
/** Revs one checkpoint transaction covers (log commits queue behind one chunk at most). */
export const checkpointChunkRevs = 8192;
/** Value bytes a brick holds in memory before a checkpoint is due, whatever the entry count. */
export const checkpointBytesMax = 32 * 1024 * 1024;
/** Current records a brick keeps decoded in memory for point reads. */
export const recordCacheEntriesMax = 100_000;
/** Bytes of versions in one snapshot chunk. */
export const snapshotChunkBytes = 1024 * 1024;
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
assert(rangeLimitDefault <= rangeLimitMax, 'default range limit within max');
