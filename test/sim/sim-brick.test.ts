// The simulator's brick (sim-brick.ts) trims and installs snapshots as BrickStore does (DESIGN
// §4.8), and its config is the newest in the log (§4.1): the checks lean on both.
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/common/assert.js';
import { asEpoch, asRev, NO_SESSION } from '../../src/common/ids.js';
import type { Effect, Entry, VolumeConfig } from '../../store/types.js';
import { SimBrick, snapshotDiff } from './sim-brick.js';

const config: VolumeConfig = { volumeName: 'v', bricks: ['a', 'b', 'c'], quorumCount: 2 };
const put = (key: string, v: number, rev: number): Effect => ({ t: 'put', key, value: new Uint8Array([v]), createRev: asRev(rev), version: 1, session: NO_SESSION });
const ent = (epoch: number, rev: number, effects: readonly Effect[] = [put(`/k${rev}`, rev, rev)]): Entry => ({ epoch: asEpoch(epoch), rev: asRev(rev), effects });
const run = (epoch: number, from: number, to: number): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => ent(epoch, from + i));

describe('SimBrick', () => {
  it('trims committed entries beyond the window, unless the pin keeps them (at most pinRevsMax behind)', () => {
    const b = new SimBrick('x', config, { retainRevs: 4, pinRevsMax: 10 });
    b.apply({ append: run(1, 2, 30), commitRev: asRev(25) });
    b.retainFrom(asRev(3));
    b.trimLog();
    expect(b.firstRev).toBe(15); // the pin at 3 is more than 10 behind 25
    b.retainFrom(asRev(18));
    b.trimLog();
    expect(b.firstRev).toBe(18);
    b.retainFrom(asRev(Number.MAX_SAFE_INTEGER));
    b.trimLog();
    expect(b.firstRev).toBe(22); // commitRev − retainRevs + 1
    expect(b.entry(asRev(21))).toBeUndefined();
    expect(b.epochAt(asRev(22))).toBe(1);
    // Reads stay exact below the log: every version is kept.
    expect(b.viewAt(asRev(3)).get('/k3')?.value).toEqual(new Uint8Array([3]));
    expect(() => b.apply({ truncateFrom: asRev(25) })).toThrow(AssertionError);
  });

  it('installs a snapshot: keeps the log after s if it holds (epoch_s, s), else drops it; the base answers epochAt(s)', () => {
    const src = new SimBrick('src', config);
    src.apply({ append: run(2, 2, 12), commitRev: asRev(10) });
    const snap = src.exportSnapshot();
    expect(snap.at).toEqual({ epoch: 2, rev: 10 });

    const keeps = new SimBrick('k', config);
    keeps.apply({ append: run(2, 2, 12), commitRev: asRev(3) });
    expect(keeps.installSnapshot(snap).map((e) => e.rev)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect([keeps.commitRev, keeps.firstRev, keeps.last.rev, keeps.epochAt(asRev(10))]).toEqual([10, 11, 12, 2]);
    expect(snapshotDiff(keeps.exportSnapshot(), snap)).toBeUndefined();

    const drops = new SimBrick('d', config);
    drops.apply({ append: run(1, 2, 14), commitRev: asRev(2) });
    drops.installSnapshot(snap);
    expect([drops.commitRev, drops.firstRev, drops.last.rev, drops.last.epoch, drops.epochAt(asRev(10))]).toEqual([10, 11, 10, 2, 2]);
    expect(drops.viewAt(asRev(5)).get('/k5')?.value).toEqual(new Uint8Array([5]));
    // Appends go on after the base; a truncation right after it names the base as the new last.
    drops.apply({ append: [ent(3, 11), ent(3, 12)] });
    drops.apply({ truncateFrom: asRev(11) });
    expect(drops.last).toEqual({ epoch: 2, rev: 10 });
    expect(() => drops.installSnapshot(snap)).toThrow(AssertionError);
  });

  it('tells snapshots apart by any version, compactRev or config', () => {
    const a = new SimBrick('a', config);
    a.apply({ append: run(1, 2, 6), commitRev: asRev(6) });
    const b = new SimBrick('b', config);
    b.apply({ append: [...run(1, 2, 5), ent(1, 6, [put('/k6', 7, 6)])], commitRev: asRev(6) });
    expect(snapshotDiff(a.exportSnapshot(), b.exportSnapshot())).toContain('/k6');
    expect(snapshotDiff(a.exportSnapshot(asRev(5)), b.exportSnapshot(asRev(5)))).toBeUndefined();
  });

  it('reports the newest config in its log, committed or not, and the committed one apart', () => {
    const b = new SimBrick('x', config);
    const c2: VolumeConfig = { ...config, learners: ['d'] };
    b.apply({ append: [ent(1, 2, [{ t: 'config', config: c2 }]), ent(1, 3)] });
    expect(b.config).toEqual(c2);
    expect(b.committedConfig).toEqual(config);
    b.apply({ truncateFrom: asRev(2) });
    expect(b.config).toEqual(config);
    b.apply({ append: [ent(2, 2, [{ t: 'config', config: c2 }])], commitRev: asRev(2) });
    expect(b.committedConfig).toEqual(c2);
    expect(b.exportSnapshot(asRev(1)).config).toEqual(config);
  });
});
