// The holder's evaluation (DESIGN §4.4): a client write is decided against the working state and
// becomes resolved effects at one rev — branch taken, final keys and values, createRev and
// version — so bricks apply it without re-evaluating. Pure: no I/O, no clock.
import { assert, unreachable } from '../src/common/assert.js';
import { coordError, type CoordError } from '../src/common/errors.js';
import { asRev, asSessionId, NO_SESSION, type Rev, type SessionId } from '../src/common/ids.js';
import { RESERVED_PREFIX } from '../src/common/keys.js';
import { keyBytesMax } from '../src/common/limits.js';
import { putRecord } from '../store/records.js';
import type { Effect, KeyRecord, KeyValue } from '../store/types.js';
import type {
  CompactArgs, Compare, DeleteArgs, PutArgs, SessionIdArgs, SessionMark, SessionOpenArgs, TxnArgs, TxnOp, TxnOpResult, WriteOp, WriteResult,
} from './ops.js';
import {
  decodeNumber, decodeSession, effectiveSession, encodeNumber, encodeSession, endSessionEffects, nonceKey, ownedKey,
  SEQ_KEY, SEQUENCE_DIGITS, sessionKey, type SessionRecord,
} from './sessions.js';
import { OverlayView } from './overlay.js';
import { readGet, readRange, toKeyValue } from './read.js';
import type { StateView } from './state-view.js';
import { selectorRange } from './validate.js';
import type { WorkingState } from './working-state.js';

export interface Evaluation {
  /** Effects at rev = lastRev + 1; empty when the op changes nothing (no entry, no new rev). */
  readonly effects: readonly Effect[];
  readonly outcome: { readonly ok: true; readonly result: WriteResult } | { readonly ok: false; readonly error: CoordError };
}

export interface EvalBounds {
  readonly commitRev: Rev;
  readonly compactRev: Rev;
  /** The shortest session ttl this volume takes: max(2 s, 4·leaseMs) (DESIGN §5). */
  readonly sessionTtlMinMs?: number;
}

type Failure = { readonly effects: readonly Effect[]; readonly outcome: { readonly ok: false; readonly error: CoordError } };
const fail = (error: CoordError): Failure => ({ effects: [], outcome: { ok: false, error } });

/** A user error found while evaluating: the op changes nothing and answers it. */
class EvalError extends Error {
  constructor(readonly error: CoordError) {
    super(error.message);
  }
}

/** Evaluates one write against `view`, as if written at `rev` (evaluation rev = rev − 1). */
export function evaluate(view: StateView, op: WriteOp, rev: Rev, bounds: EvalBounds): Evaluation {
  try {
    return evaluateOp(view, op, rev, bounds);
  } catch (e) {
    if (e instanceof EvalError) return fail(e.error);
    throw e;
  }
}

function evaluateOp(view: StateView, op: WriteOp, rev: Rev, bounds: EvalBounds): Evaluation {
  const evalRev = asRev(rev - 1);
  switch (op.type) {
    case 'put': {
      const { effects, prevKv, key } = evalPut(view, op.args, rev);
      const result = { rev, key, ...(op.args.prevKv ? { prevKv } : {}) };
      return { effects, outcome: { ok: true, result: { type: 'put', result } } };
    }
    case 'delete': {
      const { effects, prevKvs } = evalDelete(view, op.args, rev);
      const result = { rev: effects.length > 0 ? rev : evalRev, deleted: clientDeletes(effects), ...(op.args.prevKv ? { prevKvs } : {}) };
      return { effects, outcome: { ok: true, result: { type: 'delete', result } } };
    }
    case 'txn':
      return evalTxn(view, op.args, rev);
    case 'compact':
      return evalCompact(op.args, rev, bounds);
    case 'session-open':
      return evalSessionOpen(view, op.args, rev, bounds);
    case 'keepalive':
      return evalKeepalive(view, op.args, rev);
    case 'session-close':
    case 'session-expire':
      return evalSessionEnd(view, op.type, op.args, rev);
    case 'session-mark':
      return evalSessionMarks(view, op.args.marks, rev);
    case 'config-change':
      // The holder decides membership changes itself (holder.ts evaluateConfig): only it knows
      // which entries have committed and which learners have caught up.
      return { effects: [], outcome: { ok: false, error: coordError('internal', 'a config change is evaluated by the holder, not against the state alone') } };
    default:
      return unreachable(op, 'write op');
  }
}

