// `moved` on a 3-master volume of real processes (`coordvol cluster up`): a client watches
// through a master that does not hold the lock, and the two other masters (the holder among
// them) are frozen with SIGSTOP. That master's brick then truly hears from no holder — none can
// exist without a quorum — so after 2·leaseMs it ends the watch `moved`, and the client moves on
// and keeps trying the listed masters. After SIGCONT a holder is back; the watch resumes from its
// last rev + 1 and what it delivered equals a fresh replay of the log: no gap, no duplicate.
//
// SIGSTOP is not a partition: a frozen master cannot be cut off *while it runs*, so the other
// shape of the fault — one master cut off while the holder and the third go on taking writes,
// and the watch resuming on them at once — is covered in process with proxies that really cut
// the masters' links (test/unit/watch-moved.test.ts).
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type RemoteVolume, type Watcher } from '../../src/client/index.js';
import { consumeWatch, type Consumed } from '../unit/helpers.js';
import { alive, clusterUp, sleep, type Up } from './fixtures.js';

const LEASE_MS = 500;

let dir = '';
let up: Up | undefined;
const closers: (() => Promise<unknown>)[] = [];

async function until(cond: () => Promise<boolean> | boolean, what: () => string, ms: number): Promise<void> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > ms) throw new Error(`timed out: ${what()}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  up = await clusterUp('coordvol-cluster-moved-', LEASE_MS, 1);
  dir = up.dir;
}, 90_000);

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  for (const m of up?.masters ?? []) {
    if (!alive(m.pid)) continue;
    process.kill(m.pid, 'SIGCONT');
    process.kill(m.pid, 'SIGKILL');
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

/** A watcher's events as "rev type key=value" lines (closing the client at the end ends the loop). */
const consume = (w: Watcher): Consumed => consumeWatch(w, (rev, e) => `${rev} ${e.type} ${e.kv.key}=${Buffer.from(e.kv.value ?? []).toString()}`);

describe('moved on a 3-master volume of real processes', () => {
  it('a master that hears from no holder for 2·leaseMs ends its watch moved; the client resumes it from the last rev + 1 once a holder is back', async () => {
    const cluster = up as Up;
    const secret = readFileSync(cluster.secretFile, 'utf8');
    const open = async (servers: string[]): Promise<RemoteVolume> => {
      const v = await connect({ servers, secret, timeoutMs: 5_000 });
      closers.push(() => v.close());
      return v;
    };
    const all = cluster.masters.map((m) => m.listen);
    const writer = await open(all);
    let holder = '';
    await until(async () => (holder = (await writer.status().catch(() => undefined))?.volume?.holder ?? '') !== '', () => 'a holder', 20_000);
    const keep = cluster.masters.find((m) => m.listen !== holder) as Up['masters'][number];
    const frozen = cluster.masters.filter((m) => m !== keep);
    const watching = await open([keep.listen, ...frozen.map((m) => m.listen)]);
    const probe = await open([keep.listen]);
    const state = async (vol: RemoteVolume, type: string): Promise<Record<string, unknown>> =>
      (await vol.statedump()).find((d) => d.type === type)?.state ?? {};

    let last = (await writer.put('/wm/start', 's')).rev;
    const first = last;
    const got = consume(watching.watch('/wm/', { fromRev: first }));
    for (let i = 0; i < 20; i++) last = (await writer.put(`/wm/${i % 5}`, `a${i}`)).rev;
    await until(() => got.revs.at(-1) === last, () => `the watch at ${got.revs.at(-1)} of ${last}`, 20_000);
    expect((await state(watching, 'protocol/client'))['server']).toBe(keep.listen);

    for (const m of frozen) process.kill(m.pid, 'SIGSTOP');
    try {
      // No holder can exist now: the kept master's brick hears none, and ends the watch moved.
      await until(async () => ((await state(probe, 'features/watch'))['moved'] as number) >= 1, () => 'the kept master to end the watch moved', 20_000);
      expect(await state(probe, 'features/watch')).toMatchObject({ cutOff: true });
      await sleep(LEASE_MS); // the client moves on to a frozen master, and keeps trying
    } finally {
      for (const m of frozen) process.kill(m.pid, 'SIGCONT');
    }

    // A holder again; more writes (a write refused mid-election is tried again: the comparison
    // below is with the log itself, so one applied twice over an indeterminate answer is fine).
    for (let i = 0; i < 20; i++) {
      const deadline = performance.now() + 30_000;
      for (;;) {
        try {
          last = (await writer.put(`/wm/${i % 5}`, `b${i}`)).rev;
          break;
        } catch (e) {
          if (performance.now() > deadline) throw e;
          await sleep(100);
        }
      }
    }
    const reference = consume((await open(all)).watch('/wm/', { fromRev: first }));
    await until(() => got.revs.at(-1) === last && reference.revs.at(-1) === last, () => `the watch at ${got.revs.at(-1)}, the replay at ${reference.revs.at(-1)}, of ${last}`, 60_000);
    expect(got.error).toBeUndefined();
    expect(got.lines).toEqual(reference.lines); // no gap, no duplicate
    expect(new Set(got.revs).size).toBe(got.revs.length);
    // The client's connection moved off the kept master when it said moved (its statedump is read
    // only now: while the others were frozen, it was trying to reach them).
    expect((await state(watching, 'protocol/client'))['movedMoves'] as number).toBeGreaterThanOrEqual(1);
    expect(got.lines.filter((l) => l.includes('=b')).length).toBeGreaterThanOrEqual(20); // it did resume
  }, 120_000);
});
