// The end-of-run checks of a simulated history (DESIGN §4 "Required checks"):
// - the history is linearizable (per key, with CAS; linearizability.ts);
// - every read equals the state at its rev replayed from the committed log (ranges and
//   multi-key txns included, not only single keys);
// - revs of completed operations respect real-time order;
// - every acknowledged write is in the committed log at its rev, and no write is applied twice;
// - a write refused unapplied, or a cas answered "not succeeded", has no value committed (a
//   resend is the same op: exactly-once, DESIGN §3; see also exactly-once-checks.ts);
// - after the quiet period the bricks have converged: one holder, equal committed logs (the
//   parts their trimmed logs hold) and equal committed states; then every watcher is streaming
//   and caught up (watch-clients.ts).
import { Buffer } from 'node:buffer';
import { asRev, type Rev } from '../../src/common/ids.js';
import { prefixEnd } from '../../src/common/keys.js';
import type { Entry } from '../../store/types.js';
import { checkLinearizable } from './linearizability.js';
import { entryText, SimViolation } from './log-checks.js';
import { SimBrick, snapshotDiff } from './sim-brick.js';
import type { SimOp, SimResult } from './simulation.js';

const dec = (b: Uint8Array): string => Buffer.from(b).toString();

export function checkRun(r: SimResult): void {
  const committed = r.checks.committedPrefix();
  checkConverged(r, committed);
  r.finishWatches?.();
  const at = putsByValue(committed);
  checkWritesCommitted(r.history, at);
  checkSettledWrites(r.history, committed, at);
  checkReadsReplay(r, committed);
  checkMonotonic(r.history);
  // Serializable reads may lag real time by design: only the linearizable history is ordered.
  checkRealTime(r.history.filter((h) => h.serializable !== true));
  const lin = checkLinearizable(r.history.filter((h) => h.range === undefined && h.serializable !== true));
  if (!lin.ok) throw new SimViolation('linearizable', `key ${lin.key}: ${lin.explanation ?? ''}`);
}

/**
 * After the quiet period: a ready holder, and every member brick (the voters and learners of
 * the config committed last) at the volume's commit point, with the part of the committed log
 * its trimmed log still holds, and the committed state there — every key's whole history, the
 * compactRev and the config — equal to the committed log replayed (so a snapshot installed on
 * the way left the state exact).
 */
function checkConverged(r: SimResult, committed: readonly Entry[]): void {
  if (r.stats.holderAtEnd === undefined || r.stats.holderAtEnd < 0) throw new SimViolation('liveness', 'no ready holder after the quiet period');
  const members = r.bricks.filter((b) => r.members.includes(b.brickId));
  if (members.length !== r.members.length) throw new SimViolation('liveness', `members ${r.members.join(',')} of the committed config, bricks ${r.bricks.map((b) => b.brickId).join(',')}`);
  const top = Math.max(...members.map((b) => b.commitRev));
  if (committed.length < r.checks.maxCommitted) throw new SimViolation('committed-lost', `the committed log has a hole below ${r.checks.maxCommitted}`);
  const want = r.checks.committedState(asRev(top));
  for (const b of members) {
    if (b.commitRev !== top) throw new SimViolation('liveness', `brick ${b.brickId} is at commitRev ${b.commitRev}, the volume at ${top}, after the quiet period`);
    for (let rev = b.firstRev; rev <= top; rev++) {
      const mine = b.entry(asRev(rev));
      const c = committed[rev - 1];
      if (!mine || !c || (mine !== c && entryText(mine) !== entryText(c))) throw new SimViolation('prefix', `brick ${b.brickId} differs from the committed log at rev ${rev}`);
    }
    const diff = snapshotDiff(b.exportSnapshot(asRev(top)), want);
    if (diff !== undefined) throw new SimViolation('converged-state', `brick ${b.brickId}'s state at ${top} is not the committed log replayed: ${diff}`);
  }
}

/** Puts of each value, where they landed in the committed log. */
function putsByValue(committed: readonly Entry[]): Map<string, Rev[]> {
  const at = new Map<string, Rev[]>();
  for (const e of committed) {
    for (const fx of e.effects) {
      if (fx.t !== 'put' || fx.key.startsWith('/_coordvol/')) continue;
      const v = `${fx.key}=${dec(fx.value)}`;
      const list = at.get(v) ?? [];
      list.push(e.rev);
      at.set(v, list);
    }
  }
  return at;
}

/** Every acked put is in the committed log at its rev; no value is written twice (values are unique). */
function checkWritesCommitted(history: readonly SimOp[], at: ReadonlyMap<string, Rev[]>): void {
  for (const [v, revs] of at) if (revs.length > 1) throw new SimViolation('applied-twice', `${v} was written at revs ${revs.join(', ')}`);
  for (const h of history) {
    if (h.outcome.type !== 'ok' || h.rev === undefined) continue;
    const put = h.op.f === 'put' ? `${h.op.key}=${h.op.value}` : h.op.f === 'cas' && h.outcome.succeeded === true ? `${h.op.key}=${h.op.value}` : undefined;
    if (put === undefined) continue;
    const revs = at.get(put);
    if (!revs || revs[0] !== h.rev) throw new SimViolation('acked-lost', `op ${h.id} (${put}) was acked at rev ${h.rev} but the committed log has it at ${revs?.join(', ') ?? 'no rev'}`);
  }
}