/** The final key of a put: a sequential put appends the next value of the volume's counter. */
function finalKey(view: StateView, a: PutArgs, rev: Rev): { key: string; seqFx: Effect | undefined } {
  if (!a.sequential) return { key: a.key, seqFx: undefined };
  const cur = view.get(SEQ_KEY);
  const n = cur ? decodeNumber(cur.value) + 1 : 1;
  const key = a.key + String(n).padStart(SEQUENCE_DIGITS, '0');
  if (Buffer.byteLength(key) > keyBytesMax) {
    throw new EvalError(coordError('key-too-large', `the sequential key ${key.slice(0, 64)}… is over ${keyBytesMax} bytes with its ${SEQUENCE_DIGITS}-digit counter`));
  }
  return { key, seqFx: reservedPut(view, SEQ_KEY, encodeNumber(n), rev) };
}

/** A put of one of the volume's own records (never a client key) at `rev`. */
function reservedPut(view: StateView, key: string, value: Uint8Array, rev: Rev): Effect {
  const old = view.get(key);
  return { t: 'put', key, value, createRev: old ? old.createRev : rev, version: old ? old.version + 1 : 1, session: NO_SESSION };
}

/** Keeps the ownership index in step when `key` changes hands: the old owner out, the new one in. */
function ownershipEffects(key: string, oldOwner: SessionId, owner: SessionId, rev: Rev): Effect[] {
  if (oldOwner === owner) return [];
  const fx: Effect[] = [];
  if (oldOwner !== NO_SESSION) fx.push({ t: 'del', key: ownedKey(oldOwner, key) });
  if (owner !== NO_SESSION) fx.push({ t: 'put', key: ownedKey(owner, key), value: new Uint8Array(0), createRev: rev, version: 1, session: NO_SESSION });
  return fx;
}

function evalPut(view: StateView, a: PutArgs, rev: Rev): { effects: Effect[]; prevKv: KeyValue | undefined; key: string } {
  const session = a.session ?? NO_SESSION;
  if (session !== NO_SESSION && !view.get(sessionKey(session))) {
    throw new EvalError(coordError('session-not-found', `session ${session} does not exist (it expired or was closed)`, { session }));
  }
  const { key, seqFx } = finalKey(view, a, rev);
  const old = view.get(key);
  const fx: Effect = {
    t: 'put',
    key,
    value: a.value,
    createRev: old ? old.createRev : rev,
    version: old ? old.version + 1 : 1,
    session,
  };
  const effects = [fx, ...ownershipEffects(key, old?.session ?? NO_SESSION, session, rev)];
  if (seqFx) effects.push(seqFx);
  return { effects, prevKv: old ? toKeyValue(key, old) : undefined, key };
}

function evalDelete(view: StateView, a: DeleteArgs, rev: Rev): { effects: Effect[]; prevKvs: KeyValue[] } {
  const effects: Effect[] = [];
  const prevKvs: KeyValue[] = [];
  for (const { key, record } of view.scan(selectorRange(a))) {
    if (key.startsWith(RESERVED_PREFIX)) continue; // the volume's own records: read-only to clients
    effects.push({ t: 'del', key }, ...ownershipEffects(key, record.session, NO_SESSION, rev));
    if (a.prevKv) prevKvs.push(toKeyValue(key, record));
  }
  return { effects, prevKvs };
}

/** Client keys an op deleted (ownership index entries are the volume's own). */
const clientDeletes = (fx: readonly Effect[]): number => fx.filter((f) => f.t === 'del' && !f.key.startsWith(RESERVED_PREFIX)).length;

