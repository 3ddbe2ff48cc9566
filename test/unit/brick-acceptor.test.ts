// The brick acceptor (replication/brick.ts) on the simulator's SimBrick: every rule of DESIGN
// §4.2 / §4.5 / §4.3 (fetch) it implements, and each deliberate bug flag the simulator's bite
// tests rely on.
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/common/assert.js';
import { asEpoch, asRev, asSessionId, NO_SESSION, type Epoch, type Rev } from '../../src/common/ids.js';
import { BrickAcceptor, type BrickBugs, type BrickLog, type Decision } from '../../replication/brick.js';
import type { AppendArgs, AppendResult, FetchResult, LockResult } from '../../replication/messages.js';
import { encodeNumber, epochKey } from '../../replication/sessions.js';
import type { Effect, Entry, VolumeConfig } from '../../store/types.js';
import { SimBrick } from '../sim/sim-brick.js';

const LEASE_MS = 100;
const config: VolumeConfig = { volumeName: 'v', bricks: ['a:/b', 'b:/b', 'c:/b'], quorumCount: 2 };

const ent = (epoch: number, rev: number, effects: readonly Effect[] = [], sclock?: number): Entry =>
  sclock === undefined ? { epoch: asEpoch(epoch), rev: asRev(rev), effects } : { epoch: asEpoch(epoch), rev: asRev(rev), effects, sclock };

const msg = (epoch: number, prev: [number, number], entries: readonly Entry[], commitRev: number, sender = 'h1'): AppendArgs => ({
  epoch: asEpoch(epoch),
  prevEpoch: asEpoch(prev[0]),
  prevRev: asRev(prev[1]),
  entries,
  commitRev: asRev(commitRev),
  sender,
});

const put = (key: string, value: number, createRev: number, version = 1): Effect => ({
  t: 'put',
  key,
  value: new Uint8Array([value]),
  createRev: asRev(createRev),
  version,
  session: NO_SESSION,
});

/** A brick at time 0 and its acceptor; `step` carries a decision out (write, then reply). */
function setup(bugs?: BrickBugs): { b: SimBrick; acc: BrickAcceptor; step: <R>(d: Decision<R>) => R } {
  const b = new SimBrick('brick-1', config);
  const acc = new BrickAcceptor(b, { leaseMs: LEASE_MS, nowMs: 0, bugs });
  const step = <R>(d: Decision<R>): R => {
    if (d.write) b.apply(d.write);
    return d.reply;
  };
  return { b, acc, step };
}

/** A brick promised to `epoch` (granted at t = LEASE_MS, after the start lease) holding `entries` after (0, 1). */
function withLog(epoch: number, entries: readonly Entry[], commitRev = 1, bugs?: BrickBugs): ReturnType<typeof setup> {
  const t = setup(bugs);
  t.b.apply({ promise: { epoch: asEpoch(epoch), grantee: 'h1' }, append: entries, commitRev: asRev(commitRev) });
  return t;
}

const granted = (r: LockResult): boolean => r.granted;
const epochs = (b: SimBrick): number[] => b.log().map((e) => e.epoch);

