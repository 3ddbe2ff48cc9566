// How keys become LMDB keys. LMDB keys are at most 1978 bytes; DESIGN §3 allows 4 KiB. A key up
// to lmdbKeyPrefixBytes is stored as its UTF-8 bytes; a longer one as its first
// lmdbKeyPrefixBytes bytes + 0xFF + a 16-byte hash, with the full key kept in the record. Such
// keys sort by hash within their prefix group, so scans re-sort each group (sortLongGroups).
// 0xFF never occurs in UTF-8, and every key in a group shares the prefix, so groups are
// contiguous and ordered correctly against every other key.
import { createHash } from 'node:crypto';
import { assert } from '../src/common/assert.js';
import { lmdbKeyPrefixBytes } from '../src/common/limits.js';
import { compareKeys } from '../src/common/keys.js';
import type { Rev } from '../src/common/ids.js';
import { asRev } from '../src/common/ids.js';

const LONG_MARK = 0xff;
const HASH_BYTES = 16;
const REV_BYTES = 8;

export function isLongKey(bytes: Uint8Array): boolean {
  return bytes.length > lmdbKeyPrefixBytes;
}

/** The table key for a user key (kv table). */
export function tableKey(key: string): Buffer {
  const bytes = Buffer.from(key, 'utf8');
  if (!isLongKey(bytes)) return bytes;
  const out = Buffer.allocUnsafe(lmdbKeyPrefixBytes + 1 + HASH_BYTES);
  bytes.copy(out, 0, 0, lmdbKeyPrefixBytes);
  out[lmdbKeyPrefixBytes] = LONG_MARK;
  createHash('sha256').update(bytes).digest().copy(out, lmdbKeyPrefixBytes + 1, 0, HASH_BYTES);
  return out;
}

export function tableKeyIsLong(tk: Uint8Array): boolean {
  return tk.length === lmdbKeyPrefixBytes + 1 + HASH_BYTES && tk[lmdbKeyPrefixBytes] === LONG_MARK;
}

/** Decode a short table key back to its user key (long keys carry theirs in the record). */
export function shortKeyOf(tk: Uint8Array): string {
  return Buffer.from(tk.buffer, tk.byteOffset, tk.byteLength).toString('utf8');
}

/** The history table key: tableKey + 0x00 + rev (8 bytes big-endian). Keys contain no NUL. */
export function histKey(tk: Uint8Array, rev: Rev): Buffer {
  const out = Buffer.allocUnsafe(tk.length + 1 + REV_BYTES);
  out.set(tk, 0);
  out[tk.length] = 0;
  out.writeBigUInt64BE(BigInt(rev), tk.length + 1);
  return out;
}

export function splitHistKey(hk: Uint8Array): { tk: Buffer; rev: Rev } {
  const b = Buffer.from(hk.buffer, hk.byteOffset, hk.byteLength);
  const cut = b.length - REV_BYTES - 1;
  return { tk: b.subarray(0, cut), rev: asRev(Number(b.readBigUInt64BE(cut + 1))) };
}

/**
 * Table-key bounds that cover every key in [start, end). Long bounds are widened to their whole
 * prefix group; callers filter by the real key.
 */
export function tableBounds(start: string, end: string | undefined): { lo: Buffer; hi: Buffer | undefined; exact: boolean } {
  // An end with NUL would sort below its own key's history entries (key + 0x00 + rev).
  assert(end === undefined || !end.includes('\u0000'), 'range bounds contain no NUL');
  const s = Buffer.from(start, 'utf8');
  let exact = true;
  let lo = s;
  if (isLongKey(s)) {
    lo = s.subarray(0, lmdbKeyPrefixBytes);
    exact = false;
  }
  let hi: Buffer | undefined;
  if (end !== undefined) {
    const e = Buffer.from(end, 'utf8');
    if (isLongKey(e)) {
      // Just above the whole group of keys sharing e's prefix.
      hi = Buffer.concat([e.subarray(0, lmdbKeyPrefixBytes), Buffer.alloc(HASH_BYTES + 2, 0xff)]);
      exact = false;
    } else {
      hi = e;
    }
  }
  return { lo, hi, exact };
}

/**
 * Re-sort runs of long keys that share a prefix group (they come out of the table in hash
 * order) so a scan yields keys in true order. Items of short keys pass straight through.
 */
export function* sortLongGroups<T>(items: Iterable<T>, keyOf: (t: T) => string, tkOf: (t: T) => Uint8Array): Generator<T> {
  let group: T[] = [];
  let groupPrefix: Buffer | undefined;
  const flush = function* (): Generator<T> {
    if (group.length > 1) group.sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
    yield* group;
    group = [];
    groupPrefix = undefined;
  };
  for (const it of items) {
    const tk = tkOf(it);
    if (tableKeyIsLong(tk)) {
      const p = Buffer.from(tk.buffer, tk.byteOffset, lmdbKeyPrefixBytes);
      if (groupPrefix && !groupPrefix.equals(p)) yield* flush();
      groupPrefix = p;
      group.push(it);
    } else {
      if (group.length) yield* flush();
      yield it;
    }
  }
  if (group.length) yield* flush();
}
