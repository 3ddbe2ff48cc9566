// The volfile graph switch on a replicated master, as the daemon runs it (DESIGN §8): a master
// grown to two by a probe (its volfile rewritten by the master itself, which switches nothing),
// then edited by hand under a steady stream of writes that need both bricks — the switch hands the
// running replicate to the new graph, which reaches the other brick through the new links, and
// no write fails. A broken edit and a brick-list edit are reported and change nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type RemoteVolume } from '../../src/client/index.js';
import { Daemon, type DaemonEvent } from '../../src/daemon/daemon.js';
import { probe } from '../../src/mgmt/probe.js';
import { ReplicateTranslator } from '../../translators/cluster/replicate.js';
import { freePort, until, type Cleanup } from './fixtures/local-volume.js';

const cleanup: Cleanup = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

describe('graph switch on a replicated master', () => {
  it('switches under a stream of replicated writes with none failing; refuses broken and brick-list edits', async () => {
    const root = await mkdtemp(join(tmpdir(), 'coordvol-dswitch-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const events: DaemonEvent[] = [];
    const start = async (name: string): Promise<{ d: Daemon; address: string; dir: string }> => {
      const dir = join(root, name);
      const address = `127.0.0.1:${await freePort()}`;
      const d = await Daemon.start({ dir, fsync: false, leaseMs: 50, listen: address, livenessTtlMs: false, onEvent: (e) => name === 'n1' && events.push(e) });
      cleanup.push(() => d.close());
      return { d, address, dir };
    };
    const n1 = await start('n1');
    const n2 = await start('n2');
    const secret = readFileSync(join(n1.dir, 'secret'), 'utf8');
    const c1: RemoteVolume = await connect({ servers: [n1.address], secret, timeoutMs: 5_000 });
    cleanup.push(() => c1.close());
    await probe(n2.address, true, {
      cluster: c1,
      clusterSecret: secret,
      untilMs: Date.now() + 20_000,
      connectPeer: (which, expectVolumeId) =>
        connect({ servers: [n2.address], secret: which === 'peer' ? readFileSync(join(n2.dir, 'secret'), 'utf8') : secret, timeoutMs: 3_000, exactlyOnce: false, ...(expectVolumeId ? { expectVolumeId } : {}) }),
    });
    const file = n1.d.volfilePath;
    await until(() => readFileSync(file, 'utf8').includes(n2.address), () => 'n1 to write n2 into its volfile', 5_000, 20);
    await n1.d.whenWatching();
    const replicate = n1.d.graph.translators.find((t) => t instanceof ReplicateTranslator);
    // The master's own rewrite switched nothing.
    await new Promise((r) => setTimeout(r, 300));
    expect(events.filter((e) => e.kind === 'graph-switched')).toEqual([]);

    // A steady stream of writes (each needs both bricks: quorum 2 of 2) while the file is edited.
    let stop = false;
    let acked = 0;
    const failures: unknown[] = [];
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          await c1.put(`/w${w}`, String(i));
          acked++;
        } catch (e) {
          // One failure is the test's answer; this writer stops (a tight loop of refusals would starve the timers).
          failures.push(e);
          return;
        }
      }
    });
    const original = readFileSync(file, 'utf8');
    // Another io-stats layer on top of the client-facing one: a new stack, the same engine.
    const stacked = original
      .replace(/volume coordvol-server\n    type protocol\/server\n/, 'volume coordvol-outer\n    type debug/io-stats\n    subvolumes coordvol\nend-volume\n\nvolume coordvol-server\n    type protocol/server\n')
      .replace(/(volume coordvol-server[\s\S]*?)subvolumes coordvol\n/, '$1subvolumes coordvol-outer\n');
    expect(stacked).not.toBe(original);
    const switched = (): number => events.filter((e) => e.kind === 'graph-switched').length;
    writeFileSync(file, stacked);
    await until(() => switched() === 1, () => `the first switch: ${JSON.stringify(events)}`, 10_000, 20);
    const afterFirst = acked;
    await until(() => acked > afterFirst + 50, () => 'writes to go on after the switch', 10_000, 20);
    writeFileSync(file, original);
    await until(() => switched() === 2, () => `the second switch: ${JSON.stringify(events)}`, 10_000, 20);
    const afterSecond = acked;
    await until(() => acked > afterSecond + 50, () => 'writes to go on after the second switch', 10_000, 20);
    stop = true;
    await Promise.all(writers);
    expect(failures).toEqual([]);
    // The engine was handed over, not rebuilt; the writes committed on both bricks.
    expect(n1.d.graph.translators.find((t) => t instanceof ReplicateTranslator)).toBe(replicate);
    const s = (await c1.status()).volume;
    expect(s?.quorum).toBe(2);
    expect(s?.bricks.every((b) => b.lag === 0 || b.role === 'holder')).toBe(true);

    // A broken edit: reported with its line, the graph keeps serving.
    const errorsBefore = events.filter((e) => e.kind === 'error').length;
    writeFileSync(file, original.replace('type debug/io-stats', 'type debug/no-such-thing'));
    await until(() => events.filter((e) => e.kind === 'error').length > errorsBefore, () => 'the broken edit to be reported', 10_000, 20);
    const broken = events.filter((e) => e.kind === 'error').at(-1) as Extract<DaemonEvent, { kind: 'error' }>;
    expect(broken.error).toMatchObject({ code: 'volfile-invalid' });
    expect(String((broken.error as Error).message)).toMatch(/coordvol\.vol:\d+: volume coordvol-brick-stats: unknown type/);
    await c1.put('/after-broken', 'ok');

    // A brick-list edit: reported naming peer probe / peer detach, nothing reconfigured.
    writeFileSync(file, original.replace(/option remote-bricks (\S+)/, 'option remote-bricks vm:/elsewhere'));
    await until(() => events.some((e) => e.kind === 'error' && (e.error as { code?: string }).code === 'membership-edit'), () => 'the brick-list edit to be reported', 10_000, 20);
    const membership = events.find((e) => e.kind === 'error' && (e.error as { code?: string }).code === 'membership-edit') as Extract<DaemonEvent, { kind: 'error' }>;
    expect(String((membership.error as Error).message)).toMatch(/peer probe/);
    expect(String((membership.error as Error).message)).toMatch(/peer detach/);
    await c1.put('/after-membership-edit', 'ok');
    expect((await c1.status()).volume?.bricks).toHaveLength(2);
    expect(switched()).toBe(2);
  }, 60_000);
});
