// The simulator's watch service (watch-service.ts) on one brick, driven by hand: it serves the
// committed log in rev order (below the log from the versions kept), ends streams `moved` when a
// snapshot install passes them or the brick is cut off, refuses `compacted` at or below the
// compact rev — and the watch checks (watch-checks.ts) catch the broken variant's gap.
import { describe, expect, it } from 'vitest';
import { asEpoch, asRev, NO_SESSION } from '../../src/common/ids.js';
import { seededRandom } from '../../src/common/random.js';
import type { Effect, Entry, VolumeConfig } from '../../store/types.js';
import { Agenda } from './events.js';
import { LogChecks, SimViolation } from './log-checks.js';
import { SimBrick } from './sim-brick.js';
import { WatchChecks } from './watch-checks.js';
import { Conn, WatchService, type WatchBugs, type WatchMsg, type WatchRequest } from './watch-service.js';

const config: VolumeConfig = { volumeName: 'v', bricks: ['a', 'b', 'c'], quorumCount: 2 };
const put = (key: string, rev: number): Effect => ({ t: 'put', key, value: new Uint8Array([rev]), createRev: asRev(rev), version: 1, session: NO_SESSION });
/** Entry `rev` puts /k/<rev mod 3> and a reserved key (which a watch of /k/ or everything never sees). */
const ent = (rev: number): Entry => ({ epoch: asEpoch(1), rev: asRev(rev), effects: [put(`/k/${rev % 3}`, rev), put(`/_coordvol/x${rev}`, rev)] });
const run = (from: number, to: number): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => ent(from + i));

function setup(bugs: WatchBugs = {}) {
  const agenda = new Agenda();
  const brick = new SimBrick('a', config, { retainRevs: 4 });
  const log = new LogChecks();
  const checks = new WatchChecks(log);
  let quietMs = 0;
  const service = new WatchService({
    rnd: seededRandom(1), leaseMs: 300, maxDelayMs: 5, lossRate: 0, progressMs: 300, bugs,
    now: () => agenda.nowMs, after: (ms, f) => agenda.after(ms, f), nodes: 1,
    brick: () => brick, up: () => true, incarnation: () => 1, quietMs: () => quietMs, reachable: () => true, faultsOn: () => false,
    tracing: false, trace: () => undefined,
  });
  const commit = (from: number, to: number): void => {
    brick.apply({ append: run(from, to), commitRev: asRev(to) });
    log.committedUpTo(brick, brick.commitRev, 'a');
    service.committed(0);
    brick.trimLog();
  };
  const got: WatchMsg[] = [];
  const watch = (id: number, req: WatchRequest): Conn => {
    if (req.t === 'watch') checks.watcher(id, req.prefix, req.fromRev);
    const conn = new Conn(0, (m) => {
      got.push(m);
      if (m.t === 'started') checks.started(id, m.fromRev);
      if (m.t === 'events') checks.events(id, m.rev, m.changes);
      if (m.t === 'progress') checks.progress(id, m.rev);
    });
    service.request(0, conn, req);
    return conn;
  };
  log.committedUpTo(brick, brick.commitRev, 'a');
  return { agenda, brick, log, service, checks, commit, got, watch, setQuiet: (ms: number) => (quietMs = ms) };
}

const revs = (ms: readonly WatchMsg[]): number[] => ms.flatMap((m) => (m.t === 'events' ? [m.rev] : []));

describe('the simulated watch service', () => {
  it('replays below the log from the versions kept, then streams live, reserved keys hidden', () => {
    const t = setup();
    t.commit(2, 20); // the log keeps 17..20
    expect(t.brick.firstRev).toBe(17);
    t.watch(1, { t: 'watch', prefix: '/k/', fromRev: asRev(2), progress: false });
    t.agenda.runUntil(50);
    t.commit(21, 23);
    t.agenda.runUntil(100);
    expect(t.got[0]).toEqual({ t: 'started', fromRev: 2 });
    expect(revs(t.got)).toEqual(run(2, 23).map((e) => e.rev));
    for (const m of t.got) if (m.t === 'events') expect(m.changes.map((c) => c.key)).toEqual([`/k/${m.rev % 3}`]);
    expect(t.service.counts.historyRevs).toBe(15);
    expect(t.checks.counts.revs).toBe(22);
  });

  it('ends a stream moved when a snapshot install passes its cursor; the broken variant skips, and the checks see the gap', () => {
    for (const bug of [false, true]) {
      const t = setup(bug ? { snapshotKeepsWatches: true } : {});
      t.commit(2, 5);
      t.watch(1, { t: 'watch', prefix: '', fromRev: undefined, progress: false });
      t.agenda.runUntil(50);
      const src = new SimBrick('src', config);
      src.apply({ append: run(2, 12), commitRev: asRev(12) });
      // The volume committed 6..12 elsewhere; this brick takes them as a snapshot at 12.
      t.brick.installSnapshot(src.exportSnapshot());
      t.log.committedUpTo(src, src.commitRev, 'src');
      t.service.installed(0, asRev(12));
      t.agenda.runUntil(100);
      if (!bug) {
        expect(t.got.at(-1)).toMatchObject({ t: 'end', code: 'moved', cursor: 6 });
        continue;
      }
      t.brick.apply({ append: run(13, 13), commitRev: asRev(13) });
      t.log.committedUpTo(t.brick, t.brick.commitRev, 'a');
      t.service.committed(0);
      expect(() => t.agenda.runUntil(150)).toThrow(SimViolation);
    }
  });

  it('ends every stream moved once the brick has not heard from a holder for 2·leaseMs, and refuses new ones', () => {
    const t = setup();
    t.commit(2, 5);
    t.watch(1, { t: 'watch', prefix: '/k/', fromRev: asRev(9), progress: true });
    t.agenda.runUntil(20);
    t.service.start(2_000);
    t.agenda.runUntil(400);
    // Waiting for rev 9: no progress below fromRev − 1 = 8 (the brick is at 5).
    expect(t.got.filter((m) => m.t === 'progress')).toEqual([]);
    t.setQuiet(600);
    t.agenda.runUntil(600);
    expect(t.got.at(-1)).toMatchObject({ t: 'end', code: 'moved', cursor: 9 });
    t.watch(2, { t: 'watch', prefix: '/k/', fromRev: asRev(6), progress: false });
    t.agenda.runUntil(650);
    expect(t.got.at(-1)).toMatchObject({ t: 'end', code: 'moved', cursor: 6 });
  });

  it('refuses a watch at or below the compact rev, and answers a resync read at its commit point', () => {
    const t = setup();
    t.commit(2, 5);
    t.brick.apply({ append: [{ epoch: asEpoch(1), rev: asRev(6), effects: [{ t: 'compact', rev: asRev(4) }] }], commitRev: asRev(6) });
    t.watch(1, { t: 'watch', prefix: '/k/', fromRev: asRev(4), progress: false });
    t.watch(2, { t: 'resync', prefix: '/k/', minRev: asRev(3) });
    t.agenda.runUntil(50);
    expect(t.got.find((m) => m.t === 'end')).toMatchObject({ code: 'compacted', cursor: 4, compactRev: 4 });
    const r = t.got.find((m) => m.t === 'resync');
    expect(r?.t === 'resync' ? [r.rev, r.kvs.map((kv) => kv.key)] : undefined).toEqual([6, ['/k/0', '/k/1', '/k/2']]);
  });
});