describe('lock and probe (DESIGN §4.2)', () => {
  it('starts with an unknown lease until now + leaseMs, and refuses every candidate during it', () => {
    const { acc, step } = setup();
    expect(acc.lease).toEqual({ epoch: 0, holder: undefined, deadlineMs: LEASE_MS });
    expect(acc.leaseLapsed(LEASE_MS - 1)).toBe(false);
    expect(acc.leaseLapsed(LEASE_MS)).toBe(true);
    expect(step(acc.lock({ epoch: asEpoch(1), candidate: 'm1' }, LEASE_MS - 1))).toEqual({ granted: false, promisedEpoch: 0, reason: 'lease' });
  });

  it('grants e > promisedEpoch once the lease lapsed: the write is the promise, the reply carries the log', () => {
    const { b, acc } = setup();
    const d = acc.lock({ epoch: asEpoch(1), candidate: 'm1' }, LEASE_MS);
    expect(d.write).toEqual({ promise: { epoch: 1, grantee: 'm1' } });
    expect(d.reply).toEqual({
      granted: true,
      brickId: 'brick-1',
      last: { epoch: 0, rev: 1 },
      commitRev: 1,
      compactRev: 0,
      config,
      lastSclock: 0,
      quietMs: LEASE_MS,
      leaseMs: LEASE_MS,
    });
    // Nothing durable until the caller applies the write.
    expect(b.promisedEpoch).toBe(0);
    b.apply(d.write ?? {});
    expect(b.promisedEpoch).toBe(1);
    expect(b.grantee).toBe('m1');
  });

  it('refuses e = promisedEpoch even from the grantee, and any lower epoch', () => {
    const { acc, step } = setup();
    expect(granted(step(acc.lock({ epoch: asEpoch(2), candidate: 'm1' }, LEASE_MS)))).toBe(true);
    expect(step(acc.lock({ epoch: asEpoch(2), candidate: 'm1' }, LEASE_MS + 1))).toEqual({ granted: false, promisedEpoch: 2, reason: 'epoch' });
    expect(step(acc.lock({ epoch: asEpoch(1), candidate: 'm2' }, LEASE_MS + 1))).toEqual({ granted: false, promisedEpoch: 2, reason: 'epoch' });
  });

  it('a grant clears the lease and creates none: the next higher epoch is granted at once', () => {
    const { acc, step } = setup();
    expect(granted(step(acc.lock({ epoch: asEpoch(1), candidate: 'm1' }, LEASE_MS)))).toBe(true);
    expect(acc.lease).toBeUndefined();
    expect(acc.leaseLapsed(LEASE_MS)).toBe(true);
    expect(granted(step(acc.lock({ epoch: asEpoch(2), candidate: 'm2' }, LEASE_MS)))).toBe(true);
  });

  it('while a lease is live: refuses other candidates, grants the lease holder (renewal), and grants all once it lapses', () => {
    const { acc, step } = setup();
    step(acc.lock({ epoch: asEpoch(1), candidate: 'h1' }, 100));
    expect(step(acc.append(msg(1, [0, 1], [], 1, 'h1'), 200))).toEqual({ ok: true, lastRev: 1, commitRev: 1 });
    expect(acc.lease).toEqual({ epoch: 1, holder: 'h1', deadlineMs: 300 });
    expect(step(acc.lock({ epoch: asEpoch(2), candidate: 'm2' }, 299))).toEqual({ granted: false, promisedEpoch: 1, reason: 'lease' });
    // Renewal: the live lease's holder may lock a higher epoch.
    const renew = setup();
    renew.step(renew.acc.lock({ epoch: asEpoch(1), candidate: 'h1' }, 100));
    renew.step(renew.acc.append(msg(1, [0, 1], [], 1, 'h1'), 200));
    expect(granted(renew.step(renew.acc.lock({ epoch: asEpoch(2), candidate: 'h1' }, 250)))).toBe(true);
    // Lapsed: anyone.
    expect(granted(step(acc.lock({ epoch: asEpoch(2), candidate: 'm2' }, 300)))).toBe(true);
  });

  it('probe answers as lock would and changes nothing', () => {
    const { b, acc, step } = setup();
    expect(acc.probe({ epoch: asEpoch(1), candidate: 'm1' }, 50)).toEqual({ wouldGrant: false, promisedEpoch: 0, last: { epoch: 0, rev: 1 } });
    expect(acc.probe({ epoch: asEpoch(1), candidate: 'm1' }, LEASE_MS)).toEqual({ wouldGrant: true, promisedEpoch: 0, last: { epoch: 0, rev: 1 } });
    expect(b.writes).toBe(0);
    expect(acc.lease).toEqual({ epoch: 0, holder: undefined, deadlineMs: LEASE_MS });
    step(acc.lock({ epoch: asEpoch(1), candidate: 'h1' }, LEASE_MS));
    step(acc.append(msg(1, [0, 1], [], 1, 'h1'), 200));
    const writes = b.writes;
    expect(acc.probe({ epoch: asEpoch(2), candidate: 'm2' }, 250).wouldGrant).toBe(false);
    expect(acc.probe({ epoch: asEpoch(2), candidate: 'h1' }, 250).wouldGrant).toBe(true);
    expect(acc.probe({ epoch: asEpoch(1), candidate: 'm2' }, 1000)).toMatchObject({ wouldGrant: false, promisedEpoch: 1 });
    expect(b.writes).toBe(writes);
    expect(b.promisedEpoch).toBe(1);
    expect(acc.lease).toEqual({ epoch: 1, holder: 'h1', deadlineMs: 300 });
  });

  it('quietMs counts from the last log change (append or truncation), or from the start', () => {
    const { acc, step } = setup();
    const first = step(acc.lock({ epoch: asEpoch(1), candidate: 'h1' }, 150));
    expect(first).toMatchObject({ granted: true, quietMs: 150 });
    step(acc.append(msg(1, [0, 1], [ent(1, 2)], 1, 'h1'), 400));
    step(acc.append(msg(1, [1, 2], [], 2, 'h1'), 450)); // a heartbeat (and a commit) is not a log change
    expect(step(acc.lock({ epoch: asEpoch(2), candidate: 'm2' }, 1000))).toMatchObject({ granted: true, quietMs: 600 });
    // A truncation counts.
    step(acc.append(msg(2, [1, 2], [ent(1, 3)], 2, 'm2'), 1100));
    step(acc.lock({ epoch: asEpoch(3), candidate: 'm3' }, 2000));
    step(acc.append(msg(3, [1, 2], [ent(3, 3)], 2, 'm3'), 2500));
    expect(step(acc.lock({ epoch: asEpoch(4), candidate: 'm4' }, 3000))).toMatchObject({ granted: true, quietMs: 500, last: { epoch: 3, rev: 3 } });
  });

  it('lastSclock is the last entry\'s, else the latest epoch-start mark of the committed state', () => {
    const mark = (rev: number, sclock: number): Effect => ({ t: 'put', key: epochKey(asRev(rev)), value: encodeNumber(sclock), createRev: asRev(rev), version: 1, session: NO_SESSION });
    const { acc, step } = withLog(1, [ent(1, 2, [{ t: 'epoch-start' }, mark(2, 7000)], 7000), ent(1, 3, [], 7250)], 3);
    expect(step(acc.lock({ epoch: asEpoch(2), candidate: 'm' }, LEASE_MS))).toMatchObject({ lastSclock: 7250 });
    const noClock = withLog(1, [ent(1, 2, [{ t: 'epoch-start' }, mark(2, 5000)]), ent(1, 3)], 3);
    expect(noClock.step(noClock.acc.lock({ epoch: asEpoch(2), candidate: 'm' }, LEASE_MS))).toMatchObject({ lastSclock: 5000 });
  });
});

