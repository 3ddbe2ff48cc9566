// The holder's quorum rules in isolation (replication/holder.ts, DESIGN §4.5–4.6), driven by
// hand: commit needs a quorum and an entry of the holder's epoch; a voter busy when the commit
// point moves is told as soon as it answers; a holder no quorum answers for two leases steps down.
import { describe, expect, it } from 'vitest';
import { asEpoch, asRev, NO_SESSION } from '../../src/common/ids.js';
import { Holder, type HolderOutput } from '../../replication/holder.js';
import type { AppendMessage } from '../../replication/messages.js';
import type { StateView } from '../../replication/state-view.js';

const empty: StateView = { get: () => undefined, scan: () => [] };
const LEASE = 500;

function holder(): Holder {
  return new Holder({
    epoch: asEpoch(2),
    config: { volumeName: 'v', bricks: ['a', 'b', 'c'], quorumCount: 2 },
    local: 'a',
    last: { epoch: asEpoch(0), rev: asRev(1) },
    commitRev: asRev(1),
    compactRev: asRev(0),
    base: () => empty,
    sclock: 0,
    sessionTtlMinMs: 2_000,
    leaseMs: LEASE,
    // The local brick's log: the config entry (0, 1), then whatever the holder appends.
    entryAt: (rev) => (rev === 1 ? { epoch: asEpoch(0), rev: asRev(1), effects: [{ t: 'config', config: { volumeName: 'v', bricks: ['a', 'b', 'c'], quorumCount: 2 } }] } : undefined),
  });
}

const appends = (out: readonly HolderOutput[], to?: string): AppendMessage[] =>
  out.flatMap((o) => (o.kind === 'append' && (to === undefined || o.to === to) ? [o.msg] : []));
const last = (m: AppendMessage): number => m.prevRev + m.entries.length;
const ok = (m: AppendMessage) => ({ ok: true as const, lastRev: asRev(last(m)), commitRev: asRev(Math.min(m.commitRev, last(m))) });

describe('holder quorum', () => {
  it('commits its epoch-start entry only once a quorum holds it, and then replies', () => {
    const h = holder();
    const start = h.start(0);
    const [toA, toB] = [appends(start, 'a')[0], appends(start, 'b')[0]];
    expect(toA?.entries[0]?.epoch).toBe(2);
    h.onAppendReply('a', ok(toA as AppendMessage), 0, 1, 1);
    expect(h.commitRev).toBe(1); // the local brick alone is no quorum
    const out = h.onAppendReply('b', ok(toB as AppendMessage), 0, 2, 1);
    expect(h.commitRev).toBe(2);
    expect(out.some((o) => o.kind === 'ready')).toBe(true);
  });

  it('tells a voter that was busy when the commit point moved as soon as it answers', () => {
    const h = holder();
    const start = h.start(0);
    h.onAppendReply('a', ok(appends(start, 'a')[0] as AppendMessage), 0, 1, 1);
    h.onAppendReply('b', ok(appends(start, 'b')[0] as AppendMessage), 0, 2, 1);
    expect(h.commitRev).toBe(2);
    // c answers after the commit: its message carried commitRev 1, so it gets a heartbeat with 2.
    const out = h.onAppendReply('c', ok(appends(start, 'c')[0] as AppendMessage), 0, 3, 1);
    const hb = appends(out, 'c');
    expect(hb).toHaveLength(1);
    expect(hb[0]?.entries).toHaveLength(0);
    expect(hb[0]?.commitRev).toBe(2);
  });

  it('steps down when no quorum has answered for two leases (check quorum), not before', () => {
    const h = holder();
    const start = h.start(0);
    h.onAppendReply('a', ok(appends(start, 'a')[0] as AppendMessage), 0, 1, 1);
    h.onAppendReply('b', ok(appends(start, 'b')[0] as AppendMessage), 0, 2, 1);
    // Only the local brick answers from now on.
    let t = 0;
    for (; t <= 2 * LEASE; t += 50) {
      const out = h.tick(t);
      for (const m of appends(out, 'a')) h.onAppendReply('a', ok(m), t, t, m.entries.length);
      expect(out.some((o) => o.kind === 'stepped-down')).toBe(false);
    }
    const out = h.tick(t + 50);
    expect(out.some((o) => o.kind === 'stepped-down' && o.reason.code === 'no-quorum')).toBe(true);
    expect(h.isDown).toBe(true);
  });

  it('a write evaluated after the step-down is refused, never applied', () => {
    const h = holder();
    h.start(0);
    h.stepDown({ code: 'no-quorum', message: 'test' } as never);
    const out = h.propose(1, { type: 'put', args: { key: '/k', value: new Uint8Array([1]), session: NO_SESSION } }, 10);
    expect(out).toEqual([{ kind: 'reply', id: 1, outcome: { ok: false, error: expect.objectContaining({ code: 'no-quorum' }) } }]);
  });
});
