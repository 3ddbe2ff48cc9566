// The newest config in a brick's log, committed or not (DESIGN §4.1), next to the committed one:
// BrickStore.logConfig through append, truncation, commit, reopen and snapshot install, and the
// lock grant that carries it; the canonical config encoding with and without learners (the
// volume id of an existing volume must not change); the storage option log-pin-revs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { asEpoch, asRev, type Rev } from '../../src/common/ids.js';
import {
  canonicalConfig, exportSnapshot, importSnapshot, openLmdbBrick, openMemoryBrick, volumeIdOf, type BrickStore, type Entry, type SnapshotChunk, type VolumeConfig,
} from '../../store/index.js';
import { configDiff } from '../../store/identity.js';
import { buildGraph, registry, type Clock } from '../../translators/index.js';
import { StorageTranslator } from '../../translators/storage/brick.js';

const C1: VolumeConfig = { volumeName: 'v', bricks: ['h1:/b', 'h2:/b', 'h3:/b'], quorumCount: 2 };
const C2: VolumeConfig = { ...C1, learners: ['h4:/b'] };
const C3: VolumeConfig = { volumeName: 'v', bricks: ['h1:/b', 'h2:/b', 'h3:/b', 'h4:/b'], quorumCount: 3 };

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coordvol-logconfig-'));
  dirs.push(d);
  return d;
}

const configEntry = (rev: number, config: VolumeConfig, epoch = 1): Entry => ({ epoch: asEpoch(epoch), rev: asRev(rev), effects: [{ t: 'config', config }] });
const noop = (rev: number, epoch = 1): Entry => ({ epoch: asEpoch(epoch), rev: asRev(rev), effects: [{ t: 'epoch-start' }] });

