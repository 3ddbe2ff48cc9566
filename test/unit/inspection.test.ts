// status, statedump and profile on the embedded volume: every translator of the default graph
// reports itself, io-stats counts what passed through it at both of its places.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openVolume, type EmbeddedVolume } from '../../src/client/index.js';

let dir: string;
let vol: EmbeddedVolume;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-inspect-'));
  vol = await openVolume({ dir, fsync: false, leaseMs: 10 });
  for (let i = 0; i < 10; i++) await vol.put(`/k/${i}`, `v${i}`);
  for (let i = 0; i < 5; i++) await vol.get(`/k/${i}`);
  await vol.get('/k/0', { rev: 1_000_000 }).catch(() => undefined);
});

afterAll(async () => {
  await vol.close();
  await rm(dir, { recursive: true, force: true });
});

describe('inspection', () => {
  it('status names the volume, its holder and its one brick', async () => {
    const { volume, brick } = await vol.status();
    expect(volume).toMatchObject({ volumeName: 'coordvol', quorum: 1, commitRev: 12, epoch: 1 });
    expect(volume?.holder).not.toBe('');
    expect(volume?.bricks).toHaveLength(1);
    expect(volume?.bricks[0]).toMatchObject({ role: 'holder', lag: 0, keys: 10, commitRev: 12, lastRev: 12 });
    expect(brick?.path).toBe(join(dir, 'brick'));
  });

  it('statedump has every translator of the graph, top down, with its state', async () => {
    const dump = await vol.statedump();
    expect(dump.map((d) => [d.name, d.type])).toEqual([
      ['coordvol', 'debug/io-stats'],
      ['coordvol-replicate', 'cluster/replicate'],
      ['coordvol-brick-stats', 'debug/io-stats'],
      ['coordvol-watch', 'features/watch'],
      ['coordvol-locks', 'features/locks'],
      ['coordvol-brick', 'storage/lmdb'],
    ]);
    const byType = Object.fromEntries(dump.map((d) => [d.type, d.state]));
    expect(byType['cluster/replicate']).toMatchObject({ master: { role: 'holder', epoch: 1, holder: { epoch: 1, phase: 'active', commitRev: 12 } } });
    expect(byType['features/locks']).toMatchObject({ promisedEpoch: 1, grants: 1 });
    expect(byType['storage/lmdb']).toMatchObject({ commitRev: 12, lastRev: 12, promisedEpoch: 1 });
  });

  it('profile counts fops at the client-facing and the brick-facing io-stats', async () => {
    const profile = await vol.profile();
    expect(profile.map((p) => p.name)).toEqual(['coordvol', 'coordvol-brick-stats']);
    const [top, brick] = profile;
    expect(top?.fops['put']).toMatchObject({ count: 10, errors: 0 });
    expect(top?.fops['get']).toMatchObject({ count: 6, errors: 1 });
    // Below replicate, writes are log appends, and the failed read never reached the brick.
    expect(brick?.fops['put']).toBeUndefined();
    expect(brick?.fops['get']).toMatchObject({ count: 5, errors: 0 });
    expect(brick?.fops['append']?.count).toBeGreaterThanOrEqual(1);
    // A fresh brick waits one lease before granting (DESIGN §4), so the first lock may be refused.
    expect(brick?.fops['lock']?.count).toBeGreaterThanOrEqual(1);
    expect(top?.fops['put']?.latencyMsP99).toBeGreaterThanOrEqual(top?.fops['put']?.latencyMsP50 ?? 0);
  });
});