describe('append (DESIGN §4.5)', () => {
  it('fences an epoch below promisedEpoch: no write, no lease change', () => {
    const { acc } = withLog(2, []);
    const before = acc.lease;
    const d = acc.append(msg(1, [0, 1], [ent(1, 2)], 2), 500);
    expect(d).toEqual({ reply: { ok: false, reason: 'fenced', promisedEpoch: 2 } });
    expect(acc.lease).toBe(before);
    expect(acc.dump(500)).toMatchObject({ fencedAppends: 1 });
  });

  it('adopts a higher epoch durably, in the same write as the entries, and takes the lease', () => {
    const { b, acc, step } = withLog(1, []);
    const d = acc.append(msg(3, [0, 1], [ent(3, 2)], 1, 'h3'), 500);
    expect(d.write).toEqual({ promise: { epoch: 3, grantee: 'h3' }, append: [ent(3, 2)] });
    expect(acc.lease).toEqual({ epoch: 3, holder: 'h3', deadlineMs: 600 });
    expect(step(d)).toEqual({ ok: true, lastRev: 2, commitRev: 1 });
    expect(b.promisedEpoch).toBe(3);
    expect(b.grantee).toBe('h3');
  });

  it('a prev mismatch is refused with a hint; an adopted promise is still written and the lease still renewed', () => {
    // Log: (0,1) (1,2) (1,3) (1,4) (2,5) (2,6)
    const log = [ent(1, 2), ent(1, 3), ent(1, 4), ent(2, 5), ent(2, 6)];
    const { b, acc, step } = withLog(2, log);
    // prev (3, 5): the brick holds epoch 2 at 5, first rev of epoch 2 is 5.
    expect(acc.append(msg(3, [3, 5], [], 1, 'h3'), 500)).toEqual({
      write: { promise: { epoch: 3, grantee: 'h3' } },
      reply: { ok: false, reason: 'mismatch', hintEpoch: 2, hintFirstRev: 5, lastRev: 6 },
    });
    expect(acc.lease).toEqual({ epoch: 3, holder: 'h3', deadlineMs: 600 });
    b.apply({ promise: { epoch: asEpoch(3), grantee: 'h3' } });
    // prev (2, 4): the brick holds epoch 1 at 4, first of epoch 1 is 2. No adoption: no write.
    expect(acc.append(msg(3, [2, 4], [], 1, 'h3'), 550)).toEqual({ reply: { ok: false, reason: 'mismatch', hintEpoch: 1, hintFirstRev: 2, lastRev: 6 } });
    // prev beyond the log: no epoch to hint.
    expect(step(acc.append(msg(3, [3, 9], [], 1, 'h3'), 560))).toEqual({ ok: false, reason: 'mismatch', hintEpoch: undefined, hintFirstRev: undefined, lastRev: 6 });
    expect(acc.lease).toEqual({ epoch: 3, holder: 'h3', deadlineMs: 660 });
    expect(acc.dump(560)).toMatchObject({ mismatchedAppends: 3 });
    expect(b.log()).toHaveLength(6);
  });

  it('skips entries it holds, truncates a divergent suffix from the first conflict and appends the rest', () => {
    const { b, acc, step } = withLog(1, [ent(1, 2), ent(1, 3), ent(1, 4), ent(1, 5)], 2);
    b.apply({ promise: { epoch: asEpoch(2), grantee: 'h2' } });
    const d = acc.append(msg(2, [1, 2], [ent(1, 3), ent(2, 4), ent(2, 5)], 2, 'h2'), 500);
    expect(d.write).toEqual({ truncateFrom: 4, append: [ent(2, 4), ent(2, 5)] });
    expect(step(d)).toEqual({ ok: true, lastRev: 5, commitRev: 2 });
    expect(epochs(b)).toEqual([0, 1, 1, 2, 2]);
    // Re-sending what is held changes nothing.
    expect(acc.append(msg(2, [1, 2], [ent(1, 3), ent(2, 4)], 2, 'h2'), 510).write).toBeUndefined();
  });

  it('asserts that a conflicting entry is above commitRev (a committed entry never changes)', () => {
    const { b, acc } = withLog(1, [ent(1, 2), ent(1, 3)], 3);
    b.apply({ promise: { epoch: asEpoch(2), grantee: 'h2' } });
    expect(() => acc.append(msg(2, [1, 2], [ent(2, 3)], 3, 'h2'), 500)).toThrow(AssertionError);
  });

  it('never deletes entries because a message ends before them (a delayed, short append)', () => {
    const { b, acc, step } = withLog(1, [ent(1, 2), ent(1, 3), ent(1, 4), ent(1, 5)]);
    const d = acc.append(msg(1, [0, 1], [ent(1, 2), ent(1, 3)], 3), 500);
    expect(d.write).toEqual({ commitRev: 3 });
    expect(step(d)).toEqual({ ok: true, lastRev: 3, commitRev: 3 });
    expect(b.last).toEqual({ epoch: 1, rev: 5 });
    // A heartbeat at an older prev neither.
    expect(step(acc.append(msg(1, [1, 2], [], 3), 510))).toEqual({ ok: true, lastRev: 2, commitRev: 3 });
    expect(b.last).toEqual({ epoch: 1, rev: 5 });
  });

  it('commitRev := max(commitRev, min(msg.commitRev, prevRev + entries.length))', () => {
    const { b, acc, step } = withLog(1, []);
    // The message's commitRev above what it covers: capped at the covered prefix.
    const d1 = acc.append(msg(1, [0, 1], [ent(1, 2), ent(1, 3), ent(1, 4)], 10), 200);
    expect(d1.write?.commitRev).toBe(4);
    expect(step(d1)).toEqual({ ok: true, lastRev: 4, commitRev: 4 });
    step(acc.append(msg(1, [1, 4], [ent(1, 5), ent(1, 6)], 4), 210));
    // Below what it covers: the message's.
    expect(step(acc.append(msg(1, [1, 6], [], 5), 220))).toEqual({ ok: true, lastRev: 6, commitRev: 5 });
    expect(b.commitRev).toBe(5);
    // A lower one (a delayed message) never moves it back, and writes nothing.
    const d3 = acc.append(msg(1, [1, 3], [], 2), 230);
    expect(d3.write).toBeUndefined();
    expect(d3.reply).toEqual({ ok: true, lastRev: 3, commitRev: 5 });
    // A heartbeat at prev (1, 4) with commitRev 6 commits only up to 4: beyond it the entries are not known to match.
    expect(acc.append(msg(1, [1, 4], [], 6), 240).write).toBeUndefined();
    expect(b.commitRev).toBe(5);
  });

  it('a heartbeat renews the lease, which keeps other candidates out until it lapses', () => {
    const { acc, step } = withLog(1, []);
    expect(step(acc.append(msg(1, [0, 1], [], 1), 500))).toEqual({ ok: true, lastRev: 1, commitRev: 1 });
    expect(acc.lease).toEqual({ epoch: 1, holder: 'h1', deadlineMs: 600 });
    expect(acc.leaseLapsed(599)).toBe(false);
    step(acc.append(msg(1, [0, 1], [], 1), 580));
    expect(step(acc.lock({ epoch: asEpoch(2), candidate: 'm2' }, 650))).toEqual({ granted: false, promisedEpoch: 1, reason: 'lease' });
    expect(acc.leaseLapsed(680)).toBe(true);
    expect(granted(step(acc.lock({ epoch: asEpoch(2), candidate: 'm2' }, 680)))).toBe(true);
    expect(acc.lease).toBeUndefined();
  });

  it('asserts the message is well formed (contiguous entries, none above its epoch)', () => {
    const { acc } = withLog(1, []);
    expect(() => acc.append(msg(1, [0, 1], [ent(1, 3)], 1), 200)).toThrow(AssertionError);
    expect(() => acc.append(msg(1, [0, 1], [ent(2, 2)], 1), 200)).toThrow(AssertionError);
  });
});

