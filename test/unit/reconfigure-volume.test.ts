// Membership changes in a real 3-master volume in this process (DESIGN §4.7), through the
// client library's reconfigure() as `coordvol volume reconfigure` uses it: a voter removed and
// added back as a learner (healed, promoted once caught up), then the holder's own brick
// removed — it steps down once that config commits, a remaining master takes over, and the
// volume goes on with two voters. Each step is checked in the holder's status.
import { afterAll, describe, expect, it } from 'vitest';
import type { VolumeStatus } from '../../src/client/index.js';
import { reconfigure } from '../../src/cli/volume.js';
import { startLocalVolume, until, type Cleanup } from './fixtures/local-volume.js';

const cleanup: Cleanup = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

describe('reconfiguration of a 3-master volume', () => {
  it('removes a voter, adds it back as a learner and promotes it, then removes the holder', async () => {
    const { plan, open, holder: holderOf } = await startLocalVolume({ prefix: 'coordvol-reconf-', leaseMs: 100 }, cleanup);
    const v = await open();
    // The holder's view: a master the change removed (the client may be on it) hears from no holder
    // once its lease lapses and then answers with its own view, without roles from the holder.
    const status = async (): Promise<VolumeStatus | undefined> => {
      let s: VolumeStatus | undefined;
      await until(async () => {
        s = (await v.status().catch(() => undefined))?.volume;
        return s?.bricks.some((b) => b.role === 'holder') === true;
      }, () => `a status with the holder's view: ${JSON.stringify(s)}`, 10_000);
      return s;
    };
    const roleOf = (s: VolumeStatus | undefined, brick: string): string | undefined => s?.bricks.find((b) => b.path === brick)?.role;
    const holder = await holderOf();
    const h = plan.findIndex((m) => m.listen === holder);
    const other = plan.find((_, i) => i !== h) as { listen: string; brick: string };
    await v.put('/k', 'before');

    // Remove a voter: two voters, quorum two; writes go on.
    const removed = await v.reconfigure({ op: 'remove', brick: other.brick });
    expect(removed.config.bricks).toEqual(plan.map((m) => m.brick).filter((b) => b !== other.brick).sort());
    // A write first: a client on the removed master is refused not-holder there and moves on.
    await v.put('/k', 'two voters');
    let s = await status();
    expect(s?.quorum).toBe(2);
    // Keys are counted at the holder's own brick; the others' are not asked for ('-' in the CLI).
    expect(s?.bricks.find((b) => b.role === 'holder')?.keys).toBe(1);
    expect(s?.bricks.filter((b) => b.role !== 'holder').map((b) => b.keys)).toEqual([undefined]);
    expect(roleOf(s, other.brick)).toBeUndefined();
    // A second change waits for nothing here (the first has committed); a malformed one is refused.
    await expect(v.reconfigure({ op: 'promote', brick: other.brick })).rejects.toMatchObject({ code: 'invalid-argument' });

    // Add it back as a learner: healed from the holder, never counted; promoted once caught up.
    await v.reconfigure({ op: 'add-learner', brick: other.brick });
    await until(async () => {
      s = await status();
      const b = s?.bricks.find((x) => x.path === other.brick);
      return b?.role === 'learner' && b.lag === 0;
    }, () => `the learner to catch up: ${JSON.stringify(s?.bricks)}`, 20_000);
    const promoted = await reconfigure(v, { op: 'promote', brick: other.brick }, Date.now() + 10_000);
    expect(promoted.config.bricks).toHaveLength(3);
    expect(promoted.config.learners).toBeUndefined();
    s = await status();
    expect(s?.quorum).toBe(2);
    expect(roleOf(s, other.brick)).toBe('voter');

    // Remove the holder's own brick: it steps down once that commits; another master holds the lock.
    const holderBrick = plan[h]?.brick as string;
    await v.reconfigure({ op: 'remove', brick: holderBrick });
    // The others elect a holder; their status says so (the removed master hears from no holder).
    const rest = await open(plan.filter((_, i) => i !== h).map((m) => m.listen));
    await until(async () => {
      s = (await rest.status().catch(() => undefined))?.volume;
      return s !== undefined && s.holder !== '' && s.holder !== holder;
    }, () => `a new holder: ${JSON.stringify(s)}`, 20_000);
    // The removed master refuses writes at once with not-holder (nothing applied), so a client
    // that lists other masters moves on, and one that knows only it learns why.
    const removedOnly = await open([holder]);
    await expect(removedOnly.put('/k', 'via the removed master')).rejects.toMatchObject({ code: 'not-holder' });
    expect(s?.bricks.map((b) => b.path).sort()).toEqual(plan.map((m) => m.brick).filter((b) => b !== holderBrick).sort());
    const after = await v.put('/k', 'after');
    const r = await v.get('/k');
    expect(r.rev).toBeGreaterThanOrEqual(after.rev);
    expect(Buffer.from(r.kv?.value ?? []).toString()).toBe('after');
  }, 90_000);
});