function evalSessionOpen(view: StateView, a: SessionOpenArgs, rev: Rev, b: EvalBounds): Evaluation {
  const min = Math.max(2_000, b.sessionTtlMinMs ?? 0);
  if (a.ttlMs < min) return fail(coordError('invalid-argument', `session ttl ${a.ttlMs} ms is below the minimum ${min} ms (max(2 s, 4·leaseMs))`, { minTtlMs: min }));
  const retried = view.get(nonceKey(a.nonce));
  if (retried) {
    // A retried open: answer the session it made, while that session exists.
    const id = asSessionId(decodeNumber(retried.value));
    const rec = view.get(sessionKey(id));
    if (rec) {
      // A retried open is a keepalive of the session it made (the holder takes a new deadline
      // from it): an idle session is marked active again in an entry, and the answer waits for
      // that entry to commit, as for a keepalive (DESIGN §5). Acked without it, a failover would
      // take the old idleUntil from the log and could end the session while its client holds the
      // answer (test/sim: without this, seed 12 fails session-early-end).
      const { effects, ttlMs } = keptAlive(view, id, rec, rev);
      return { effects, outcome: { ok: true, result: { type: 'session-open', result: { rev: asRev(id), id, ttlMs } } } };
    }
  }
  const id = asSessionId(rev);
  const record = encodeSession({ ttlMs: a.ttlMs, nonce: a.nonce, owner: a.owner ?? '', ...(a.client === true ? { client: true as const } : {}), mode: 'active' });
  const effects: Effect[] = [
    { t: 'put', key: sessionKey(id), value: record, createRev: rev, version: 1, session: NO_SESSION },
    { t: 'put', key: nonceKey(a.nonce), value: encodeNumber(id), createRev: rev, version: 1, session: NO_SESSION },
  ];
  return { effects, outcome: { ok: true, result: { type: 'session-open', result: { rev, id, ttlMs: a.ttlMs } } } };
}

function sessionGone(id: SessionId): CoordError {
  return coordError('session-expired', `session ${id} has ended (expired or closed)`, { session: id });
}

/**
 * A keepalive changes the log only for an idle session, which it marks active again (DESIGN §5);
 * the holder keeps the deadline in memory.
 */
function evalKeepalive(view: StateView, a: SessionIdArgs, rev: Rev): Evaluation {
  const rec = view.get(sessionKey(a.id));
  if (!rec) return fail(sessionGone(a.id));
  const { effects, ttlMs } = keptAlive(view, a.id, rec, rev);
  return { effects, outcome: { ok: true, result: { type: 'keepalive', result: { id: a.id, ttlMs } } } };
}

/** A keepalive of an existing session: none for an active one, an entry marking an idle one active. */
function keptAlive(view: StateView, id: SessionId, rec: KeyRecord, rev: Rev): { effects: Effect[]; ttlMs: number } {
  const { idleUntil: _, ...s } = effectiveSession(view, rec);
  const effects: Effect[] = [];
  if (s.mode === 'idle') effects.push(reservedPut(view, sessionKey(id), encodeSession({ ...s, mode: 'active' }), rev));
  return { effects, ttlMs: s.ttlMs };
}

/** Close or expiry: one entry deletes the session and every key it owns. */
function evalSessionEnd(view: StateView, type: 'session-close' | 'session-expire', a: SessionIdArgs, rev: Rev): Evaluation {
  const rec = view.get(sessionKey(a.id));
  if (!rec) {
    if (type === 'session-close') return fail(sessionGone(a.id));
    return { effects: [], outcome: { ok: true, result: { type, result: { rev: asRev(rev - 1) } } } };
  }
  const effects = endSessionEffects(view, a.id, decodeSession(rec.value));
  return { effects, outcome: { ok: true, result: { type, result: { rev } } } };
}

function evalSessionMarks(view: StateView, marks: readonly SessionMark[], rev: Rev): Evaluation {
  const effects: Effect[] = [];
  for (const m of marks) {
    const rec = view.get(sessionKey(m.id));
    if (!rec) continue; // ended meanwhile
    const { idleUntil: _, ...s } = effectiveSession(view, rec);
    const next: SessionRecord = m.mode === 'idle' ? { ...s, mode: 'idle', idleUntil: m.idleUntil as number } : { ...s, mode: 'active' };
    effects.push(reservedPut(view, sessionKey(m.id), encodeSession(next), rev));
  }
  return { effects, outcome: { ok: true, result: { type: 'session-mark', result: { rev: effects.length > 0 ? rev : asRev(rev - 1) } } } };
}