describe('fetch (DESIGN §4.3)', () => {
  const log = [ent(1, 2), ent(1, 3), ent(2, 4)];

  it('is fenced unless its epoch is promisedEpoch', () => {
    const { acc } = withLog(2, log);
    expect(acc.fetch({ epoch: asEpoch(1), from: asRev(2), maxEntries: 10 })).toEqual({ ok: false, reason: 'fenced', promisedEpoch: 2 });
    expect(acc.fetch({ epoch: asEpoch(3), from: asRev(2), maxEntries: 10 })).toEqual({ ok: false, reason: 'fenced', promisedEpoch: 2 });
    expect(acc.dump(0)).toMatchObject({ fencedFetches: 2 });
  });

  it('serves up to maxEntries from `from` with the epoch before it, and changes nothing', () => {
    const { b, acc } = withLog(2, log, 3);
    const lease = acc.lease;
    const writes = b.writes;
    expect(acc.fetch({ epoch: asEpoch(2), from: asRev(3), maxEntries: 1 })).toEqual({
      ok: true,
      prevEpoch: 1,
      entries: [ent(1, 3)],
      last: { epoch: 2, rev: 4 },
      commitRev: 3,
    });
    expect(acc.fetch({ epoch: asEpoch(2), from: asRev(1), maxEntries: 10 })).toMatchObject({ ok: true, prevEpoch: 0, entries: b.log() });
    expect(acc.fetch({ epoch: asEpoch(2), from: asRev(5), maxEntries: 10 })).toMatchObject({ ok: true, prevEpoch: 2, entries: [] });
    expect(acc.fetch({ epoch: asEpoch(2), from: asRev(9), maxEntries: 10 })).toMatchObject({ ok: true, prevEpoch: undefined, entries: [] });
    expect(acc.lease).toBe(lease);
    expect(b.writes).toBe(writes);
  });

  it('answers compacted below the retained log', () => {
    const { b } = withLog(2, log, 3);
    // A log trimmed below rev 3 (the sim never trims; BrickStore does).
    const over: Partial<Record<keyof BrickLog, unknown>> = {
      firstRev: asRev(3),
      epochAt: (r: Rev): Epoch | undefined => (r >= 3 ? b.epochAt(r) : undefined),
      entry: (r: Rev): Entry | undefined => (r >= 3 ? b.entry(r) : undefined),
    };
    const trimmed = new Proxy(b, { get: (t, p) => (p in over ? over[p as keyof BrickLog] : Reflect.get(t, p, t)) }) as BrickLog;
    const acc = new BrickAcceptor(trimmed, { leaseMs: LEASE_MS, nowMs: 0 });
    expect(acc.fetch({ epoch: asEpoch(2), from: asRev(2), maxEntries: 10 })).toEqual({ ok: false, reason: 'compacted', firstRev: 3 });
    // From the first held rev: served, with the epoch before it unknown.
    const r = acc.fetch({ epoch: asEpoch(2), from: asRev(3), maxEntries: 10 }) as Extract<FetchResult, { ok: true }>;
    expect(r).toMatchObject({ ok: true, prevEpoch: undefined, entries: [ent(1, 3), ent(2, 4)] });
    // An append whose prev is trimmed but committed matches.
    expect(acc.append(msg(2, [1, 2], [ent(1, 3), ent(2, 4), ent(2, 5)], 3), 200).reply).toEqual({ ok: true, lastRev: 5, commitRev: 3 });
  });
});

