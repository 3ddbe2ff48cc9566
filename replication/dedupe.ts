// Exactly-once writes (DESIGN §3). A write may carry its origin (clientId, seq, ackedSeq); a
// retry carries the same one. Per client session the replicated state keeps the results of its
// writes past ackedSeq, so a retry is answered from the stored result instead of applied twice.
// They sit in a ring of dedupeWindowMax slots per client:
//
//   /_coordvol/d/<clientId>/<seq mod W>   → { seq, acked, result }  (rev, branch, final keys; no values)
//   (numbers in base 36: sessions.ts dedupeKey)
//
// A write with an origin refused past the window (seq − ackedSeq > W) never gets a slot, so the
// write of seq overwrites the slot of seq − W, which is ≤ ackedSeq: a result the client holds
// already. One put per write, no deletions; the entry that ends the session deletes its slots
// (sessions.ts endSessionEffects). As reserved records they are replicated, healed and
// snapshotted like any key, and compaction keeps them while they are live.
//
// Why `acked` is in every record: a seq ≤ ackedSeq gets `stale-retry`, and a new holder must know
// ackedSeq without the old holder's memory. A slot is overwritten only by a write whose own record
// carries an ackedSeq at or above the overwritten seq, so the largest stored `acked` covers every
// result that is gone.
//
// The holder keeps, per client, the highest ackedSeq it has seen and the highest seq with a
// record (DedupeTable): found once by a scan of the client's slots, then kept in step with the
// working state, so a new write (seq above every record) needs no lookup at all.
import { pack, unpack } from 'msgpackr';
import { assert } from '../src/common/assert.js';
import { coordError } from '../src/common/errors.js';
import { NO_SESSION, type Rev, type SessionId } from '../src/common/ids.js';
import { prefixEnd } from '../src/common/keys.js';
import { dedupeWindowMax } from '../src/common/limits.js';
import type { Effect } from '../store/types.js';
import type { Evaluation } from './evaluate.js';
import type { Origin, TxnOpResult, WriteOp, WriteResult } from './ops.js';
import { dedupeKey, dedupePrefix, sessionKey } from './sessions.js';
import type { StateView } from './state-view.js';

/** What a slot holds: the write's seq, the client's ackedSeq when it was written, and the result without values. */
interface StoredResult {
  readonly seq: number;
  readonly acked: number;
  readonly result: WriteResult;
}

/** Ops whose result a retry may need: the writes a client sends (keepalives and opens are idempotent already). */
const RECORDED: ReadonlySet<WriteOp['type']> = new Set(['put', 'delete', 'txn', 'compact', 'session-close']);

/** The result with values and prevKv taken out: what a duplicate may answer (DESIGN §3). */
function withoutValues(r: WriteResult): WriteResult {
  switch (r.type) {
    case 'put':
      return { type: 'put', result: { rev: r.result.rev, key: r.result.key } };
    case 'delete':
      return { type: 'delete', result: { rev: r.result.rev, deleted: r.result.deleted } };
    case 'txn':
      return { type: 'txn', result: { rev: r.result.rev, succeeded: r.result.succeeded, results: r.result.results.map(opWithoutValues) } };
    default:
      return r;
  }
}

function opWithoutValues(o: TxnOpResult): TxnOpResult {
  switch (o.op) {
    case 'put':
      return { op: 'put', key: o.key };
    case 'delete':
      return { op: 'delete', deleted: o.deleted };
    case 'get':
      return { op: 'get', kv: undefined };
    case 'range':
      return { op: 'range', kvs: [], count: 0, more: false };
  }
}

/** A stored result as a duplicate's answer. */
function asDuplicate(r: WriteResult): WriteResult {
  return { type: r.type, result: { ...r.result, duplicate: true } } as WriteResult;
}

function decodeStored(value: Uint8Array): StoredResult {
  const s = unpack(value) as StoredResult;
  assert(typeof s === 'object' && s !== null && typeof s.seq === 'number' && typeof s.acked === 'number' && typeof s.result?.type === 'string', 'a dedupe record decodes');
  return s;
}

/**
 * The holder's view of one client: the highest ackedSeq seen, the highest seq with a record, and
 * each slot's key metadata (createRev, version) — complete for the client, since its records are
 * loaded whole and only this holder writes them — so recording a result looks nothing up.
 */
interface ClientState {
  acked: number;
  maxSeq: number;
  readonly slots: Map<number, { readonly createRev: Rev; readonly version: number }>;
}

const slotOf = (id: SessionId, seq: number): string => dedupeKey(id, seq % dedupeWindowMax);

