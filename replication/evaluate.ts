// The holder's evaluation (DESIGN §4.4): a client write is decided against the working state and
// becomes resolved effects at one rev — branch taken, final keys and values, createRev and
// version — so bricks apply it without re-evaluating. Pure: no I/O, no clock.
import { assert, unreachable } from '../src/common/assert.js';
import { coordError, type CoordError } from '../src/common/errors.js';
import { asRev, NO_SESSION, type Rev } from '../src/common/ids.js';
import { RESERVED_PREFIX } from '../src/common/keys.js';
import { putRecord } from '../store/records.js';
import type { Effect, KeyRecord, KeyValue } from '../store/types.js';
import type {
  CompactArgs, Compare, DeleteArgs, PutArgs, TxnArgs, TxnOp, TxnOpResult, WriteOp, WriteResult,
} from './ops.js';
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

/** Evaluates one write against `view`, as if written at `rev` (evaluation rev = rev − 1). */
export function evaluate(view: StateView, op: WriteOp, rev: Rev, bounds: { readonly commitRev: Rev; readonly compactRev: Rev }): Evaluation {
  const evalRev = asRev(rev - 1);
  switch (op.type) {
    case 'put': {
      const { effects, prevKv } = evalPut(view, op.args, rev);
      const result = { rev, key: op.args.key, ...(op.args.prevKv ? { prevKv } : {}) };
      return { effects, outcome: { ok: true, result: { type: 'put', result } } };
    }
    case 'delete': {
      const { effects, prevKvs } = evalDelete(view, op.args);
      const result = { rev: effects.length > 0 ? rev : evalRev, deleted: effects.length, ...(op.args.prevKv ? { prevKvs } : {}) };
      return { effects, outcome: { ok: true, result: { type: 'delete', result } } };
    }
    case 'txn':
      return evalTxn(view, op.args, rev);
    case 'compact':
      return evalCompact(op.args, rev, bounds);
    default:
      return unreachable(op, 'write op');
  }
}

function evalPut(view: StateView, a: PutArgs, rev: Rev): { effects: Effect[]; prevKv: KeyValue | undefined } {
  const old = view.get(a.key);
  const fx: Effect = {
    t: 'put',
    key: a.key,
    value: a.value,
    createRev: old ? old.createRev : rev,
    version: old ? old.version + 1 : 1,
    session: NO_SESSION,
  };
  return { effects: [fx], prevKv: old ? toKeyValue(a.key, old) : undefined };
}

function evalDelete(view: StateView, a: DeleteArgs): { effects: Effect[]; prevKvs: KeyValue[] } {
  const effects: Effect[] = [];
  const prevKvs: KeyValue[] = [];
  for (const { key, record } of view.scan(selectorRange(a))) {
    if (key.startsWith(RESERVED_PREFIX)) continue; // the volume's own records: read-only to clients
    effects.push({ t: 'del', key });
    if (a.prevKv) prevKvs.push(toKeyValue(key, record));
  }
  return { effects, prevKvs };
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
        results.push({ op: 'put', key: o.key, ...(o.prevKv ? { prevKv: r.prevKv } : {}) });
        break;
      }
      case 'delete': {
        const r = evalDelete(local, o);
        applyLocal(local, r.effects, rev);
        effects.push(...r.effects);
        results.push({ op: 'delete', deleted: r.effects.length, ...(o.prevKv ? { prevKvs: r.prevKvs } : {}) });
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
  return { effects, outcome: { ok: true, result: { type: 'txn', result: { rev: txnRev, succeeded, results } } } };
}

function applyLocal(local: OverlayView, effects: readonly Effect[], rev: Rev): void {
  for (const fx of effects) {
    if (fx.t === 'put') local.set(fx.key, { rev, record: putRecord(fx, rev) });
    else if (fx.t === 'del') local.set(fx.key, { rev, record: undefined });
  }
}

/** compact(rev) is itself an entry; refused above commitRev and at or below the compactRev. */
function evalCompact(a: CompactArgs, rev: Rev, b: { readonly commitRev: Rev; readonly compactRev: Rev }): Evaluation {
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
