// Sessions in the replicated state (DESIGN §5). A session is a record under the reserved prefix,
// so it is replicated, snapshotted and healed like any key; the keys it owns are indexed under
// the reserved prefix too, so an expiry finds them with one range scan of the working state.
//
//   /_coordvol/sessions/<id>          the session record: ttl, nonce, owner, active|idle
//   /_coordvol/owned/<id><key>        one per ephemeral key (empty value)
//   /_coordvol/nonces/<nonce>         → id, so a retried sessionOpen finds its session
//   /_coordvol/epochs/<rev>           → the sclock of the epoch-start entry at rev
//   /_coordvol/seq                    → the volume-wide counter of sequential puts
//   /_coordvol/d/<id>/<slot>          → a stored write result of client session <id> (dedupe.ts)
//
// Ids and revs are zero-padded to 20 digits so their keys sort numerically.
import { pack, unpack } from 'msgpackr';
import { assert } from '../src/common/assert.js';
import { asSessionId, type Rev, type SessionId } from '../src/common/ids.js';
import { prefixEnd, RESERVED_PREFIX } from '../src/common/keys.js';
import type { Effect, KeyRecord } from '../store/types.js';
import type { StateView } from './state-view.js';

export const SESSIONS_PREFIX = `${RESERVED_PREFIX}sessions/`;
export const OWNED_PREFIX = `${RESERVED_PREFIX}owned/`;
export const NONCES_PREFIX = `${RESERVED_PREFIX}nonces/`;
export const EPOCHS_PREFIX = `${RESERVED_PREFIX}epochs/`;
export const DEDUPE_PREFIX = `${RESERVED_PREFIX}d/`;
export const SEQ_KEY = `${RESERVED_PREFIX}seq`;
/** Digits of a sequential key's counter (fits any 64-bit count). */
export const SEQUENCE_DIGITS = 20;

export const pad20 = (n: number): string => String(n).padStart(20, '0');
export const sessionKey = (id: SessionId): string => SESSIONS_PREFIX + pad20(id);
export const ownedPrefix = (id: SessionId): string => `${OWNED_PREFIX}${pad20(id)}`;
export const ownedKey = (id: SessionId, key: string): string => ownedPrefix(id) + key;
export const nonceKey = (nonce: string): string => NONCES_PREFIX + nonce;
export const epochKey = (rev: Rev): string => EPOCHS_PREFIX + pad20(rev);
// Dedupe slots are written with every exactly-once write: short keys (base 36, no padding; only
// ever scanned per client, never in numeric order) keep the store's ordered maps quick on them.
export const dedupePrefix = (id: SessionId): string => `${DEDUPE_PREFIX}${id.toString(36)}/`;
export const dedupeKey = (id: SessionId, slot: number): string => dedupePrefix(id) + slot.toString(36);

/** What the session record holds. `idleUntil` is on the session clock (sclock), set when idle. */
export interface SessionRecord {
  readonly ttlMs: number;
  readonly nonce: string;
  readonly owner: string;
  /** A client library's own session (SessionOpenArgs.client). */
  readonly client?: true;
  readonly mode: 'active' | 'idle';
  readonly idleUntil?: number;
}

export function encodeSession(r: SessionRecord): Uint8Array {
  return pack(r);
}

export function decodeSession(value: Uint8Array): SessionRecord {
  const r = unpack(value) as SessionRecord;
  assert(typeof r === 'object' && r !== null && typeof r.ttlMs === 'number', 'a session record decodes');
  return r;
}

export function encodeNumber(n: number): Uint8Array {
  return pack(n);
}
export function decodeNumber(v: Uint8Array): number {
  const n = unpack(v) as unknown;
  assert(typeof n === 'number', 'a reserved counter decodes to a number');
  return n;
}

/**
 * The session as the log has it now. A record written active becomes idle at the first
 * epoch-start after it, with idleUntil := that entry's sclock + ttl (DESIGN §5): bricks need not
 * rewrite every record when an epoch starts, and later epoch starts leave idleUntil alone, so
 * repeated failovers never keep a dead session alive.
 */
export function effectiveSession(view: StateView, rec: KeyRecord): SessionRecord {
  const s = decodeSession(rec.value);
  if (s.mode === 'idle') return s;
  for (const e of view.scan({ start: epochKey(rec.modRev), end: prefixEnd(EPOCHS_PREFIX) })) {
    if (e.key === epochKey(rec.modRev)) continue; // an epoch-start is never the same entry as a mark
    return { ...s, mode: 'idle', idleUntil: decodeNumber(e.record.value) + s.ttlMs };
  }
  return s;
}

export function sessionIdOfKey(key: string): SessionId {
  return asSessionId(Number(key.slice(SESSIONS_PREFIX.length)));
}

/** Every session in the state, with its effective record. */
export function* scanSessions(view: StateView): Generator<{ id: SessionId; rec: SessionRecord; modRev: Rev }> {
  for (const { key, record } of view.scan({ start: SESSIONS_PREFIX, end: prefixEnd(SESSIONS_PREFIX) })) {
    yield { id: sessionIdOfKey(key), rec: effectiveSession(view, record), modRev: record.modRev };
  }
}

/** The effects that end a session: its record, nonce, dedupe table, ownership index and every key it owns. */
export function endSessionEffects(view: StateView, id: SessionId, rec: SessionRecord): Effect[] {
  const fx: Effect[] = [{ t: 'del', key: sessionKey(id) }, { t: 'del', key: nonceKey(rec.nonce) }];
  const dedupe = dedupePrefix(id);
  for (const { key } of view.scan({ start: dedupe, end: prefixEnd(dedupe) })) fx.push({ t: 'del', key });
  const prefix = ownedPrefix(id);
  for (const { key: idx } of view.scan({ start: prefix, end: prefixEnd(prefix) })) {
    fx.push({ t: 'del', key: idx });
    const key = idx.slice(prefix.length);
    const owned = view.get(key);
    // The index and the key change together, so an indexed key is owned by its session.
    assert(owned !== undefined && owned.session === id, `ephemeral key ${key} of session ${id} is present and owned by it`);
    fx.push({ t: 'del', key });
  }
  return fx;
}

/** Keys owned by a session (its ownership index entries). */
export function countOwned(view: StateView, id: SessionId): number {
  const prefix = ownedPrefix(id);
  let n = 0;
  for (const _ of view.scan({ start: prefix, end: prefixEnd(prefix) })) n++;
  return n;
}