export class DedupeTable {
  private readonly clients = new Map<SessionId, ClientState>();

  /**
   * Answers a write before evaluation when its origin decides it: the client's session ended
   * (`session-expired`), a seq the client already holds the answer to (`stale-retry`), a retry
   * of a recorded write (its stored result, `duplicate`), or past the window
   * (`too-many-in-flight`). Undefined: evaluate it, then pass the result to `recorded`.
   */
  check(view: StateView, o: Origin): Evaluation | undefined {
    // A client the table holds has a live session: every end of a session is evaluated by this
    // holder, which then forgets the client (ended). Only a client new to the table is looked up.
    if (!this.clients.has(o.clientId) && !view.get(sessionKey(o.clientId))) {
      return refuse(coordError('session-expired', `client session ${o.clientId} has ended: its writes are no longer taken`, { session: o.clientId, clientId: o.clientId }));
    }
    const st = this.state(view, o.clientId);
    if (o.seq <= st.acked) {
      return refuse(coordError('stale-retry', `write ${o.seq} of client ${o.clientId} is at or below its ackedSeq ${st.acked}: the client already holds its answer`, { clientId: o.clientId, seq: o.seq, ackedSeq: st.acked }));
    }
    // Only a seq at or below the highest recorded one can be a retry: a new write looks nothing up.
    const rec = o.seq <= st.maxSeq ? view.get(slotOf(o.clientId, o.seq)) : undefined;
    const stored = rec === undefined ? undefined : decodeStored(rec.value);
    if (stored?.seq === o.seq) return { effects: [], outcome: { ok: true, result: asDuplicate(stored.result) } };
    const acked = Math.max(st.acked, o.ackedSeq);
    if (o.seq - acked > dedupeWindowMax) {
      return refuse(coordError('too-many-in-flight', `client ${o.clientId} has ${o.seq - acked} writes past its ackedSeq ${acked} (at most ${dedupeWindowMax})`, { clientId: o.clientId, limit: dedupeWindowMax }));
    }
    st.acked = acked;
    return undefined;
  }

  /**
   * The evaluated write `ev` at `rev`, with its record put in its slot when it wrote something.
   * A write that wrote nothing is not recorded: it changed nothing, so a retry evaluated afresh
   * is as if the first never arrived.
   */
  recorded(view: StateView, o: Origin, op: WriteOp, ev: Evaluation, rev: Rev): Evaluation {
    if (ev.effects.length === 0 || !ev.outcome.ok || !RECORDED.has(op.type)) return ev;
    if (op.type === 'session-close' && op.args.id === o.clientId) {
      // The write ends its own client's session, table and all: a retry gets session-expired,
      // which for a close means it succeeded (DESIGN §3). The holder forgets the table (ended).
      return ev;
    }
    const st = this.state(view, o.clientId);
    // check() refused seq − acked > W, so the slot's previous write (seq − W or below) is acked.
    assert(o.seq - st.acked <= dedupeWindowMax, `dedupe slot of ${o.seq} holds an acked result (acked ${st.acked})`);
    const index = o.seq % dedupeWindowMax;
    const old = st.slots.get(index);
    const value = pack({ seq: o.seq, acked: st.acked, result: withoutValues(ev.outcome.result) } satisfies StoredResult);
    const slot: Effect = { t: 'put', key: dedupeKey(o.clientId, index), value, createRev: old ? old.createRev : rev, version: old ? old.version + 1 : 1, session: NO_SESSION };
    st.slots.set(index, { createRev: slot.createRev, version: slot.version });
    st.maxSeq = Math.max(st.maxSeq, o.seq);
    return { effects: [...ev.effects, slot], outcome: ev.outcome };
  }

  /** A session ended by an entry the holder made (expiry, or a close from another client). */
  ended(id: SessionId): void {
    this.clients.delete(id);
  }

  private state(view: StateView, id: SessionId): ClientState {
    let st = this.clients.get(id);
    if (st === undefined) {
      st = { acked: 0, maxSeq: 0, slots: new Map() };
      const prefix = dedupePrefix(id);
      for (const { record } of view.scan({ start: prefix, end: prefixEnd(prefix) })) {
        const s = decodeStored(record.value);
        st.acked = Math.max(st.acked, s.acked);
        st.maxSeq = Math.max(st.maxSeq, s.seq);
        st.slots.set(s.seq % dedupeWindowMax, { createRev: record.createRev, version: record.version });
      }
      this.clients.set(id, st);
    }
    return st;
  }
}

const refuse = (error: ReturnType<typeof coordError>): Evaluation => ({ effects: [], outcome: { ok: false, error } });
