// Exactly-once writes (DESIGN §3) at the holder: a retried (clientId, seq) is answered from the
// stored result and applied once, across a failover too; stale and runaway seqs are refused; the
// table goes with its session.
import { describe, expect, it } from 'vitest';
import { dedupeWindowMax } from '../../src/common/limits.js';
import { dedupeKey, dedupePrefix } from '../../replication/sessions.js';
import { prefixEnd } from '../../src/common/keys.js';
import type { Origin, WriteOp } from '../../replication/ops.js';
import type { Outcome } from '../../replication/holder.js';
import type { SessionId } from '../../src/common/ids.js';
import { nonce, Rig } from './fixtures/holder-rig.js';

const put = (key: string, value: string): WriteOp => ({ type: 'put', args: { key, value: new TextEncoder().encode(value), prevKv: true } });
const from = (clientId: SessionId, seq: number, ackedSeq = 0): Origin => ({ clientId, seq, ackedSeq });

function errorCode(o: Outcome): string | undefined {
  return o.ok ? undefined : o.error.code;
}

function recordsOf(r: Rig, id: SessionId): string[] {
  const p = dedupePrefix(id);
  return [...r.state.scan({ start: p, end: prefixEnd(p) })].map((s) => s.key);
}

describe('exactly-once writes', () => {
  it('answers a retry from the stored result, marked duplicate, without a second entry', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(10_000, nonce(1));
    const first = r.write(put('/k', 'v1'), from(c, 1));
    expect(first.ok && first.result.type === 'put' && first.result.result.duplicate).toBeFalsy();
    const entries = r.log.length;
    const again = r.write(put('/k', 'v1'), from(c, 1));
    expect(again.ok).toBe(true);
    if (!again.ok || again.result.type !== 'put' || !first.ok || first.result.type !== 'put') throw new Error('put results');
    expect(again.result.result).toEqual({ rev: first.result.result.rev, key: '/k', duplicate: true });
    expect(r.log.length).toBe(entries);
    expect(r.state.get('/k')?.version).toBe(1);
  });

  it('keeps a txn retry to the branch it took, even when the compare would now go the other way', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(10_000, nonce(2));
    const txn: WriteOp = {
      type: 'txn',
      args: { compare: [{ key: '/n', target: 'exists', op: '=', value: false }], success: [{ op: 'put', key: '/n', value: new Uint8Array([1]) }], failure: [{ op: 'get', key: '/n' }] },
    };
    const first = r.write(txn, from(c, 1));
    const again = r.write(txn, from(c, 1));
    expect(first.ok && first.result.type === 'txn' && first.result.result.succeeded).toBe(true);
    expect(again.ok && again.result.type === 'txn' && again.result.result).toMatchObject({ succeeded: true, duplicate: true });
    // Without its origin the same txn is a new write, and now fails its compare.
    const fresh = r.write(txn);
    expect(fresh.ok && fresh.result.type === 'txn' && fresh.result.result.succeeded).toBe(false);
  });

  it('a retry that arrives while the original is queued waits for it and answers duplicate', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(10_000, nonce(3));
    const a = r.enqueue(put('/q', 'x'), from(c, 1));
    const b = r.enqueue(put('/q', 'x'), from(c, 1));
    r.write({ type: 'keepalive', args: { id: c } });
    expect(r.reply(a)?.ok).toBe(true);
    const rb = r.reply(b);
    expect(rb?.ok && rb.result.type === 'put' && rb.result.result.duplicate).toBe(true);
    expect(r.state.get('/q')?.version).toBe(1);
  });

  it('keeps one slot per seq modulo the window: a write overwrites an acked result, and seqs at or below ackedSeq are stale', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(10_000, nonce(4));
    for (let seq = 1; seq <= 3; seq++) expect(r.write(put(`/s${seq}`, 'v'), from(c, seq, 0)).ok).toBe(true);
    expect(recordsOf(r, c)).toEqual([dedupeKey(c, 1), dedupeKey(c, 2), dedupeKey(c, 3)]);
    // seq W + 1 takes seq 1's slot, which its ackedSeq 1 says the client holds.
    expect(r.write(put('/sw', 'v'), from(c, dedupeWindowMax + 1, 1)).ok).toBe(true);
    expect(recordsOf(r, c)).toHaveLength(3);
    expect(errorCode(r.write(put('/s1', 'v'), from(c, 1, 0)))).toBe('stale-retry');
    // seq 2 was not acked: its retry is still answered from its slot.
    const two = r.write(put('/s2', 'v'), from(c, 2, 1));
    expect(two.ok && two.result.type === 'put' && two.result.result.duplicate).toBe(true);
    const w1 = r.write(put('/sw', 'v'), from(c, dedupeWindowMax + 1, 1));
    expect(w1.ok && w1.result.type === 'put' && w1.result.result.duplicate).toBe(true);
    expect(r.state.get('/sw')?.version).toBe(1);
    // A write past the window would take the slot of a result the client has not confirmed.
    expect(errorCode(r.write(put('/sx', 'v'), from(c, dedupeWindowMax + 3, 1)))).toBe('too-many-in-flight');
  });

  it('a new holder learns ackedSeq and the results from the log', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(10_000, nonce(5));
    r.write(put('/f1', 'a'), from(c, 1));
    r.write(put('/f2', 'b'), from(c, 2, 1));
    r.startHolder();
    expect(errorCode(r.write(put('/f1', 'a'), from(c, 1)))).toBe('stale-retry');
    const two = r.write(put('/f2', 'b'), from(c, 2, 1));
    expect(two.ok && two.result.type === 'put' && two.result.result.duplicate).toBe(true);
    expect(r.state.get('/f2')?.version).toBe(1);
  });

  it('refuses a client past its window, and writes of a client whose session ended', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(10_000, nonce(6));
    expect(errorCode(r.write(put('/w', 'v'), from(c, dedupeWindowMax + 1, 0)))).toBe('too-many-in-flight');
    expect(r.write(put('/w', 'v'), from(c, dedupeWindowMax, 0)).ok).toBe(true);
    expect(r.write({ type: 'session-close', args: { id: c } }, from(c, dedupeWindowMax + 1, dedupeWindowMax)).ok).toBe(true);
    expect(recordsOf(r, c)).toEqual([]);
    const after = r.write(put('/w', 'v2'), from(c, dedupeWindowMax + 2, dedupeWindowMax + 1));
    expect(errorCode(after)).toBe('session-expired');
    expect(!after.ok && after.error.details).toMatchObject({ clientId: c });
    // The retried close finds the session gone: session-expired, which for a close means it succeeded.
    expect(errorCode(r.write({ type: 'session-close', args: { id: c } }, from(c, dedupeWindowMax + 1, dedupeWindowMax)))).toBe('session-expired');
  });

  it('an expired client session takes its table with it', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(2_000, nonce(7));
    r.write(put('/e', 'v'), from(c, 1));
    expect(recordsOf(r, c)).toHaveLength(1);
    r.advance(2_100);
    expect(recordsOf(r, c)).toEqual([]);
    expect(errorCode(r.write(put('/e', 'v'), from(c, 1)))).toBe('session-expired');
  });

  it('a write that changed nothing is not recorded: its retry is evaluated again', () => {
    const r = new Rig();
    r.startHolder();
    const c = r.open(10_000, nonce(8));
    const del = r.write({ type: 'delete', args: { key: '/none' } }, from(c, 1));
    expect(del.ok && del.result.type === 'delete' && del.result.result.deleted).toBe(0);
    expect(recordsOf(r, c)).toEqual([]);
  });
});
