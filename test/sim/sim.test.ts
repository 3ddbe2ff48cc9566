// The simulator in `npm test`: a bounded run of seeds with every check of DESIGN §4 on each.
// More seeds: `npm run sim -- --seeds N --from S`.
import { describe, expect, it } from 'vitest';
import { reproduceCommand, runSeed } from './seeds.js';

const SEEDS = Number(process.env.SIM_SEEDS ?? 1000);

describe('replication simulator', () => {
  it(`keeps every invariant on ${SEEDS} seeds of faults`, () => {
    let elections = 0;
    let ops = 0;
    let snapshots = 0;
    let configs = 0;
    let configsWhileStale = 0;
    let watchEvents = 0;
    let watchMovedBySnapshot = 0;
    let watchResyncs = 0;
    let watchHistoryRevs = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = runSeed(seed);
      if (!r.ok) expect.fail(`seed ${seed}: ${r.violation?.message}\nreproduce: ${reproduceCommand(seed)}`);
      elections += r.stats.elections ?? 0;
      ops += r.stats.ops ?? 0;
      snapshots += r.stats.snapshotsChecked ?? 0;
      configs += r.stats.configsCommitted ?? 0;
      configsWhileStale += r.stats.operatorAppliedWhileStale ?? 0;
      watchEvents += r.stats.watchEvents ?? 0;
      watchMovedBySnapshot += r.stats.watchServiceMovedSnapshot ?? 0;
      watchResyncs += r.stats.watchResyncs ?? 0;
      watchHistoryRevs += r.stats.watchServiceHistoryRevs ?? 0;
      // Faults happened and the volume made progress through them, on every seed (a little on a
      // seed where quorum-count was every voter when one crashed: nothing commits until it is back).
      expect(r.stats.committed).toBeGreaterThan(50);
    }
    expect(elections).toBeGreaterThan(SEEDS);
    expect(ops).toBeGreaterThan(SEEDS * 100);
    // Snapshot heals and config changes (some made while a master was down or cut off) happened.
    expect(snapshots).toBeGreaterThan(SEEDS);
    expect(configs).toBeGreaterThan(SEEDS);
    expect(configsWhileStale).toBeGreaterThan(SEEDS / 4);
    // Watch streams carried events through it all, each checked against the committed log; some
    // were ended by a snapshot install, some replayed revs from below a trimmed log, and some
    // were overtaken by compaction and resynced.
    expect(watchEvents).toBeGreaterThan(SEEDS * 200);
    expect(watchMovedBySnapshot).toBeGreaterThan(SEEDS / 4);
    expect(watchHistoryRevs).toBeGreaterThan(SEEDS);
    expect(watchResyncs).toBeGreaterThan(SEEDS / 4);
  }, 240_000);

  it('replays a seed exactly', () => {
    const a = runSeed(7, { trace: true });
    const b = runSeed(7, { trace: true });
    expect(a.ok).toBe(true);
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
  }, 60_000);
});
