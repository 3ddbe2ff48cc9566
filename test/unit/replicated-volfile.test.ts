// A master of a replicated volume from its hand-written volfile (DESIGN §8): it starts alone
// (its peers may come later) and refuses a volfile whose replicate options do not match the
// volume's bricks, with a typed error naming what is wrong.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startMaster } from '../../src/daemon/master.js';
import { replicatedVolfile } from '../../src/daemon/volfiles.js';
import { refusal } from './helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function volfile(edit: (text: string) => string = (t) => t): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'coordvol-repvol-'));
  dirs.push(dir);
  // The peers are down, as when the first master of three starts.
  // This master listens on any free port; its peers on ports 1 and 2, where nothing listens.
  const masters = [0, 1, 2].map((i) => ({ listen: `127.0.0.1:${i}`, brick: `127.0.0.1:${join(dir, `m${i}`, 'brick')}` }));
  const text = replicatedVolfile({ volumeName: 'rv', masters, self: 0, brickDir: join(dir, 'm0', 'brick'), secretFile: join(dir, 'secret'), fsync: false, leaseMs: 50 });
  const file = join(dir, 'm0.vol');
  await writeFile(file, edit(text));
  await writeFile(join(dir, 'secret'), 'a test secret\n');
  return { dir, file };
}

describe('a replicated volume master from its volfile', () => {
  it('starts without its peers, serves status, and holds no lock alone', async () => {
    const { dir, file } = await volfile();
    const m = await startMaster({ dir: join(dir, 'm0'), volfile: file });
    try {
      const s = await m.top.call('status', { deadlineMs: performance.now() + 2_000 }, {});
      expect(s.volume?.bricks).toHaveLength(3);
      expect(s.volume?.quorum).toBe(2);
      expect(s.volume?.holder).toBe('');
      // A write finds no holder (one brick of three is no quorum) and says so by its deadline.
      const r = await refusal(m.top.call('put', { deadlineMs: performance.now() + 300 }, { key: '/a', value: new Uint8Array([1]) }));
      expect(r.code).toBe('not-holder');
    } finally {
      await m.close();
    }
  });

  it('refuses remote-bricks that do not match its subvolumes, naming the option', async () => {
    const { dir, file } = await volfile((t) => t.replace(/option remote-bricks (\S+) (\S+)/, 'option remote-bricks $1'));
    const r = await refusal(startMaster({ dir: join(dir, 'm0'), volfile: file }));
    expect(r.code).toBe('volfile-invalid');
    expect(r.message).toMatch(/remote-bricks names 1 bricks for 2 remote subvolumes/);
  });

  it('refuses a volfile whose remote bricks leave a brick of the volume unreached', async () => {
    const { dir, file } = await volfile((t) => t.replace(/option remote-bricks (\S+) (\S+)/, 'option remote-bricks $1 127.0.0.1:/elsewhere'));
    const r = await refusal(startMaster({ dir: join(dir, 'm0'), volfile: file }));
    expect(r.code).toBe('volfile-invalid');
    // The typo leaves the real third brick with no subvolume (a brick no longer a member would be
    // kept: a config change may have removed it since the volfile was written).
    expect(r.message).toMatch(/no subvolume reaches brick\(s\) \S+m2\/brick of the volume/);
  });
});
