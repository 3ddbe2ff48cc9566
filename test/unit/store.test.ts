// BrickStore directly, on both engines: snapshots between bricks of one volume, what survives a
// reopen, and the directories a brick refuses to open (another volume's, corrupt, foreign, in use).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { open as openLmdbEnv } from 'lmdb';
import { seededRandom } from '../../src/common/random.js';
import { refusal } from './helpers.js';
import { afterAll, describe, expect, it } from 'vitest';
import { isCoordError } from '../../src/common/errors.js';
import { compareKeys } from '../../src/common/keys.js';
import { asEpoch, asRev, asSessionId, type Epoch, type Rev } from '../../src/common/ids.js';
import {
  exportSnapshot, importSnapshot, openBrick, openLmdbBrick, openMemoryBrick,
  type BrickStore, type Effect, type Entry, type KeyRecord, type SnapshotChunk, type VolumeConfig,
} from '../../store/index.js';

const CONFIG: VolumeConfig = { volumeName: 'v', bricks: ['h1:/b1', 'h2:/b2'], quorumCount: 2 };
const B1 = 'h1:/b1';
const B2 = 'h2:/b2';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coordvol-store-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

type EngineName = 'memory' | 'lmdb';
const ENGINES: readonly EngineName[] = ['memory', 'lmdb'];

async function openFresh(engine: EngineName, brick: string, config: VolumeConfig = CONFIG): Promise<BrickStore> {
  if (engine === 'memory') return openMemoryBrick({ config, brick, create: true });
  return openLmdbBrick({ dir: await tempDir(), fsync: false, config, brick, create: true });
}

/** Resolves `code` of a rejected promise (a CoordError), or fails. */

// --- writing a brick's log the way features/locks does --------------------------------------------

/** Appends entries of one epoch and commits each, resolving createRev and version like the holder. */
class LogWriter {
  constructor(
    readonly store: BrickStore,
    readonly epoch: Epoch,
  ) {}

  static async start(store: BrickStore, epoch: number, grantee = 'holder-1'): Promise<LogWriter> {
    await store.write({ promise: { epoch: asEpoch(epoch), grantee } });
    return new LogWriter(store, asEpoch(epoch));
  }

  get nextRev(): Rev {
    return asRev(this.store.last.rev + 1);
  }

  /** One entry; `commit: false` leaves it appended but uncommitted. */
  async entry(changes: readonly ({ put: string; value: Uint8Array } | { del: string } | { compact: number })[], commit = true): Promise<Entry> {
    const rev = this.nextRev;
    const effects: Effect[] = changes.map((c) => {
      if ('compact' in c) return { t: 'compact', rev: asRev(c.compact) };
      if ('del' in c) return { t: 'del', key: c.del };
      const old = this.store.get(c.put, this.store.commitRev);
      return { t: 'put', key: c.put, value: c.value, createRev: old ? old.createRev : rev, version: old ? old.version + 1 : 1, session: asSessionId(0) };
    });
    const e: Entry = { epoch: this.epoch, rev, effects };
    await this.store.write(commit ? { append: [e], commitRev: rev } : { append: [e] });
    return e;
  }

  put(key: string, value: Uint8Array | string): Promise<Entry> {
    return this.entry([{ put: key, value: typeof value === 'string' ? Buffer.from(value) : value }]);
  }
}

const LONG = '/long/' + 'x'.repeat(1950);
const KEYS = [
  '/a', '/a/b', '/a/b-c', '/a/b/x', '/b', '/é', '/\u{1F600}', '/\uFFFD', '/\uE000',
  '/long/' + 'x'.repeat(1894), // 1900 bytes: the longest short table key
  '/long/' + 'x'.repeat(1895),
  LONG + '1', LONG + '2', LONG + '\u{1F600}', LONG + '\uFFFD',
  '/long/' + 'x'.repeat(1893) + 'é', // 'é' straddles the 1900-byte cut
];

/** A small deterministic PRNG, so every run builds the same history. */