function compareHolds(view: StateView, c: Compare): boolean {
  const r: KeyRecord | undefined = view.get(c.key);
  if (c.target === 'exists') return (r !== undefined) === (c.op === '=' ? c.value : !c.value);
  if (c.target === 'value') {
    // As in etcd: a value compare against a missing key is false.
    if (!r) return false;
    return cmp(Buffer.compare(Buffer.from(r.value), Buffer.from(c.value)), c.op);
  }
  const actual = r ? (c.target === 'version' ? r.version : c.target === 'createRev' ? r.createRev : r.modRev) : 0;
  return cmp(actual - c.value, c.op);
}

function cmp(d: number, op: Compare['op']): boolean {
  switch (op) {
    case '=':
      return d === 0;
    case '!=':
      return d !== 0;
    case '<':
      return d < 0;
    case '>':
      return d > 0;
  }
}

/** All-or-nothing at one rev; later ops of the branch see the branch's earlier writes. */
function evalTxn(view: StateView, a: TxnArgs, rev: Rev): Evaluation {
  // An absent list is an empty one (the wire fills them in; an in-process caller may not).
  const succeeded = (a.compare ?? []).every((c) => compareHolds(view, c));
  const ops: readonly TxnOp[] = (succeeded ? a.success : a.failure) ?? [];
  const local = new OverlayView(() => view);
  const effects: Effect[] = [];
  const results: TxnOpResult[] = [];
  for (const o of ops) {
    switch (o.op) {
      case 'put': {
        const r = evalPut(local, o, rev);
        applyLocal(local, r.effects, rev);
        effects.push(...r.effects);
        results.push({ op: 'put', key: r.key, ...(o.prevKv ? { prevKv: r.prevKv } : {}) });
        break;
      }
      case 'delete': {
        const r = evalDelete(local, o, rev);
        applyLocal(local, r.effects, rev);
        effects.push(...r.effects);
        results.push({ op: 'delete', deleted: clientDeletes(r.effects), ...(o.prevKv ? { prevKvs: r.prevKvs } : {}) });
        break;
      }
      case 'get':
        results.push({ op: 'get', kv: readGet(local, o.key) });
        break;
      case 'range': {
        const { rev: _r, ...res } = readRange(local, o, rev);
        results.push({ op: 'range', ...res });
        break;
      }
      default:
        unreachable(o, 'txn op');
    }
  }
  const txnRev = effects.length > 0 ? rev : asRev(rev - 1);
  return { effects: lastPerKey(effects), outcome: { ok: true, result: { type: 'txn', result: { rev: txnRev, succeeded, results } } } };
}

/**
 * One effect per key in an entry (a brick keeps one version of a key per rev). Client keys are
 * written once per branch already (validate.ts); the volume's own records — the sequential
 * counter, ownership index entries — may change several times in one txn, and the last change
 * is the state the entry leaves.
 */
function lastPerKey(effects: readonly Effect[]): Effect[] {
  const last = new Map<string, number>();
  effects.forEach((fx, i) => {
    if (fx.t === 'put' || fx.t === 'del') last.set(fx.key, i);
  });
  return effects.filter((fx, i) => (fx.t !== 'put' && fx.t !== 'del') || last.get(fx.key) === i);
}

function applyLocal(local: OverlayView, effects: readonly Effect[], rev: Rev): void {
  for (const fx of effects) {
    if (fx.t === 'put') local.set(fx.key, { rev, record: putRecord(fx, rev) });
    else if (fx.t === 'del') local.set(fx.key, { rev, record: undefined });
  }
}

/** compact(rev) is itself an entry; refused above commitRev and at or below the compactRev. */
function evalCompact(a: CompactArgs, rev: Rev, b: EvalBounds): Evaluation {
  if (a.rev > b.commitRev) {
    return { effects: [], outcome: { ok: false, error: coordError('future-rev', `compact rev ${a.rev} is above commitRev ${b.commitRev}`, { commitRev: b.commitRev }) } };
  }
  if (a.rev <= b.compactRev) {
    return { effects: [], outcome: { ok: false, error: coordError('compacted', `rev ${a.rev} is already compacted (compactRev ${b.compactRev})`, { compactRev: b.compactRev }) } };
  }
  assert(a.rev < rev, 'compact rev below its own entry');
  return { effects: [{ t: 'compact', rev: a.rev }], outcome: { ok: true, result: { type: 'compact', result: { rev, compactRev: a.rev } } } };
}

export type { WorkingState };