describe('BrickStore.logConfig', () => {
  it('follows the log through append, truncation and commit; config follows the commit point', async () => {
    const s = await openMemoryBrick({ config: C1, brick: 'h1:/b', create: true });
    try {
      expect([s.config, s.logConfig]).toEqual([C1, C1]);
      await s.write({ promise: { epoch: asEpoch(1), grantee: 'h' }, append: [noop(2), configEntry(3, C2)] });
      expect([s.config, s.logConfig]).toEqual([C1, C2]); // in effect once appended
      // Another holder's entry at 3 replaces it: the config of the log's new last entry rules.
      await s.write({ promise: { epoch: asEpoch(2), grantee: 'h2' }, truncateFrom: asRev(3), append: [noop(3, 2)] });
      expect([s.config, s.logConfig]).toEqual([C1, C1]);
      await s.write({ append: [configEntry(4, C3, 2), noop(5, 2)], commitRev: asRev(4) });
      expect([s.config, s.logConfig]).toEqual([C3, C3]);
      await s.write({ append: [configEntry(6, C2, 2)], commitRev: asRev(5) });
      expect([s.config, s.logConfig]).toEqual([C3, C2]);
      // Truncating below the newest config entry, but above another one: that one rules.
      await s.write({ promise: { epoch: asEpoch(3), grantee: 'h3' }, truncateFrom: asRev(6), append: [noop(6, 3)] });
      expect([s.config, s.logConfig]).toEqual([C3, C3]);
    } finally {
      await s.close();
    }
  });

  it('is found again on reopen, across checkpoints, committed or not', async () => {
    const dir = await tempDir();
    const open = (): Promise<BrickStore> => openLmdbBrick({ dir, fsync: false, config: C1, brick: 'h1:/b', create: true, checkpointEntries: 2 });
    let s = await open();
    await s.write({ promise: { epoch: asEpoch(1), grantee: 'h' } });
    for (let r = 2; r <= 9; r++) await s.write({ append: [r === 4 ? configEntry(r, C3) : noop(r)], commitRev: asRev(r) });
    await s.write({ append: [configEntry(10, C2), noop(11)], commitRev: asRev(9) });
    await s.settle();
    expect([s.config, s.logConfig]).toEqual([C3, C2]);
    await s.close();
    s = await open();
    try {
      expect([s.config, s.logConfig]).toEqual([C3, C2]);
      expect(s.last.rev).toBe(11);
    } finally {
      await s.close();
    }
  });

  it('after a snapshot install: the snapshot config when the log is dropped, the log kept after s otherwise', async () => {
    const src = await openMemoryBrick({ config: C1, brick: 'h1:/b', create: true });
    const dst = await openMemoryBrick({ config: C1, brick: 'h2:/b', create: true });
    const kept = await openMemoryBrick({ config: C1, brick: 'h3:/b', create: true });
    try {
      await src.write({ promise: { epoch: asEpoch(1), grantee: 'h' }, append: [noop(2), configEntry(3, C3), noop(4), configEntry(5, C2)], commitRev: asRev(4) });
      const chunks: SnapshotChunk[] = [];
      for await (const c of exportSnapshot(src, asRev(4))) chunks.push(c);
      // dst holds uncommitted entries of another epoch from 2 (a config among them): its whole log
      // goes, and C3 (in force at s) rules.
      await dst.write({ promise: { epoch: asEpoch(1), grantee: 'h' }, append: [configEntry(2, C2, 0), noop(3, 0), noop(4, 0), noop(5, 0), noop(6, 0)] });
      expect(dst.logConfig).toEqual(C2);
      expect(await importSnapshot(dst, chunks)).toBe(true);
      expect([dst.config, dst.logConfig, dst.last.rev]).toEqual([C3, C3, 4]);
      // kept holds entry (1, 4) and the uncommitted config after it: that log stays, and its config rules.
      await kept.write({ promise: { epoch: asEpoch(1), grantee: 'h' }, append: [noop(2), configEntry(3, C3), noop(4), configEntry(5, C2)] });
      expect(await importSnapshot(kept, chunks)).toBe(true);
      expect([kept.config, kept.logConfig, kept.last.rev]).toEqual([C3, C2, 5]);
      // The entries after s that the dropped log held are gone from memory too, not only from disk.
      expect([dst.entry(asRev(5)), dst.entry(asRev(6))]).toEqual([undefined, undefined]);
      expect(kept.entry(asRev(5))).toEqual(configEntry(5, C2));
    } finally {
      await src.close();
      await dst.close();
      await kept.close();
    }
  });

  it('an export at an older rev carries the config in force at that rev, or refuses when the log no longer tells', async () => {
    const header = async (s: BrickStore, rev: number): Promise<VolumeConfig> => {
      for await (const c of exportSnapshot(s, asRev(rev))) if (c.kind === 'header') return c.config;
      throw new Error('no header');
    };
    /** Configs C3 at rev 6 and C2 at rev 10, every rev checkpointed as it commits. */
    const build = async (logRetainRevs: number): Promise<BrickStore> => {
      const s = await openMemoryBrick({ config: C1, brick: 'h1:/b', create: true, checkpointEntries: 1, logRetainRevs });
      await s.write({ promise: { epoch: asEpoch(1), grantee: 'h' } });
      for (let r = 2; r <= 11; r++) {
        await s.write({ append: [r === 6 ? configEntry(r, C3) : r === 10 ? configEntry(r, C2) : noop(r)], commitRev: asRev(r) });
        await s.settle();
      }
      return s;
    };
    const full = await build(100);
    const trimmed = await build(3);
    try {
      // The tables hold the config as of rev 11 (C2): older revs read theirs from the log.
      expect([await header(full, 4), await header(full, 6), await header(full, 9), await header(full, 11)]).toEqual([C1, C3, C3, C2]);
      // Trimmed to 9..11: rev 9's config (C3, from rev 6) is no longer in the log, and C2 follows it.
      expect(trimmed.firstRev).toBe(9);
      const r = await header(trimmed, 9).then(() => 'exported', (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`);
      expect(r).toMatch(/^compacted: the config in force at rev 9/);
      expect(await header(trimmed, 10)).toEqual(C2);
    } finally {
      await full.close();
      await trimmed.close();
    }
  });

  it('a lock grant carries the newest config in the log, not the committed one', async () => {
    const clock = { t: 1_000, nowMs(): number { return this.t; } } satisfies Clock & { t: number };
    const volfile = `volume b\n    type storage/memory\n    option brick h1:/b\n    option volume-bricks h1:/b h2:/b h3:/b\nend-volume\n\n` +
      `volume l\n    type features/locks\n    option lease-ms 100ms\n    subvolumes b\nend-volume\n`;
    const graph = buildGraph(volfile, { file: 'lc.vol', registry, env: { clock, baseDir: '/tmp' } });
    await graph.init();
    try {
      const store = (graph.translators.find((t) => t instanceof StorageTranslator) as StorageTranslator).store;
      const c1 = store.config;
      const c2: VolumeConfig = { ...c1, learners: ['h4:/b'] };
      await store.write({ promise: { epoch: asEpoch(1), grantee: 'h' }, append: [configEntry(2, c2)] });
      clock.t += 1_000;
      const grant = await graph.top.call('lock', {}, { epoch: asEpoch(2), candidate: 'c' });
      expect(grant).toMatchObject({ granted: true, config: c2, commitRev: 1 });
      expect(store.config).toEqual(c1);
    } finally {
      await graph.fini();
    }
  });
});

describe('canonicalConfig', () => {
  it('encodes a config without learners exactly as before learners existed', () => {
    expect(canonicalConfig({ volumeName: 'v', bricks: ['h2:/b', 'h1:/b'], quorumCount: 2 })).toBe('{"volumeName":"v","bricks":["h1:/b","h2:/b"],"quorumCount":2}');
    // The id an existing volume has (sha-256 of that encoding, as before).
    expect(volumeIdOf(C1)).toBe(volumeIdOf({ quorumCount: 2, bricks: ['h3:/b', 'h1:/b', 'h2:/b'], volumeName: 'v' }));
  });

  it('encodes learners, sorted, when present: another volume id', () => {
    expect(canonicalConfig({ ...C1, learners: ['h5:/b', 'h4:/b'] })).toBe('{"volumeName":"v","bricks":["h1:/b","h2:/b","h3:/b"],"quorumCount":2,"learners":["h4:/b","h5:/b"]}');
    expect(volumeIdOf(C2)).not.toBe(volumeIdOf(C1));
    expect(configDiff(C1, C2)).toEqual(['learners (none) ≠ [h4:/b]']);
  });
});

describe('storage option log-pin-revs', () => {
  /** A brick whose log is pinned from rev 1 by a lagging voter, after `n` committed entries. */
  async function pinned(extra: string, n: number): Promise<{ firstRev: Rev; commitRev: Rev }> {
    const volfile = `volume b\n    type storage/memory\n    option log-retain-revs 1\n    option checkpoint-entries 1\n${extra}end-volume\n`;
    const graph = buildGraph(volfile, { file: 'pin.vol', registry, env: { clock: { nowMs: () => 0 }, baseDir: '/tmp' } });
    await graph.init();
    try {
      const store = (graph.top as StorageTranslator).store;
      await store.write({ promise: { epoch: asEpoch(1), grantee: 'h' } });
      for (let r = 2; r <= n + 1; r++) {
        store.retainFrom(asRev(1)); // the holder's slowest voter still needs rev 1
        await store.write({ append: [noop(r)], commitRev: asRev(r) });
        await store.settle();
      }
      return { firstRev: store.firstRev, commitRev: store.commitRev };
    } finally {
      await graph.fini();
    }
  }

  it('bounds how far a lagging voter holds the log (default: logPinRevsMax)', async () => {
    const held = await pinned('', 30);
    expect(held).toEqual({ firstRev: 1, commitRev: 31 });
    // Pinned at most 5 behind the commit point the pin was set at (one write earlier).
    const cut = await pinned('    option log-pin-revs 5\n', 30);
    expect(cut).toEqual({ firstRev: 30 - 5, commitRev: 31 });
  });
});