/**
 * Writes a history of puts, deletes and multi-key entries with two compactions in it. Returns
 * the compact revs. `valueBytes` makes values large (snapshots then span several chunks).
 */
async function buildHistory(w: LogWriter, opts: { entries: number; seed: number; valueBytes?: number }): Promise<number[]> {
  const rnd = seededRandom(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const compacts: number[] = [];
  for (let i = 0; i < opts.entries; i++) {
    if (i === Math.floor(opts.entries / 3) || i === Math.floor((2 * opts.entries) / 3)) {
      const c = w.store.compactRev + 1 + Math.floor(rnd() * (w.store.commitRev - w.store.compactRev - 1));
      compacts.push(c);
      await w.entry([{ compact: c }]);
      continue;
    }
    const n = 1 + Math.floor(rnd() * 3);
    const keys = new Set<string>();
    while (keys.size < n) keys.add(pick(KEYS));
    const changes = [...keys].map((k) => {
      const live = w.store.get(k, w.store.commitRev) !== undefined;
      if (live && rnd() < 0.3) return { del: k };
      const len = opts.valueBytes ?? Math.floor(rnd() * 8);
      return { put: k, value: opts.valueBytes ? randomBytes(len) : new Uint8Array(Array.from({ length: len }, () => Math.floor(rnd() * 256))) };
    });
    await w.entry(changes);
  }
  return compacts;
}

function plain(r: KeyRecord | undefined): unknown {
  return r && { ...r, value: Buffer.from(r.value).toString('hex') };
}

/** An entry with its values as hex (engines may hand back Buffer or Uint8Array). */
function plainEntry(e: Entry | undefined): unknown {
  return e && { ...e, effects: e.effects.map((fx) => (fx.t === 'put' ? { ...fx, value: Buffer.from(fx.value).toString('hex') } : fx)) };
}

/** Everything readable at `rev`: every key's get and a few scans. */
function stateAt(s: BrickStore, rev: Rev): unknown {
  const gets = Object.fromEntries(KEYS.map((k) => [k, plain(s.get(k, rev))]));
  const scans = [
    { start: '', end: undefined },
    { start: '/a', end: '/a0' },
    { start: '/a/b', end: '/b' },
    { start: '/long/', end: LONG + '2' },
    { start: LONG, end: undefined },
  ].map((range) => [...s.scan(range, rev)].map((i) => ({ key: i.key, record: plain(i.record) })));
  return { gets, scans };
}

async function collect(chunks: AsyncIterable<SnapshotChunk>): Promise<SnapshotChunk[]> {
  const out: SnapshotChunk[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

// --- reads at every rev ------------------------------------------------------------------------------

/** The state after every rev, by replaying entries (the plain meaning of the log). */
function replay(entries: readonly Entry[]): { states: Map<number, Map<string, KeyRecord>>; compactRev: number } {
  const states = new Map<number, Map<string, KeyRecord>>();
  let cur = new Map<string, KeyRecord>();
  let compactRev = 0;
  states.set(1, cur);
  for (const e of entries) {
    cur = new Map(cur);
    for (const fx of e.effects) {
      if (fx.t === 'put') cur.set(fx.key, { value: fx.value, createRev: fx.createRev, modRev: e.rev, version: fx.version, session: fx.session });
      else if (fx.t === 'del') cur.delete(fx.key);
      else if (fx.t === 'compact') compactRev = fx.rev;
    }
    states.set(e.rev, cur);
  }
  return { states, compactRev };
}

/**
 * Steer around the product bug pinned by 'KNOWN BUG: a single-key scan …' below: set to false
 * once that test passes, so the replay test checks single-key scans at every rev too.
 */
const AVOID_KNOWN_BUGS = false;

/** Ranges as reads make them: single keys ([k, k + NUL), as a key selector becomes), prefixes, spans. */
const READ_RANGES: readonly { start: string; end: string | undefined }[] = [
  ...(AVOID_KNOWN_BUGS ? [] : KEYS.map((k) => ({ start: k, end: k + '\u0001' }))),
  { start: '', end: undefined },
  { start: '/a/', end: '/a0' },
  { start: '/a/b', end: '/a/b/' },
  { start: '/\uE000', end: '/\u{10FFFF}' },
  { start: '/long/', end: LONG + '2' },
  { start: LONG + '1', end: LONG + '\uFFFD' },
];

function expectedAt(state: Map<string, KeyRecord>, range: { start: string; end: string | undefined }): unknown[] {
  return [...state]
    .filter(([k]) => compareKeys(k, range.start) >= 0 && (range.end === undefined || compareKeys(k, range.end) < 0))
    .sort(([x], [y]) => compareKeys(x, y))
    .map(([key, record]) => ({ key, record: plain(record) }));
}

function checkAllRevs(s: BrickStore, model: ReturnType<typeof replay>, what: string): void {
  expect(s.compactRev, what).toBe(model.compactRev);
  for (let r = s.compactRev; r <= s.commitRev; r++) {
    const state = model.states.get(r) as Map<string, KeyRecord>;
    for (const k of KEYS) expect(plain(s.get(k, asRev(r))), `${what}: get ${k.slice(0, 12)}… at ${r}`).toEqual(plain(state.get(k)));
    for (const range of READ_RANGES) {
      const got = [...s.scan(range, asRev(r))].map((i) => ({ key: i.key, record: plain(i.record) }));
      expect(got, `${what}: scan [${range.start.slice(0, 12)}…, ${range.end?.slice(0, 12)}…) at ${r}`).toEqual(expectedAt(state, range));
    }
  }
}

async function openWithCheckpoints(engine: EngineName, checkpointEntries: number): Promise<BrickStore> {
  return engine === 'memory'
    ? openMemoryBrick({ config: CONFIG, brick: B1, create: true, checkpointEntries })
    : openLmdbBrick({ dir: await tempDir(), fsync: false, config: CONFIG, brick: B1, create: true, checkpointEntries });
}

describe.each(ENGINES.flatMap((e) => [1, 7, 1024].map((n) => [e, n] as const)))('reads on %s with checkpoints every %i entries', (engine, checkpointEntries) => {
  it('match a replay of the log at every rev, before and after background work settles', async () => {
    const s = await openWithCheckpoints(engine, checkpointEntries);
    try {
      const w = await LogWriter.start(s, 1);
      await buildHistory(w, { entries: 60, seed: 5 });
      const entries = Array.from({ length: s.commitRev - 1 }, (_, i) => s.entry(asRev(i + 2)) as Entry);
      const model = replay(entries);
      checkAllRevs(s, model, 'as written');
      await s.settle();
      checkAllRevs(s, model, 'settled');
    } finally {
      await s.close();
    }
  });
});

describe.each(ENGINES)('single-key scans on %s', (engine) => {
  // Regression: a key selector once became [key, key + NUL), which sorts below the key's own
  // history entries (key + 0x00 + rev), so reads below the checkpoint missed the key. Key
  // selectors are [key, key + U+0001) now (keys never contain NUL).
  it('a single-key scan [k, k + U+0001) below the checkpoint finds k', async () => {
    const s = await openWithCheckpoints(engine, 1);
    try {
      const w = await LogWriter.start(s, 1);
      await w.put('/a', 'one');
      await w.put('/a', 'two');
      await s.settle();
      expect(s.get('/a', asRev(2))?.version).toBe(1);
      expect([...s.scan({ start: '/a', end: '/a\u0001' }, asRev(2))].map((i) => [i.key, i.record.version])).toEqual([['/a', 1]]);
    } finally {
      await s.close();
    }
  });
});

// --- snapshots ---------------------------------------------------------------------------------------

describe.each(ENGINES.flatMap((from) => ENGINES.map((to) => [from, to] as const)))('snapshot from a %s brick into a %s brick', (from, to) => {
  it('reads the same at every rev from the compactRev to the snapshot rev', async () => {
    const a = await openFresh(from, B1);
    const b = await openFresh(to, B2);
    try {
      const w = await LogWriter.start(a, 1);
      await buildHistory(w, { entries: 90, seed: 7 });
      await a.settle(); // physical compaction done: the snapshot holds only what it keeps
      const s = asRev(a.commitRev - 10); // the source has moved on past the snapshot rev
      expect(s).toBeGreaterThan(a.compactRev);
      const chunks = await collect(exportSnapshot(a, s));
      expect(await importSnapshot(b, chunks)).toBe(true);

      expect(b.commitRev).toBe(s);
      expect(b.compactRev).toBe(a.compactRev);
      expect(b.last).toEqual({ epoch: a.entry(s)?.epoch, rev: s });
      expect(b.config).toEqual(a.config);
      for (let r = a.compactRev; r <= s; r++) expect(stateAt(b, asRev(r)), `rev ${r}`).toEqual(stateAt(a, asRev(r)));

      // The installed brick goes on from the snapshot: the next entry applies on top of it.
      await b.write({ promise: { epoch: asEpoch(1), grantee: 'holder-1' } });
      for (let r = s + 1; r <= a.commitRev; r++) {
        await b.write({ append: [a.entry(asRev(r)) as Entry], commitRev: asRev(r) });
      }
      await b.settle();
      for (let r = b.compactRev; r <= a.commitRev; r++) expect(stateAt(b, asRev(r)), `rev ${r} after catching up`).toEqual(stateAt(a, asRev(r)));
      expect(b.countKeys()).toBe(a.countKeys());
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe.each(ENGINES)('snapshots on %s', (engine) => {
  it('spans several chunks with large values and still installs exactly', async () => {
    const a = await openFresh(engine, B1);
    const b = await openFresh(engine, B2);
    try {
      const w = await LogWriter.start(a, 2);
      await buildHistory(w, { entries: 40, seed: 11, valueBytes: 64 * 1024 });
      const chunks = await collect(exportSnapshot(a, a.commitRev));
      expect(chunks.filter((c) => c.kind === 'versions').length).toBeGreaterThan(1);
      expect(await importSnapshot(b, chunks)).toBe(true);
      expect(b.compactRev).toBe(a.compactRev);
      for (let r = a.compactRev; r <= a.commitRev; r++) expect(stateAt(b, asRev(r)), `rev ${r}`).toEqual(stateAt(a, asRev(r)));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('refuses a damaged stream and leaves the brick as it was', async () => {
    const a = await openFresh(engine, B1);
    const b = await openFresh(engine, B2);
    try {
      const w = await LogWriter.start(a, 1);
      await buildHistory(w, { entries: 30, seed: 3 });
      const good = await collect(exportSnapshot(a, a.commitRev));
      const end = good[good.length - 1] as Extract<SnapshotChunk, { kind: 'end' }>;
      expect(end.kind).toBe('end');
      const versions = good.find((c): c is Extract<SnapshotChunk, { kind: 'versions' }> => c.kind === 'versions');
      expect(versions).toBeDefined();
      const items = versions?.items ?? [];
      const withLive = items.findIndex((i) => i.v.v !== undefined && i.v.v.byteLength > 0);
      expect(withLive).toBeGreaterThanOrEqual(0);

      const tamperedDigest = [...good.slice(0, -1), { ...end, digest: 'f'.repeat(64) }];
      const flipped = items.map((i, n) => (n === withLive ? { ...i, v: { ...i.v, v: Buffer.from(i.v.v as Uint8Array).map((x) => x ^ 1) } } : i));
      const tamperedValue = good.map((c) => (c === versions ? { kind: 'versions' as const, items: flipped } : c));
      const droppedVersion = good.map((c) => (c === versions ? { kind: 'versions' as const, items: items.slice(1) } : c));
      for (const [what, stream] of [['digest', tamperedDigest], ['value', tamperedValue], ['missing version', droppedVersion]] as const) {
        const err = await refusal(importSnapshot(b, stream));
        expect(err.message, what).toMatch(/damaged|digest/);
        expect(b.commitRev, what).toBe(1);
        expect(b.compactRev, what).toBe(0);
        expect([...b.scan({ start: '', end: undefined }, b.commitRev)], what).toEqual([]);
      }
      // The same brick still takes the intact stream afterwards.
      expect(await importSnapshot(b, good)).toBe(true);
      expect(stateAt(b, a.commitRev)).toEqual(stateAt(a, a.commitRev));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("refuses another volume's snapshot with store-invalid", async () => {
    const other = await openFresh(engine, B1, { ...CONFIG, volumeName: 'other' });
    const b = await openFresh(engine, B2);
    try {
      const w = await LogWriter.start(other, 1);
      await w.put('/a', 'theirs');
      const err = await refusal(importSnapshot(b, await collect(exportSnapshot(other, other.commitRev))));
      expect(err.code).toBe('store-invalid');
      expect(b.commitRev).toBe(1);
      expect(b.get('/a', b.commitRev)).toBeUndefined();
    } finally {
      await other.close();
      await b.close();
    }
  });

  it('exports only revs in [compactRev, commitRev], and ignores a snapshot at or below commitRev', async () => {
    const a = await openFresh(engine, B1);
    const b = await openFresh(engine, B2);
    try {
      const w = await LogWriter.start(a, 1);
      for (let i = 0; i < 6; i++) await w.put(`/k${i % 2}`, `v${i}`);
      await w.entry([{ compact: 4 }]);
      expect((await refusal(collect(exportSnapshot(a, asRev(a.commitRev + 1))))).code).toBe('future-rev');
      expect((await refusal(collect(exportSnapshot(a, asRev(3))))).code).toBe('compacted');
      // b already holds more than this snapshot: nothing changes.
      const bw = await LogWriter.start(b, 1);
      for (let i = 0; i < 10; i++) await bw.put('/mine', `m${i}`);
      expect(await importSnapshot(b, await collect(exportSnapshot(a, asRev(5))))).toBe(false);
      expect(b.commitRev).toBe(11);
      expect(Buffer.from(b.get('/mine', b.commitRev)?.value ?? []).toString()).toBe('m9');
      expect(b.get('/k0', b.commitRev)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });
});

// --- reopening -------------------------------------------------------------------------------------

/** A brick and how to open it again: LMDB closes and reopens its directory; memory opens a new store over the same engine. */
interface Reopenable {
  readonly store: BrickStore;
  reopen(opts?: { config?: VolumeConfig; brick?: string }): Promise<BrickStore>;
}

async function reopenable(engine: EngineName): Promise<Reopenable> {
  if (engine === 'memory') {
    const store = await openMemoryBrick({ config: CONFIG, brick: B1, create: true });
    return { store, reopen: (o = {}) => openBrick(store.engine, { config: o.config ?? CONFIG, brick: o.brick ?? B1, create: false }) };
  }
  const dir = await tempDir();
  const store = await openLmdbBrick({ dir, fsync: false, config: CONFIG, brick: B1, create: true });
  return {
    store,
    reopen: async (o = {}) => {
      await store.close();
      return openLmdbBrick({ dir, fsync: false, config: o.config ?? CONFIG, brick: o.brick ?? B1, create: false });
    },
  };
}

describe.each(ENGINES)('reopening a %s brick', (engine) => {
  it('keeps the promise, the log (committed and not), commitRev and compactRev', async () => {
    const r = await reopenable(engine);
    const a = r.store;
    const w = await LogWriter.start(a, 5, 'holder-5');
    const written: Entry[] = [];
    for (let i = 0; i < 8; i++) written.push(await w.put(i % 3 === 0 ? LONG + '1' : `/k${i % 3}`, `v${i}`));
    written.push(await w.entry([{ compact: 6 }]));
    written.push(await w.entry([{ del: '/k1' }, { put: '/\u{1F600}', value: Buffer.from('x') }]));
    // Two entries appended but not committed.
    const pending = [await w.entry([{ put: '/late', value: Buffer.from('1') }], false)];
    pending.push(await w.entry([{ del: '/k2' }], false));
    await a.settle();
    const before = { commit: a.commitRev, last: a.last, compact: a.compactRev, state: stateAt(a, a.commitRev), history: stateAt(a, asRev(7)) };

    const b = await r.reopen();
    try {
      expect(b.promisedEpoch).toBe(5);
      expect(b.grantee).toBe('holder-5');
      expect(b.identity).toEqual(a.identity);
      expect(b.commitRev).toBe(before.commit);
      expect(b.commitRev).toBe(11);
      expect(b.last).toEqual({ epoch: 5, rev: 13 });
      expect(b.compactRev).toBe(6);
      expect(b.firstRev).toBe(1);
      expect(b.entry(asRev(1))?.effects).toEqual([{ t: 'config', config: CONFIG }]);
      for (const e of [...written, ...pending]) expect(plainEntry(b.entry(e.rev)), `entry ${e.rev}`).toEqual(plainEntry(e));
      expect(stateAt(b, b.commitRev)).toEqual(before.state);
      expect(stateAt(b, asRev(7))).toEqual(before.history);
      // The uncommitted entries are still there to commit.
      expect(b.get('/late', b.commitRev)).toBeUndefined();
      await b.write({ commitRev: asRev(13) });
      expect(Buffer.from(b.get('/late', asRev(13))?.value ?? []).toString()).toBe('1');
      expect(b.get('/k2', asRev(13))).toBeUndefined();
      expect(b.get('/k2', asRev(12))?.version).toBeGreaterThan(0);
    } finally {
      await b.close();
    }
  });

  it('refuses another config with store-invalid naming the field that differs', async () => {
    const r = await reopenable(engine);
    await (await LogWriter.start(r.store, 1)).put('/a', 'x');
    const cases: [VolumeConfig, RegExp][] = [
      [{ ...CONFIG, quorumCount: 1 }, /quorum-count 2 ≠ 1/],
      [{ ...CONFIG, volumeName: 'w' }, /volume name "v" ≠ "w"/],
      [{ ...CONFIG, bricks: [B1, B2, 'h3:/b3'] }, /bricks \[h1:\/b1,h2:\/b2\] ≠ \[h1:\/b1,h2:\/b2,h3:\/b3\]/],
    ];
    for (const [config, field] of cases) {
      const err = await refusal(r.reopen({ config }));
      expect(err.code).toBe('store-invalid');
      expect(err.message).toMatch(field);
    }
    // The same volume but another of its bricks: a different brick id.
    const other = await refusal(r.reopen({ brick: B2 }));
    expect(other.code).toBe('store-invalid');
    expect(other.message).toContain(B2);
    // Refusals leave the brick (and its directory lock) usable with the right config.
    const ok = await r.reopen();
    try {
      expect(Buffer.from(ok.get('/a', ok.commitRev)?.value ?? []).toString()).toBe('x');
    } finally {
      await ok.close();
    }
  });

  it('creates a brick only for a brick of the config, and only when asked to', async () => {
    const notMine = await refusal(openFreshWith(engine, { brick: 'h3:/b3', create: true }));
    expect(notMine.code).toBe('store-invalid');
    expect(notMine.message).toContain('h3:/b3');
    const empty = await refusal(openFreshWith(engine, { brick: B1, create: false }));
    expect(empty.code).toBe('store-invalid');
  });
});

async function openFreshWith(engine: EngineName, o: { brick: string; create: boolean }): Promise<BrickStore> {
  if (engine === 'memory') return openMemoryBrick({ config: CONFIG, brick: o.brick, create: o.create });
  return openLmdbBrick({ dir: await tempDir(), fsync: false, config: CONFIG, brick: o.brick, create: o.create });
}

// --- directories a brick refuses -------------------------------------------------------------------

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Opens an LMDB brick in `dir` in a child process, so a crash of the native LMDB binding cannot
 * take the test worker down. Returns what the child printed and how it ended.
 */
function openInChild(dir: string): { status: number | null; signal: string | null; out: string } {
  const storeModule = pathToFileURL(join(ROOT, 'store/index.ts')).href;
  const code = `
    const { openLmdbBrick } = await import(${JSON.stringify(storeModule)});
    try {
      const s = await openLmdbBrick({ dir: ${JSON.stringify(dir)}, fsync: false, config: ${JSON.stringify(CONFIG)}, brick: ${JSON.stringify(B1)}, create: true });
      await s.close();
      console.log('RESULT opened');
    } catch (e) {
      console.log('RESULT ' + (e && e.code ? e.code : 'not a CoordError: ' + e));
    }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}`.trim() };
}

describe('opening an LMDB brick directory', () => {
  it('(control) the child-process harness opens an empty directory', async () => {
    const r = openInChild(await tempDir());
    expect(r).toMatchObject({ status: 0, signal: null });
    expect(r.out).toContain('RESULT opened');
  }, 40_000);

  // Regression: lmdb-js segfaults the process on a file that is not LMDB; the engine checks the
  // meta page's magic first. Run in a child so a crash could not take the worker down.
  it.each(['log.mdb', 'state.mdb'])('refuses a %s that is not LMDB (random bytes) with store-invalid', async (file) => {
    const dir = await tempDir();
    await writeFile(join(dir, file), randomBytes(4096));
    const r = openInChild(dir);
    expect(r, r.out).toMatchObject({ status: 0, signal: null });
    expect(r.out).toContain('RESULT store-invalid');
  }, 40_000);

  it.each(['log.mdb', 'state.mdb'])('refuses a %s LMDB environment holding foreign data', async (file) => {
    const dir = await tempDir();
    const env = openLmdbEnv({ path: join(dir, file) });
    env.putSync('x', 1);
    await env.close();
    const err = await refusal(openLmdbBrick({ dir, fsync: false, config: CONFIG, brick: B1, create: true }));
    expect(err.code).toBe('store-invalid');
    expect(err.message).toMatch(/not a coordvol brick/);
    // The refusal released the directory: the same refusal again, not "in use".
    expect((await refusal(openLmdbBrick({ dir, fsync: false, config: CONFIG, brick: B1, create: true }))).message).toMatch(/not a coordvol brick/);
  });

  // Regression: foreign data under a key named like one of the brick's tables was taken for an
  // empty store. A table's root entry reads as undefined; a plain key reads as its value.
  it.each(['log.mdb', 'state.mdb'])('refuses foreign data in %s stored under a key named like a brick table', async (file) => {
    const dir = await tempDir();
    const env = openLmdbEnv({ path: join(dir, file) });
    env.putSync('meta', 1);
    await env.close();
    const err = await refusal(
      openLmdbBrick({ dir, fsync: false, config: CONFIG, brick: B1, create: true }).then(async (s) => {
        await s.close();
        return s;
      }),
    );
    expect(err.code).toBe('store-invalid');
  });

  it('refuses a second open of a directory that is in use, until the first closes', async () => {
    const dir = await tempDir();
    const first = await openLmdbBrick({ dir, fsync: false, config: CONFIG, brick: B1, create: true });
    await (await LogWriter.start(first, 1)).put('/a', 'x');
    const err = await refusal(openLmdbBrick({ dir, fsync: false, config: CONFIG, brick: B1, create: true }));
    expect(err.code).toBe('store-invalid');
    expect(err.message).toMatch(/in use|already open/);
    // The refused open did not disturb the first.
    expect(Buffer.from(first.get('/a', first.commitRev)?.value ?? []).toString()).toBe('x');
    await (await LogWriter.start(first, 2)).put('/b', 'y');
    await first.close();
    const again = await openLmdbBrick({ dir, fsync: false, config: CONFIG, brick: B1, create: false });
    try {
      expect(again.commitRev).toBe(3);
      expect(again.promisedEpoch).toBe(2);
    } finally {
      await again.close();
    }
  });
});
