// A snapshot heal in a real 3-master volume in this process (DESIGN §4.8): the storage option
// log-pin-revs keeps the holder's log short, so a master down for a few hundred writes comes
// back needing entries no log holds. The holder's replication engine asks for a snapshot heal,
// cluster/replicate carries it over protocol/client to that master's brick, and the brick
// catches up through it: lag 0 in the holder's status, the latest state readable there. With a
// pin that covers the outage, the same master catches up by appends alone (the holder's log keeps
// what it needs, including the entry an append to it names as prev).
import { afterAll, describe, expect, it } from 'vitest';
import type { Master } from '../../src/daemon/master.js';
import { startLocalVolume, until, type Cleanup } from './fixtures/local-volume.js';

const cleanup: Cleanup = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

describe.each([
  { pin: 20, snapshots: 1, what: 'a master back after the pinned window has passed is healed by a snapshot, then by appends' },
  { pin: 1_000, snapshots: 0, what: 'a master back within the pinned window is healed by appends alone' },
])('a lagging master in a 3-master volume (log-pin-revs $pin)', ({ pin, snapshots, what }) => {
  it(what, async () => {
    const { plan, masters, start, open, holder: holderOf } = await startLocalVolume({
      prefix: 'coordvol-snapvol-',
      leaseMs: 100,
      // A short log, pinned at most `pin` revs for a lagging voter: beyond that, a snapshot heal.
      edit: (text) => {
        const edited = text.replace('    type storage/lmdb\n', `    type storage/lmdb\n    option log-retain-revs 5\n    option log-pin-revs ${pin}\n    option checkpoint-entries 8\n`);
        expect(edited).toContain(`option log-pin-revs ${pin}`);
        return edited;
      },
    }, cleanup);
    const holder = await holderOf();
    const v = plan.findIndex((m) => m.listen !== holder);
    const rest = plan.filter((_, i) => i !== v).map((m) => m.listen);
    const writer = await open(rest);
    await writer.put('/k/0', 'before');
    const vBrick = (await (masters[v] as Master).top.call('status', { deadlineMs: performance.now() + 5_000 }, {})).brick?.brickId;
    expect(vBrick).toBeDefined();

    // Master v goes away; the volume goes on with the other two, well past the log's window.
    await (masters[v] as Master).close();
    let last = 0;
    for (let i = 1; i <= 150; i++) last = (await writer.put(`/k/${i % 10}`, `v${i}`)).rev;
    const lagging = async (): Promise<{ lag: number } | undefined> => (await writer.status()).volume?.bricks.find((b) => b.brickId === vBrick);
    expect((await lagging())?.lag).toBeGreaterThan(100);

    // It comes back: past the pinned window the holder can only heal it with a snapshot.
    const back = await start(v);
    await until(async () => (await lagging())?.lag === 0, () => 'the returning brick to catch up', 30_000);
    const locks = (await back.top.call('statedump', {}, {})).find((d) => d.type === 'features/locks')?.state ?? {};
    expect(locks['snapshotsInstalled']).toBe(snapshots);
    expect(locks['snapshotStats']).toMatchObject({ failed: 0 });
    // Its brick serves the latest state (a serializable read at that master, at or after `last`).
    const there = await open([plan[v]?.listen as string]);
    const r = await there.get('/k/0', { consistency: 'serializable', minRev: last });
    expect(r.rev).toBeGreaterThanOrEqual(last);
    expect(Buffer.from(r.kv?.value ?? []).toString()).toBe('v150');
    // And it goes on by appends: a write after the heal reaches it too.
    const after = (await writer.put('/k/after', 'x')).rev;
    await until(async () => (await there.get('/k/after', { consistency: 'serializable', minRev: after }).catch(() => undefined))?.kv !== undefined, () => 'the write after the heal', 10_000);
  }, 90_000);
});