describe('bug flags (for the simulator\'s bite tests)', () => {
  it('skipEpochFence: takes an append and a fetch of an older epoch', () => {
    const ok = withLog(2, []);
    expect(ok.acc.append(msg(1, [0, 1], [ent(1, 2)], 2), 500).reply).toMatchObject({ reason: 'fenced' });
    const bad = withLog(2, [], 1, { skipEpochFence: true });
    const lease = bad.acc.lease;
    const d = bad.acc.append(msg(1, [0, 1], [ent(1, 2)], 2), 500);
    expect(d.write).toEqual({ append: [ent(1, 2)], commitRev: 2 }); // no promise: it never falls
    expect(bad.acc.lease).toBe(lease); // a stale sender takes no lease
    expect(bad.step(d)).toEqual({ ok: true, lastRev: 2, commitRev: 2 });
    expect(bad.b.committedLog().map((e) => e.epoch)).toEqual([0, 1]);
    expect(bad.acc.fetch({ epoch: asEpoch(1), from: asRev(2), maxEntries: 5 })).toMatchObject({ ok: true, entries: [ent(1, 2)] });
    expect(bad.acc.fetch({ epoch: asEpoch(3), from: asRev(2), maxEntries: 5 })).toMatchObject({ ok: false, reason: 'fenced' });
  });

  it('grantDuringLease: grants lock(e) while another holder\'s lease is live', () => {
    for (const bugs of [undefined, { grantDuringLease: true }]) {
      const t = withLog(1, [], 1, bugs);
      t.step(t.acc.append(msg(1, [0, 1], [], 1, 'h1'), 500));
      expect(t.acc.probe({ epoch: asEpoch(2), candidate: 'm2' }, 510).wouldGrant).toBe(bugs !== undefined);
      expect(granted(t.step(t.acc.lock({ epoch: asEpoch(2), candidate: 'm2' }, 510)))).toBe(bugs !== undefined);
      // The epoch rule still holds.
      expect(granted(t.step(t.acc.lock({ epoch: t.b.promisedEpoch, candidate: 'm3' }, 510)))).toBe(false);
    }
  });

  it('truncateOnShortAppend: a short append or heartbeat cuts the log after its last entry', () => {
    const entries = [ent(1, 2), ent(1, 3), ent(1, 4), ent(1, 5)];
    const bad = withLog(1, entries, 1, { truncateOnShortAppend: true });
    const d = bad.acc.append(msg(1, [0, 1], [ent(1, 2), ent(1, 3)], 2), 500);
    expect(d.write).toEqual({ truncateFrom: 4, commitRev: 2 });
    expect(bad.step(d)).toEqual({ ok: true, lastRev: 3, commitRev: 2 });
    expect(bad.b.last).toEqual({ epoch: 1, rev: 3 });
    bad.step(bad.acc.append(msg(1, [1, 3], [], 2), 510)); // a heartbeat at the end: nothing to cut
    expect(bad.b.last.rev).toBe(3);
    bad.step(bad.acc.append(msg(1, [1, 2], [], 2), 520)); // a delayed heartbeat
    expect(bad.b.last).toEqual({ epoch: 1, rev: 2 });
    // Never below commitRev (the store would assert): a stale heartbeat at rev 1 keeps rev 2.
    bad.step(bad.acc.append(msg(1, [0, 1], [], 1), 530));
    expect(bad.b.last.rev).toBe(2);
    // Without the flag: nothing deleted (see the append tests).
    const ok = withLog(1, entries);
    expect(ok.acc.append(msg(1, [0, 1], [ent(1, 2), ent(1, 3)], 2), 500).write).toEqual({ commitRev: 2 });
  });
});

