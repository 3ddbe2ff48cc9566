// The stored form of key versions, validated on write and on read (records cross the storage
// boundary twice; a mismatch means corruption or a bug, so it fails loudly).
import { assert } from '../src/common/assert.js';
import { asRev, asSessionId, type Rev } from '../src/common/ids.js';
import type { Effect, KeyRecord } from './types.js';

/** A live version (kv and hist tables) or, with d = 1, a deletion (hist only). Short names: on disk. */
export interface StoredVersion {
  readonly v?: Uint8Array;
  readonly c?: number;
  readonly m: number;
  readonly n?: number;
  readonly s?: number;
  /** The full key, only for keys longer than the table-key prefix. */
  readonly k?: string;
  readonly d?: 1;
}

export function encodeRecord(rec: KeyRecord, longKey: string | undefined): StoredVersion {
  assert(rec.modRev >= rec.createRev && rec.createRev > 0, `record revs: create ${rec.createRev} mod ${rec.modRev}`);
  assert(rec.version >= 1, `record version ${rec.version}`);
  const out: { v: Uint8Array; c: number; m: number; n: number; s: number; k?: string } = {
    v: rec.value,
    c: rec.createRev,
    m: rec.modRev,
    n: rec.version,
    s: rec.session,
  };
  if (longKey !== undefined) out.k = longKey;
  return out;
}

export function encodeTombstone(rev: Rev, longKey: string | undefined): StoredVersion {
  return longKey !== undefined ? { m: rev, d: 1, k: longKey } : { m: rev, d: 1 };
}

export function isTombstone(v: StoredVersion): boolean {
  return v.d === 1;
}

export function decodeRecord(v: unknown): KeyRecord {
  const s = v as StoredVersion;
  assert(s !== null && typeof s === 'object' && s.d !== 1, 'stored record is a live version');
  assert(s.v instanceof Uint8Array, 'stored record has a byte value');
  assert(typeof s.c === 'number' && typeof s.m === 'number' && typeof s.n === 'number' && typeof s.s === 'number', 'stored record has numeric metadata');
  // Both engines return the same type: a Buffer view of the stored bytes.
  const value = Buffer.isBuffer(s.v) ? s.v : Buffer.from(s.v.buffer, s.v.byteOffset, s.v.byteLength);
  return { value, createRev: asRev(s.c), modRev: asRev(s.m), version: s.n, session: asSessionId(s.s) };
}

export function asStoredVersion(v: unknown): StoredVersion {
  const s = v as StoredVersion;
  assert(s !== null && typeof s === 'object' && typeof s.m === 'number', 'stored version has a modRev');
  return s;
}

/** The record a put effect leaves at `rev` (bricks, the holder's working state and txns agree). */
export function putRecord(fx: Extract<Effect, { t: 'put' }>, rev: Rev): KeyRecord {
  return { value: fx.value, createRev: fx.createRev, modRev: rev, version: fx.version, session: fx.session };
}