/**
 * Writes the history records as not having taken effect left nothing: a write refused before it
 * was applied (every copy of it refused: `fail`) and a cas answered "not succeeded" have none of
 * their values in the committed log, and an acknowledged delete that deleted is a delete of its
 * key in the entry at its rev (deletes carry no value to look for otherwise).
 */
function checkSettledWrites(history: readonly SimOp[], committed: readonly Entry[], at: ReadonlyMap<string, Rev[]>): void {
  for (const h of history) {
    if (h.op.f === 'delete') {
      if (h.outcome.type !== 'ok' || h.wrote !== true || h.rev === undefined) continue;
      const key = h.op.key;
      const e = committed[h.rev - 1];
      if (!e?.effects.some((fx) => fx.t === 'del' && fx.key === key)) throw new SimViolation('acked-lost', `op ${h.id} (delete ${key}) was acked at rev ${h.rev}${h.duplicate === true ? ' (a duplicate)' : ''}, but that entry deletes no ${key}`);
      continue;
    }
    if (h.op.f !== 'put' && h.op.f !== 'cas') continue;
    const notApplied = h.outcome.type === 'fail' || (h.op.f === 'cas' && h.outcome.type === 'ok' && h.outcome.succeeded === false);
    if (!notApplied) continue;
    const revs = at.get(`${h.op.key}=${h.op.value}`);
    if (revs !== undefined) {
      throw new SimViolation('applied-unacked', `op ${h.id} (${h.op.f} ${h.op.key}=${h.op.value}) was answered ${h.outcome.type === 'fail' ? 'refused unapplied' : 'not succeeded'} after ${h.sends ?? 1} send(s), but the committed log has it at rev ${revs.join(', ')}`);
    }
  }
}

/** Every read equals the state at its rev replayed from the committed log. */
function checkReadsReplay(r: SimResult, committed: readonly Entry[]): void {
  const replay = new SimBrick('replay', r.config);
  const reads = r.history.filter((h) => h.outcome.type === 'ok' && h.wrote === false && (h.op.f === 'get' || h.range !== undefined) && h.rev !== undefined);
  reads.sort((a, b) => (a.rev as number) - (b.rev as number));
  let applied = 1;
  for (const h of reads) {
    const rev = h.rev as Rev;
    if (rev > committed.length) throw new SimViolation('read-replay', `op ${h.id} read at rev ${rev}, above the committed log's ${committed.length}`);
    while (applied < rev) {
      const e = committed[applied] as Entry;
      replay.apply({ append: [e], commitRev: e.rev });
      applied++;
    }
    const view = replay.viewAt(rev);
    if (h.range !== undefined) {
      const want: string[] = [];
      for (const { key, record } of view.scan({ start: '/k/', end: prefixEnd('/k/') })) want.push(`${key}=${dec(record.value)}`);
      if (want.join(',') !== h.range.join(',')) throw new SimViolation('read-replay', `range op ${h.id} at rev ${rev} returned [${h.range.join(',')}], the log says [${want.join(',')}]`);
    } else if (h.op.f === 'get' && h.outcome.type === 'ok') {
      const rec = view.get(h.op.key);
      const want = rec === undefined ? undefined : dec(rec.value);
      if (want !== h.outcome.value) throw new SimViolation('read-replay', `get op ${h.id} of ${h.op.key} at rev ${rev} returned ${h.outcome.value ?? 'absent'}, the log says ${want ?? 'absent'}`);
    }
  }
}

/** Serializable reads are monotonic per client: served at a rev ≥ the highest rev the client had seen. */
function checkMonotonic(history: readonly SimOp[]): void {
  for (const h of history) {
    if (h.serializable !== true || h.outcome.type !== 'ok' || h.rev === undefined) continue;
    if (h.rev < (h.minRev ?? 0)) throw new SimViolation('monotonic', `serializable get op ${h.id} of client ${h.client} was served at rev ${h.rev}, below the rev ${h.minRev} the client had seen`);
  }
}

/**
 * Real-time order: if A completed before B was invoked, B's rev ≥ A's, and > A's if B wrote.
 * One sweep: ops by invoke time against the highest rev completed before it.
 */
function checkRealTime(history: readonly SimOp[]): void {
  const done = history.filter((h) => h.outcome.type === 'ok' && h.rev !== undefined);
  const byComplete = [...done].sort((a, b) => a.completeMs - b.completeMs);
  const byInvoke = [...done].sort((a, b) => a.invokeMs - b.invokeMs);
  let k = 0;
  let maxRev = 0;
  let maxOp: SimOp | undefined;
  for (const b of byInvoke) {
    while (k < byComplete.length && (byComplete[k] as SimOp).completeMs < b.invokeMs) {
      const a = byComplete[k] as SimOp;
      if ((a.rev as number) > maxRev) {
        maxRev = a.rev as number;
        maxOp = a;
      }
      k++;
    }
    const rev = b.rev as number;
    if (rev < maxRev || (b.wrote === true && rev === maxRev)) {
      throw new SimViolation('real-time', `op ${b.id} (invoked ${b.invokeMs.toFixed(1)}) has rev ${rev}, below op ${maxOp?.id} (rev ${maxRev}) that completed before it`);
    }
  }
}
