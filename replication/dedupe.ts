// Exactly-once writes (DESIGN §3). A write may carry its origin (clientId, seq, ackedSeq); a
// retry carries the same one. Per client session the replicated state keeps the results of its
// writes past ackedSeq, so a retry is answered from the stored result instead of applied twice:
//
//   /_coordvol/dedupe/<clientId>/<seq>   → { acked, result }  (rev, branch, final keys; no values)
//
// Records are written by the entry of the write they describe and deleted by a later write of the
// same client once its ackedSeq covers them; the entry that ends the session deletes the rest
// (sessions.ts endSessionEffects). As reserved records they are replicated, healed and
// snapshotted like any key, and compaction keeps them while they are live.
//
// Why `acked` is in every record: a seq ≤ ackedSeq gets `stale-retry`, and a new holder must know
// ackedSeq without a record of its own. Deletions use an ackedSeq at most the one stored in the
// deleting write's record, and the newest record is never deleted (ackedSeq < its own seq), so
// the largest stored `acked` is at least every ackedSeq a deletion used.
//
// The holder keeps, per client, the highest ackedSeq it has seen and the seqs it has records for
// (DedupeTable): found once by a scan of the client's records, then kept in step with the working
// state, so a write costs point lookups, not a scan of its client's window.
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


/** What a record holds: the client's ackedSeq when it was written, and the write's result without values. */
interface StoredResult {
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
  assert(typeof s === 'object' && s !== null && typeof s.acked === 'number' && typeof s.result?.type === 'string', 'a dedupe record decodes');
  return s;
}

const seqOfKey = (id: SessionId, key: string): number => Number(key.slice(dedupePrefix(id).length));

/** The holder's view of one client: the highest ackedSeq seen, and its recorded seqs in ascending order. */
interface ClientState {
  acked: number;
  readonly seqs: number[];
}

export class DedupeTable {
  private readonly clients = new Map<SessionId, ClientState>();

  /**
   * Answers a write before evaluation when its origin decides it: the client's session ended
   * (`session-expired`), a seq the client already holds the answer to (`stale-retry`), a retry
   * of a recorded write (its stored result, `duplicate`), or past the window
   * (`too-many-in-flight`). Undefined: evaluate it, then pass the result to `recorded`.
   */
  check(view: StateView, o: Origin): Evaluation | undefined {
    if (!view.get(sessionKey(o.clientId))) {
      this.clients.delete(o.clientId);
      return refuse(coordError('session-expired', `client session ${o.clientId} has ended: its writes are no longer taken`, { session: o.clientId, clientId: o.clientId }));
    }
    const st = this.state(view, o.clientId);
    if (o.seq <= st.acked) {
      return refuse(coordError('stale-retry', `write ${o.seq} of client ${o.clientId} is at or below its ackedSeq ${st.acked}: the client already holds its answer`, { clientId: o.clientId, seq: o.seq, ackedSeq: st.acked }));
    }
    const rec = view.get(dedupeKey(o.clientId, o.seq));
    if (rec) return { effects: [], outcome: { ok: true, result: asDuplicate(decodeStored(rec.value).result) } };
    const acked = Math.max(st.acked, o.ackedSeq);
    if (o.seq - acked > dedupeWindowMax) {
      return refuse(coordError('too-many-in-flight', `client ${o.clientId} has ${o.seq - acked} writes past its ackedSeq ${acked} (at most ${dedupeWindowMax})`, { clientId: o.clientId, limit: dedupeWindowMax }));
    }
    st.acked = acked;
    return undefined;
  }

  /**
   * The evaluated write `ev` at `rev`, with its record added (and the records its ackedSeq now
   * covers deleted) when it wrote something. A write that wrote nothing is not recorded: it
   * changed nothing, so a retry evaluated afresh is as if the first never arrived.
   */
  recorded(view: StateView, o: Origin, op: WriteOp, ev: Evaluation, rev: Rev): Evaluation {
    if (ev.effects.length === 0 || !ev.outcome.ok || !RECORDED.has(op.type)) return ev;
    if (op.type === 'session-close' && op.args.id === o.clientId) {
      // The write ends its own client's session, table and all: a retry gets session-expired,
      // which for a close means it succeeded (DESIGN §3). The holder forgets the table (ended).
      return ev;
    }
    const st = this.state(view, o.clientId);
    const effects: Effect[] = [...ev.effects];
    while (st.seqs.length > 0 && (st.seqs[0] as number) <= st.acked) effects.push({ t: 'del', key: dedupeKey(o.clientId, st.seqs.shift() as number) });
    const value = pack({ acked: st.acked, result: withoutValues(ev.outcome.result) } satisfies StoredResult);
    effects.push({ t: 'put', key: dedupeKey(o.clientId, o.seq), value, createRev: rev, version: 1, session: NO_SESSION });
    insertSorted(st.seqs, o.seq);
    return { effects, outcome: ev.outcome };
  }

  /** A session ended by an entry the holder made (expiry, or a close from another client). */
  ended(id: SessionId): void {
    this.clients.delete(id);
  }

  get size(): number {
    return this.clients.size;
  }

  private state(view: StateView, id: SessionId): ClientState {
    let st = this.clients.get(id);
    if (st === undefined) {
      st = { acked: 0, seqs: [] };
      const prefix = dedupePrefix(id);
      for (const { key, record } of view.scan({ start: prefix, end: prefixEnd(prefix) })) {
        st.seqs.push(seqOfKey(id, key));
        st.acked = Math.max(st.acked, decodeStored(record.value).acked);
      }
      this.clients.set(id, st);
    }
    return st;
  }
}

const refuse = (error: ReturnType<typeof coordError>): Evaluation => ({ effects: [], outcome: { ok: false, error } });

function insertSorted(a: number[], x: number): void {
  let i = a.length;
  while (i > 0 && (a[i - 1] as number) > x) i--;
  a.splice(i, 0, x);
}
