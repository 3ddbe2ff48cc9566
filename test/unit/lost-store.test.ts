// A brick of a replicated volume that lost its store (DESIGN §4: "A brick whose store is missing,
// empty or of another volume never grants or acks as a voter; it rejoins only as a new learner").
// storage/lmdb leaves a marker beside a replicated brick's directory when it creates the brick;
// an empty store in its place is then refused with the way back, instead of being created again
// as a voter whose empty log would vote as if it had never held the volume's entries.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGraph, registry, type Graph } from '../../translators/index.js';
import { createdMarkerOf } from '../../translators/storage/lmdb.js';
import { refusal } from './helpers.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const clock = { nowMs: () => performance.now() };

function brickGraph(baseDir: string, bricks: readonly string[]): Graph {
  const volfile = `volume b\n    type storage/lmdb\n    option directory brick\n    option fsync off\n    option brick ${bricks[0]}\n    option volume-bricks ${bricks.join(' ')}\nend-volume\n`;
  return buildGraph(volfile, { file: 'lost.vol', registry, env: { clock, baseDir } });
}

describe('a brick that lost its store', () => {
  it('of a replicated volume is refused with the way back as a learner; without the marker it is created again', async () => {
    const base = await mkdtemp(join(tmpdir(), 'coordvol-lost-'));
    dirs.push(base);
    const bricks = ['h1:/b', 'h2:/b', 'h3:/b'];
    const first = brickGraph(base, bricks);
    await first.init();
    await first.fini();
    const marker = createdMarkerOf(join(base, 'brick'));
    expect(existsSync(marker)).toBe(true);

    await rm(join(base, 'brick'), { recursive: true });
    const again = brickGraph(base, bricks);
    const err = await refusal(again.init());
    expect(err.code).toBe('store-invalid');
    expect(err.message).toMatch(/rejoins only as a new learner/);
    expect(err.message).toContain('coordvol volume reconfigure remove h1:/b');
    await again.fini().catch(() => undefined);

    // The operator removed it from the volume and deleted the marker: it is created afresh.
    await rm(marker);
    const fresh = brickGraph(base, bricks);
    await fresh.init();
    await fresh.fini();
    expect(existsSync(marker)).toBe(true);
  });

  it('of a single-brick volume is created again (no other brick to disagree with)', async () => {
    const base = await mkdtemp(join(tmpdir(), 'coordvol-lost1-'));
    dirs.push(base);
    const g = brickGraph(base, ['h1:/b']);
    await g.init();
    await g.fini();
    expect(existsSync(createdMarkerOf(join(base, 'brick')))).toBe(false);
    await rm(join(base, 'brick'), { recursive: true });
    const again = brickGraph(base, ['h1:/b']);
    await again.init();
    await again.fini();
  });
});