describe('SimBrick', () => {
  it('replays a committed log without a promise (as the checker does)', () => {
    const src = new SimBrick('src', config);
    src.apply({ promise: { epoch: asEpoch(3), grantee: 'h' }, append: [ent(2, 2, [put('/a', 1, 2)]), ent(3, 3, [put('/a', 2, 2, 2)])], commitRev: asRev(3) });
    const replay = new SimBrick('replay', config);
    for (const e of src.committedLog().slice(1)) replay.apply({ append: [e], commitRev: e.rev });
    expect(replay.committedLog()).toEqual(src.committedLog());
    expect(replay.viewAt(asRev(2)).get('/a')?.value).toEqual(new Uint8Array([1]));
  });

  it('starts with the committed config entry (0, 1)', () => {
    const b = new SimBrick('x', config);
    expect(b.log()).toEqual([{ epoch: 0, rev: 1, effects: [{ t: 'config', config }] }]);
    expect(b.committedLog()).toEqual(b.log());
    expect({ p: b.promisedEpoch, g: b.grantee, c: b.commitRev, l: b.last, f: b.firstRev, k: b.compactRev }).toEqual({ p: 0, g: '', c: 1, l: { epoch: 0, rev: 1 }, f: 1, k: 0 });
    expect(b.epochAt(asRev(0))).toBe(0);
    expect(b.lastSclock()).toBe(0);
  });

  it('applies effects as the store does and reads exactly at every committed rev, in key order', () => {
    const b = new SimBrick('x', config);
    const config2: VolumeConfig = { ...config, quorumCount: 3 };
    b.apply({
      promise: { epoch: asEpoch(1), grantee: 'h' },
      append: [
        ent(1, 2, [put('/b', 1, 2), put('/a', 2, 3 - 1)]),
        ent(1, 3, [put('/b', 3, 2, 2), { t: 'put', key: '/e', value: new Uint8Array([4]), createRev: asRev(3), version: 1, session: asSessionId(2) }]),
        ent(1, 4, [{ t: 'del', key: '/a' }, { t: 'config', config: config2 }]),
        ent(1, 5, [{ t: 'compact', rev: asRev(3) }, put('/a', 5, 5)]),
      ],
      commitRev: asRev(3),
    });
    expect(b.commitRev).toBe(3);
    // config: the newest in the log, committed or not (DESIGN §4.1); committedConfig: in force at commitRev.
    expect(b.config).toEqual(config2);
    expect(b.committedConfig).toEqual(config);
    expect(() => b.viewAt(asRev(4))).toThrow(AssertionError);
    const live = b.latestView();
    expect(live.get('/b')).toEqual({ value: new Uint8Array([3]), createRev: 2, modRev: 3, version: 2, session: 0 });
    b.apply({ commitRev: asRev(5) });
    expect(b.config).toEqual(config2);
    expect(b.committedConfig).toEqual(config2);
    expect(b.compactRev).toBe(3);
    expect(live.get('/a')).toEqual({ value: new Uint8Array([5]), createRev: 5, modRev: 5, version: 1, session: 0 });
    const keysAt = (rev: number): string[] => [...b.viewAt(asRev(rev)).scan({ start: '', end: undefined })].map((i) => i.key);
    expect(keysAt(1)).toEqual([]);
    expect(keysAt(2)).toEqual(['/a', '/b']);
    expect(keysAt(3)).toEqual(['/a', '/b', '/e']);
    expect(keysAt(4)).toEqual(['/b', '/e']);
    expect(keysAt(5)).toEqual(['/a', '/b', '/e']);
    expect([...b.viewAt(asRev(5)).scan({ start: '/a', end: '/c' })].map((i) => i.key)).toEqual(['/a', '/b']);
    expect(b.viewAt(asRev(2)).get('/b')?.modRev).toBe(2);
    expect(b.viewAt(asRev(4)).get('/a')).toBeUndefined();
    expect(b.viewAt(asRev(3)).get('/e')?.session).toBe(2);
  });

  it('asserts its invariants: truncation above commitRev, contiguous appends, commitRev within the log and never back', () => {
    const b = new SimBrick('x', config);
    b.apply({ promise: { epoch: asEpoch(1), grantee: 'h' }, append: [ent(1, 2), ent(1, 3)], commitRev: asRev(2) });
    expect(() => b.apply({ truncateFrom: asRev(2) })).toThrow(AssertionError);
    expect(() => b.apply({ append: [ent(1, 5)] })).toThrow(AssertionError);
    expect(() => b.apply({ commitRev: asRev(4) })).toThrow(AssertionError);
    expect(() => b.apply({ commitRev: asRev(1) })).toThrow(AssertionError);
    expect(() => b.apply({ append: [ent(0, 4)] })).toThrow(AssertionError); // epochs never fall
    b.apply({ truncateFrom: asRev(3), append: [ent(1, 3, [put('/k', 1, 3)])], commitRev: asRev(3) });
    expect(b.latestView().get('/k')?.modRev).toBe(3);
  });
});

describe('BrickAcceptor with the sim', () => {
  it('a long run of appends stays consistent: the brick\'s log equals the holder\'s', () => {
    const { b, acc, step } = setup();
    step(acc.lock({ epoch: asEpoch(1), candidate: 'h1' }, LEASE_MS));
    const sent: Entry[] = [];
    let commit = 1;
    for (let rev = 2; rev <= 2000; rev++) {
      const e = ent(1, rev, [put(`/k${rev % 50}`, rev % 256, rev)]);
      sent.push(e);
      const prev = sent[sent.length - 2];
      const r: AppendResult = step(acc.append(msg(1, [prev?.epoch ?? 0, rev - 1], [e], commit), LEASE_MS + rev));
      expect(r.ok).toBe(true);
      commit = rev;
    }
    expect(b.last).toEqual({ epoch: 1, rev: 2000 });
    expect(b.commitRev).toBe(1999);
    expect(b.log().slice(1)).toEqual(sent);
    expect([...b.latestView().scan({ start: '/k', end: '/l' })]).toHaveLength(50);
  });
});
