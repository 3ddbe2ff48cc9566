// Snapshot heals on real bricks (DESIGN §4.8): a source brick's committed state streamed by the
// holder's carrier (cluster/snapshot-sender.ts) into a target brick's features/locks
// (features/snapshot-intake.ts), in process and over protocol/client ↔ protocol/server.
//  - the installed state reads the same as the source's at every rev it keeps, and the brick
//    goes on from s with ordinary appends;
//  - a stream of an older epoch is fenced and changes nothing; a fence in mid-stream ends it;
//  - a snapshot at or below the brick's commitRev is ignored (and cut short by the carrier);
//  - chunks out of seq order, of an unknown transfer, or naming another snapshot are refused
//    with a typed error and change nothing; a newer transfer aborts an older one;
//  - a damaged stream answers `failed` and leaves the brick as it was;
//  - watches whose cursor the install passes end `moved`; one waiting above s goes on;
//  - the wire check of snapshotChunk args.
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type CoordError } from '../../src/common/errors.js';
import { asEpoch, asRev, asSessionId, type Epoch, type Rev } from '../../src/common/ids.js';
import { exportSnapshot, openLmdbBrick, type BrickStore, type Effect, type Entry, type KeyRecord, type SnapshotChunk, type VolumeConfig } from '../../store/index.js';
import { SnapshotSender } from '../../translators/cluster/snapshot-sender.js';
import { createRegistry } from '../../translators/graph.js';
import { buildGraph, ProtocolClientTranslator, registry, type Clock, type Graph, type ProtocolServerTranslator, type Translator } from '../../translators/index.js';
import type { SharedWatchEvent, SnapshotChunkFopArgs, SnapshotChunkFopResult, WatchSink } from '../../translators/fops.js';
import { checkRequest } from '../../translators/protocol/requests.js';
import { StorageTranslator } from '../../translators/storage/brick.js';
import { Translator as BaseTranslator, type TranslatorClass, type TranslatorSpec } from '../../translators/translator.js';
import { refusal } from './helpers.js';

const BRICKS = ['h1:/b', 'h2:/b', 'h3:/b'];
/** The config the storage options below make (volume-name default coordvol, a majority quorum). */
const CONFIG: VolumeConfig = { volumeName: 'coordvol', bricks: BRICKS, quorumCount: 2 };
const LEASE_MS = 1_000;
const HOLDER = 'holder-1';

class HandClock implements Clock {
  t = 1_000;
  nowMs(): number {
    return this.t;
  }
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coordvol-snapheal-'));
  dirs.push(d);
  return d;
}
const graphs: Graph[] = [];
const stores: BrickStore[] = [];
afterEach(async () => {
  for (const g of graphs.splice(0)) await g.fini();
  for (const s of stores.splice(0)) await s.close();
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

// ---- the source: a brick with a history (puts, deletes, large values, a compaction)

const KEYS = ['/a', '/a/b', '/b', '/c/' + 'x'.repeat(1950), '/d'];

async function source(o: { entries: number; valueBytes: number }): Promise<BrickStore> {
  const s = await openLmdbBrick({ dir: await tempDir(), fsync: false, config: CONFIG, brick: 'h1:/b', create: true });
  stores.push(s);
  await s.write({ promise: { epoch: asEpoch(1), grantee: HOLDER } });
  for (let i = 0; i < o.entries; i++) {
    const rev = asRev(s.last.rev + 1);
    const key = KEYS[i % KEYS.length] as string;
    let fx: Effect;
    if (i === Math.floor(o.entries / 2)) fx = { t: 'compact', rev: asRev(rev - 5) };
    else if (i % 7 === 6 && s.get(key, s.commitRev)) fx = { t: 'del', key };
    else {
      const old = s.get(key, s.commitRev);
      const value = Buffer.alloc(i % 3 === 0 ? o.valueBytes : 3, i % 251);
      fx = { t: 'put', key, value, createRev: old ? old.createRev : rev, version: old ? old.version + 1 : 1, session: asSessionId(0) };
    }
    // Each entry carries the holder's session clock (DESIGN §5); a snapshot carries entry s's.
    await s.write({ append: [{ epoch: asEpoch(1), rev, effects: [fx], sclock: 10_000 + 7 * i }], commitRev: rev });
  }
  await s.settle();
  return s;
}

function plain(r: KeyRecord | undefined): unknown {
  return r && { ...r, value: Buffer.from(r.value).toString('hex') };
}

/** Everything readable at `rev`: each key, and a scan of all. */
function stateAt(s: BrickStore, rev: Rev): unknown {
  return {
    gets: KEYS.map((k) => plain(s.get(k, rev))),
    scan: [...s.scan({ start: '', end: undefined }, rev)].map((i) => ({ key: i.key, record: plain(i.record) })),
  };
}

function expectSameState(target: BrickStore, src: BrickStore, s: Rev): void {
  expect(target.commitRev).toBe(s);
  expect(target.compactRev).toBe(src.compactRev);
  expect(target.config).toEqual(src.config);
  expect(target.logConfig).toEqual(src.config);
  for (let r = src.compactRev; r <= s; r++) expect(stateAt(target, asRev(r)), `rev ${r}`).toEqual(stateAt(src, asRev(r)));
}

async function collect(s: BrickStore, rev: Rev): Promise<SnapshotChunk[]> {
  const out: SnapshotChunk[] = [];
  for await (const c of exportSnapshot(s, rev)) out.push(c);
  return out;
}

// ---- the target: features/locks (and features/watch) on a brick of the same volume

interface Target {
  readonly graph: Graph;
  readonly top: Translator;
  readonly clock: HandClock;
  readonly store: BrickStore;
  dump(): Record<string, unknown>;
}

async function target(o: { engine?: 'memory' | 'lmdb'; watch?: boolean } = {}): Promise<Target> {
  const clock = new HandClock();
  const storage = o.engine === 'lmdb' ? `    type storage/lmdb\n    option directory ${await tempDir()}\n    option fsync off\n` : '    type storage/memory\n';
  const volfile = `volume b\n${storage}    option brick h2:/b\n    option volume-bricks ${BRICKS.join(' ')}\nend-volume\n\n` +
    `volume l\n    type features/locks\n    option lease-ms ${LEASE_MS}ms\n    subvolumes b\nend-volume\n` +
    (o.watch ? `\nvolume w\n    type features/watch\n    subvolumes l\nend-volume\n` : '');
  const graph = buildGraph(volfile, { file: 'snapheal.vol', registry, env: { clock, baseDir: '/tmp' } });
  await graph.init();
  graphs.push(graph);
  const storageT = graph.translators.find((t) => t instanceof StorageTranslator) as StorageTranslator;
  const locks = graph.translators.find((t) => t.type === 'features/locks') as Translator;
  return { graph, top: graph.top, clock, get store() { return storageT.store; }, dump: () => ({ ...locks.dump() }) };
}

const sender = (src: BrickStore, clock: Clock = new HandClock()): SnapshotSender => new SnapshotSender({ clock, store: () => src, chunkTimeoutMs: 10_000 });

/** Chunk `seq` of a hand-driven transfer. */
function chunkArgs(chunks: readonly SnapshotChunk[], seq: number, o: { transfer?: string; epoch?: number; rev?: Rev; revEpoch?: number; chunk?: SnapshotChunk } = {}): SnapshotChunkFopArgs {
  const header = chunks[0] as Extract<SnapshotChunk, { kind: 'header' }>;
  return {
    epoch: asEpoch(o.epoch ?? 1),
    sender: HOLDER,
    rev: o.rev ?? header.rev,
    revEpoch: asEpoch(o.revEpoch ?? header.epoch),
    transfer: o.transfer ?? 't1',
    seq,
    chunk: o.chunk ?? (chunks[seq] as SnapshotChunk),
  };
}

const sendChunk = (t: Target, a: SnapshotChunkFopArgs): Promise<SnapshotChunkFopResult> => t.top.call('snapshotChunk', {}, a);

/** Appends source entries [from, to] to the target at epoch 1, committing them. */
async function appendFrom(t: Target, src: BrickStore, from: number, to: number, prev: { epoch: Epoch; rev: Rev }): Promise<void> {
  const entries: Entry[] = [];
  for (let r = from; r <= to; r++) entries.push(src.entry(asRev(r)) as Entry);
  const res = await t.top.call('append', {}, { epoch: asEpoch(1), sender: HOLDER, prevEpoch: prev.epoch, prevRev: prev.rev, entries, commitRev: asRev(to) });
  expect(res).toMatchObject({ ok: true, lastRev: to });
}

describe.each(['memory', 'lmdb'] as const)('a snapshot heal into a %s brick', (engine) => {
  it('installs the source state at s: every rev it keeps reads the same, and the brick goes on from s', async () => {
    const src = await source({ entries: 60, valueBytes: 256 * 1024 });
    const s = src.commitRev;
    const t = await target({ engine });
    const carrier = sender(src);
    const res = await carrier.send('h2', t.top, { epoch: asEpoch(1), sender: HOLDER });
    expect(res).toEqual({ ok: true, lastRev: s, commitRev: s });
    // Several chunks: the large values kept are over 2 MiB.
    const done = (carrier.dump()['finished'] as Record<string, { versionsSent: number }>)['h2'];
    expect(done?.versionsSent).toBeGreaterThan(20);
    expect(t.dump()).toMatchObject({ promisedEpoch: 1, snapshotsInstalled: 1, snapshotTransfer: null, snapshotStats: { installed: 1, failed: 0 } });
    expectSameState(t.store, src, s);
    expect(t.store.last).toEqual({ epoch: 1, rev: s });
    expect(t.store.firstRev).toBe(s + 1);
    // No entry is left at s, yet its session clock is known (features/locks grants report it as
    // the last entry's), so a holder healed from this brick does not start its session clock an
    // epoch behind (DESIGN §5).
    expect(src.entry(s)?.sclock).toBeGreaterThan(10_000);
    expect(t.store.entry(s)).toBeUndefined();
    expect(t.store.sclockAt(s)).toBe(src.entry(s)?.sclock);

    // The next entries apply on top of the snapshot, as ordinary appends after (1, s).
    for (let i = 0; i < 3; i++) {
      const rev = asRev(src.last.rev + 1);
      await src.write({ append: [{ epoch: asEpoch(1), rev, effects: [{ t: 'put', key: '/after', value: Buffer.from(`v${i}`), createRev: asRev(s + 1), version: i + 1, session: asSessionId(0) }] }], commitRev: rev });
    }
    await appendFrom(t, src, s + 1, src.commitRev, { epoch: asEpoch(1), rev: s });
    expect(stateAt(t.store, src.commitRev)).toEqual(stateAt(src, src.commitRev));
    expect(Buffer.from(t.store.get('/after', src.commitRev)?.value ?? []).toString()).toBe('v2');
  }, 30_000);
});

/** Passes every fop to the target, noting the carrier's progress as each chunk goes by. */
class Tap extends BaseTranslator {
  readonly seen: unknown[] = [];
  constructor(below: Translator, carrier: () => SnapshotSender) {
    super({ name: 'tap', type: 'test/tap', options: {}, children: [below], env: below.env });
    this.handlers.snapshotChunk = (ctx, a) => {
      this.seen.push(carrier().progress('h2'));
      return this.wind('snapshotChunk', ctx, a);
    };
  }
}

describe('the carrier', () => {
  it('reports progress while it streams, runs one transfer per target, and answers every request for it', async () => {
    const src = await source({ entries: 40, valueBytes: 512 * 1024 });
    const s = src.commitRev;
    const t = await target();
    const clock = new HandClock();
    const carrier = sender(src, clock);
    const tap = new Tap(t.top, () => carrier);
    const first = carrier.send('h2', tap, { epoch: asEpoch(1), sender: HOLDER });
    clock.t += 250;
    const again = carrier.send('h2', tap, { epoch: asEpoch(1), sender: HOLDER }); // the holder asks again: the same transfer answers
    const [a, b] = await Promise.all([first, again]);
    expect(a).toEqual({ ok: true, lastRev: s, commitRev: s });
    expect(b).toEqual(a);
    expect(t.dump()).toMatchObject({ snapshotStats: { transfers: 1, installed: 1 } });
    const seen = tap.seen as { rev: number; versionsSent: number; chunksSent: number; bytesSent: number; elapsedMs: number }[];
    expect(seen.length).toBeGreaterThanOrEqual(4);
    expect(seen.map((p) => p.chunksSent)).toEqual(seen.map((_, i) => i));
    expect(seen.every((p) => p.rev === s && p.elapsedMs === 250)).toBe(true);
    expect(seen[0]?.versionsSent).toBe(0);
    const lastSeen = seen[seen.length - 1];
    expect(lastSeen?.versionsSent).toBeGreaterThan(0);
    expect(lastSeen?.bytesSent).toBeGreaterThan(2 * 1024 * 1024);
    expect(carrier.progress('h2')).toBeUndefined();
  }, 30_000);
});

describe('snapshot heals: refusals', () => {
  it('a stream of an older epoch is fenced and changes nothing; a fence in mid-stream ends the transfer', async () => {
    const src = await source({ entries: 40, valueBytes: 512 * 1024 });
    const t = await target();
    t.clock.t += 2 * LEASE_MS; // the start-up lease has lapsed: another candidate may lock
    expect(await t.top.call('lock', {}, { epoch: asEpoch(5), candidate: 'other' })).toMatchObject({ granted: true });

    const res = await sender(src).send('h2', t.top, { epoch: asEpoch(1), sender: HOLDER });
    expect(res).toEqual({ ok: false, reason: 'fenced', promisedEpoch: 5 });
    expect(t.store.commitRev).toBe(1);
    expect(t.store.promisedEpoch).toBe(5);
    expect(t.store.countKeys()).toBe(0);
    expect(t.dump()).toMatchObject({ snapshotTransfer: null, snapshotStats: { fenced: 1, transfers: 0 } });

    // At the promised epoch it goes on, until a higher epoch is promised in mid-stream.
    const chunks = await collect(src, src.commitRev);
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    expect(await sendChunk(t, chunkArgs(chunks, 0, { epoch: 5 }))).toEqual({ ok: true, wanted: true });
    expect(await sendChunk(t, chunkArgs(chunks, 1, { epoch: 5 }))).toEqual({ ok: true, wanted: true });
    t.clock.t += 2 * LEASE_MS; // the chunks' lease (like an append's) has lapsed
    expect(await t.top.call('lock', {}, { epoch: asEpoch(6), candidate: 'other' })).toMatchObject({ granted: true });
    expect(await sendChunk(t, chunkArgs(chunks, 2, { epoch: 5 }))).toEqual({ ok: false, reason: 'fenced', promisedEpoch: 6 });
    // The transfer is over: its next chunk belongs to no transfer.
    const r = await refusal(sendChunk(t, chunkArgs(chunks, 3, { epoch: 5 })));
    expect(r.code).toBe('invalid-argument');
    expect(r.message).toMatch(/no such transfer/);
    expect(t.store.commitRev).toBe(1);
    expect(t.store.countKeys()).toBe(0);
  }, 30_000);

  it('a chunk lease counts as hearing from the holder, like an append', async () => {
    const src = await source({ entries: 10, valueBytes: 16 });
    const t = await target();
    const chunks = await collect(src, src.commitRev);
    t.clock.t += 500;
    await sendChunk(t, chunkArgs(chunks, 0));
    // The lease record names the sender until now + leaseMs: a candidate is refused meanwhile.
    t.clock.t += LEASE_MS - 1;
    expect(await t.top.call('lock', {}, { epoch: asEpoch(2), candidate: 'other' })).toEqual({ granted: false, promisedEpoch: 1, reason: 'lease' });
    expect(t.dump()).toMatchObject({ heardAgoMs: LEASE_MS - 1 });
  });

  it('a snapshot at or below the brick commitRev is ignored: the carrier cuts the stream short and nothing changes', async () => {
    const src = await source({ entries: 30, valueBytes: 64 });
    const t = await target();
    await appendFrom(t, src, 2, src.commitRev, { epoch: asEpoch(0), rev: asRev(1) });
    const before = { last: t.store.last, firstRev: t.store.firstRev, state: stateAt(t.store, t.store.commitRev) };
    const carrier = sender(src);
    const res = await carrier.send('h2', t.top, { epoch: asEpoch(1), sender: HOLDER });
    expect(res).toEqual({ ok: true, lastRev: src.commitRev, commitRev: src.commitRev });
    expect((carrier.dump()['finished'] as Record<string, unknown>)['h2']).toMatchObject({ versionsSent: 0 });
    expect(t.dump()).toMatchObject({ snapshotsInstalled: 0, snapshotStats: { ignored: 1, installed: 0 } });
    expect({ last: t.store.last, firstRev: t.store.firstRev, state: stateAt(t.store, t.store.commitRev) }).toEqual(before);
  });

  it('chunks out of seq order, of an unknown transfer or naming another snapshot are refused and change nothing', async () => {
    const src = await source({ entries: 40, valueBytes: 512 * 1024 });
    const s = src.commitRev;
    const t = await target();
    const chunks = await collect(src, s);
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    expect(await sendChunk(t, chunkArgs(chunks, 0))).toEqual({ ok: true, wanted: true });
    const refused = async (a: SnapshotChunkFopArgs, why: RegExp): Promise<void> => {
      const r = await refusal(sendChunk(t, a));
      expect(r.code).toBe('invalid-argument');
      expect(r.message).toMatch(why);
    };
    await refused(chunkArgs(chunks, 2), /expected chunk 1/);
    await refused(chunkArgs(chunks, 1, { transfer: 'nope' }), /no such transfer/);
    await refused(chunkArgs(chunks, 0), /begun already/);
    await refused(chunkArgs(chunks, 1, { rev: asRev(s - 1) }), /names/);
    // Another epoch: refused before the acceptor sees it, so no epoch is adopted.
    await refused(chunkArgs(chunks, 1, { epoch: 9 }), /names/);
    expect(t.store.promisedEpoch).toBe(1);
    expect(t.store.commitRev).toBe(1);
    // The transfer goes on from where it was.
    for (let seq = 1; seq < chunks.length - 1; seq++) expect(await sendChunk(t, chunkArgs(chunks, seq))).toEqual({ ok: true, wanted: true });
    expect(await sendChunk(t, chunkArgs(chunks, chunks.length - 1))).toEqual({ ok: true, lastRev: s, commitRev: s });
    expectSameState(t.store, src, s);
    expect(t.dump()).toMatchObject({ snapshotStats: { refusedChunks: 5, installed: 1 } });
  }, 30_000);

  it('requests arriving while a snapshot installs wait for it, and are decided on the installed log', async () => {
    const src = await source({ entries: 20, valueBytes: 64 });
    const s = src.commitRev;
    const t = await target();
    const chunks = await collect(src, s);
    const last = chunks.length - 1;
    for (let seq = 0; seq < last; seq++) await sendChunk(t, chunkArgs(chunks, seq));
    // A heartbeat after (1, s), sent while the end chunk installs: decided before the install it
    // would find no entry s (a mismatch); after it, s is the log's base.
    const ending = sendChunk(t, chunkArgs(chunks, last));
    const heartbeat = t.top.call('append', {}, { epoch: asEpoch(1), sender: HOLDER, prevEpoch: asEpoch(1), prevRev: s, entries: [], commitRev: s });
    const [end, hb] = await Promise.all([ending, heartbeat]);
    expect(end).toEqual({ ok: true, lastRev: s, commitRev: s });
    expect(hb).toEqual({ ok: true, lastRev: s, commitRev: s });
  });

  it('a newer transfer aborts an older unfinished one', async () => {
    const src = await source({ entries: 40, valueBytes: 512 * 1024 });
    const t = await target();
    const chunks = await collect(src, src.commitRev);
    expect(await sendChunk(t, chunkArgs(chunks, 0, { transfer: 'old' }))).toEqual({ ok: true, wanted: true });
    expect(await sendChunk(t, chunkArgs(chunks, 1, { transfer: 'old' }))).toEqual({ ok: true, wanted: true });
    expect(await sender(src).send('h2', t.top, { epoch: asEpoch(1), sender: HOLDER })).toEqual({ ok: true, lastRev: src.commitRev, commitRev: src.commitRev });
    const r = await refusal(sendChunk(t, chunkArgs(chunks, 2, { transfer: 'old' })));
    expect(r.message).toMatch(/no such transfer/);
    expectSameState(t.store, src, src.commitRev);
    expect(t.dump()).toMatchObject({ snapshotStats: { aborted: 1, installed: 1 } });
  }, 30_000);

  it('a damaged stream answers failed and leaves the brick as it was; an intact one installs after it', async () => {
    const src = await source({ entries: 30, valueBytes: 64 });
    const s = src.commitRev;
    const t = await target();
    const chunks = await collect(src, s);
    const last = chunks.length - 1;
    const end = chunks[last] as Extract<SnapshotChunk, { kind: 'end' }>;
    for (let seq = 0; seq < last; seq++) expect(await sendChunk(t, chunkArgs(chunks, seq, { transfer: 'bad' }))).toMatchObject({ ok: true, wanted: true });
    const res = await sendChunk(t, chunkArgs(chunks, last, { transfer: 'bad', chunk: { ...end, digest: 'f'.repeat(64) } }));
    expect(res).toMatchObject({ ok: false, reason: 'failed', message: expect.stringMatching(/damaged/) });
    expect(t.store.commitRev).toBe(1);
    expect(t.store.countKeys()).toBe(0);
    expect(t.dump()).toMatchObject({ snapshotTransfer: null, snapshotStats: { failed: 1 } });
    expect(await sender(src).send('h2', t.top, { epoch: asEpoch(1), sender: HOLDER })).toEqual({ ok: true, lastRev: s, commitRev: s });
    expectSameState(t.store, src, s);
  });

  it("another volume's snapshot fails its transfer (the import refuses the header)", async () => {
    const other = await openLmdbBrick({ dir: await tempDir(), fsync: false, config: { ...CONFIG, volumeName: 'other' }, brick: 'h1:/b', create: true });
    stores.push(other);
    await other.write({ promise: { epoch: asEpoch(1), grantee: HOLDER } });
    await other.write({ append: [{ epoch: asEpoch(1), rev: asRev(2), effects: [{ t: 'put', key: '/x', value: Buffer.from('theirs'), createRev: asRev(2), version: 1, session: asSessionId(0) }] }], commitRev: asRev(2) });
    const t = await target();
    const res = await sender(other).send('h2', t.top, { epoch: asEpoch(1), sender: HOLDER });
    expect(res).toMatchObject({ ok: false, reason: 'failed', message: expect.stringMatching(/volume/) });
    expect(t.store.commitRev).toBe(1);
    expect(t.store.get('/x', t.store.commitRev)).toBeUndefined();
  });
});

// ---- watches

class TestSink implements WatchSink {
  readonly revs: number[] = [];
  readonly keys: string[] = [];
  ended: CoordError | undefined;
  backlogBytes = 0;
  readonly owner = 'test';
  events(rev: Rev, events: readonly SharedWatchEvent[]): void {
    this.revs.push(rev);
    for (const e of events) this.keys.push(`${rev} ${e.event.type} ${e.event.kv.key}`);
  }
  progress(): void {}
  end(error: CoordError): void {
    this.ended = error;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

describe('snapshot heals and watches', () => {
  it('watches whose cursor the install passes end moved with it; one waiting above s goes on; history below s replays', async () => {
    const src = await source({ entries: 40, valueBytes: 32 });
    const s = src.commitRev;
    const t = await target({ watch: true });
    await appendFrom(t, src, 2, 5, { epoch: asEpoch(0), rev: asRev(1) });
    await new Promise((r) => setImmediate(r)); // features/watch fans out a turn after the commit
    const watch = async (fromRev?: number): Promise<TestSink> => {
      const sink = new TestSink();
      await t.top.call('watch', {}, { prefix: '/', ...(fromRev !== undefined ? { fromRev: asRev(fromRev) } : {}), sink });
      return sink;
    };
    const live = await watch(); // cursor 6
    const replayed = await watch(2); // revs 2..5, then live at 6
    const ahead = await watch(s + 2);
    const atS = await watch(s); // waits for rev s: the install passes it too
    await until(() => replayed.revs.length === 4, 'the replay of revs 2..5');

    expect(await sender(src).send('h2', t.top, { epoch: asEpoch(1), sender: HOLDER })).toEqual({ ok: true, lastRev: s, commitRev: s });
    expect([live, replayed, atS].map((w) => [w.ended?.code, w.ended?.details['cursor']])).toEqual([['moved', 6], ['moved', 6], ['moved', s]]);
    expect(ahead.ended).toBeUndefined();

    // The brick goes on from s: the watch waiting above s gets rev s + 2, and only it.
    for (let i = 0; i < 2; i++) {
      const rev = asRev(src.last.rev + 1);
      await src.write({ append: [{ epoch: asEpoch(1), rev, effects: [{ t: 'put', key: `/new${i}`, value: Buffer.from('v'), createRev: rev, version: 1, session: asSessionId(0) }] }], commitRev: rev });
    }
    await appendFrom(t, src, s + 1, s + 2, { epoch: asEpoch(1), rev: s });
    await until(() => ahead.revs.length === 1, 'the event at s + 2');
    expect(ahead.keys).toEqual([`${s + 2} put /new1`]);

    // Revs below s but above the compactRev replay from the installed history tables.
    const from = s - 3;
    const past = await watch(from);
    await until(() => past.revs.includes(s + 2), 'the replay through s + 2');
    const expected: string[] = [];
    for (let r = from; r <= s + 2; r++) {
      for (const fx of (src.entry(asRev(r)) as Entry).effects) {
        if (fx.t === 'put') expected.push(`${r} put ${fx.key}`);
        if (fx.t === 'del') expected.push(`${r} delete ${fx.key}`);
      }
    }
    expect(past.keys).toEqual(expected);
    expect(past.ended).toBeUndefined();
  }, 30_000);
});

// ---- over the wire: protocol/client → protocol/server → features/locks

/** Answers status with a volume, so a protocol/server can sit on a bare brick graph. */
class VolumeIdTranslator extends BaseTranslator {
  constructor(spec: TranslatorSpec) {
    super(spec);
    this.handlers.status = async (ctx) => {
      const below = await this.wind('status', ctx, {});
      return { ...below, volume: { volumeId: 'v', volumeName: 'coordvol', epoch: asEpoch(0), holder: '', commitRev: asRev(0), compactRev: asRev(0), quorum: 2, bricks: [] } };
    };
  }
}
const volumeIdClass: TranslatorClass = { type: 'test/volume-id', options: {}, subvolumes: { min: 1, max: 1 }, create: (spec) => new VolumeIdTranslator(spec) };

describe('snapshot heals over the wire', () => {
  it('a multi-chunk snapshot through protocol/client and protocol/server installs exactly', async () => {
    const src = await source({ entries: 40, valueBytes: 512 * 1024 });
    const dir = await tempDir();
    const volfile = `volume b\n    type storage/memory\n    option brick h2:/b\n    option volume-bricks ${BRICKS.join(' ')}\nend-volume\n\n` +
      `volume l\n    type features/locks\n    subvolumes b\nend-volume\n\n` +
      `volume v\n    type test/volume-id\n    subvolumes l\nend-volume\n\n` +
      `volume srv\n    type protocol/server\n    option listen 127.0.0.1:0\n    subvolumes v\nend-volume\n`;
    const graph = buildGraph(volfile, { file: join(dir, 'brick.vol'), registry: createRegistry([...registry.values(), volumeIdClass]), env: { clock: { nowMs: () => performance.now() }, baseDir: dir } });
    await graph.init();
    graphs.push(graph);
    const port = (graph.top as ProtocolServerTranslator).address.port;
    const client = new ProtocolClientTranslator({
      name: 'to-h2',
      type: 'protocol/client',
      options: { remote: `127.0.0.1:${port}`, tls: false, 'handshake-timeout-ms': 2_000, 'request-timeout-ms': 10_000, 'ping-ms': 5_000, 'ping-timeout-ms': 3_000, 'reconnect-min-ms': 20, 'reconnect-max-ms': 200, 'resend-writes': false },
      children: [],
      env: { clock: { nowMs: () => performance.now() }, baseDir: dir },
    }, { secret: Buffer.from(readFileSync(join(dir, 'secret'), 'utf8').trim(), 'utf8') });
    await client.init();
    try {
      await client.whenOpen(performance.now() + 5_000);
      const carrier = sender(src, { nowMs: () => performance.now() });
      const res = await carrier.send('h2', client, { epoch: asEpoch(1), sender: HOLDER });
      expect(res).toEqual({ ok: true, lastRev: src.commitRev, commitRev: src.commitRev });
      const storageT = graph.translators.find((x) => x instanceof StorageTranslator) as StorageTranslator;
      expectSameState(storageT.store, src, src.commitRev);
    } finally {
      await client.fini();
    }
  }, 30_000);
});

// ---- the wire check of snapshotChunk args

describe('snapshotChunk args off the wire', () => {
  it('copies a real stream exactly and refuses bad shapes with invalid-argument', async () => {
    const src = await source({ entries: 12, valueBytes: 16 });
    const chunks = await collect(src, src.commitRev);
    for (let seq = 0; seq < chunks.length; seq++) {
      const a = chunkArgs(chunks, seq);
      expect(checkRequest('snapshotChunk', { ...a, extra: 1 })).toEqual({ op: 'snapshotChunk', args: a });
    }
    const header = chunks[0] as Extract<SnapshotChunk, { kind: 'header' }>;
    const versions = chunks[1] as Extract<SnapshotChunk, { kind: 'versions' }>;
    const item = versions.items[0] as (typeof versions.items)[number];
    const bad: [string, unknown][] = [
      ['not an object', 7],
      ['no transfer', { ...chunkArgs(chunks, 0), transfer: undefined }],
      ['a header that is not chunk 0', chunkArgs(chunks, 1, { chunk: header })],
      ['chunk 0 that is not a header', chunkArgs(chunks, 0, { chunk: versions })],
      ['a header naming another rev', chunkArgs(chunks, 0, { rev: asRev(header.rev + 1) })],
      ['a header naming another epoch', chunkArgs(chunks, 0, { revEpoch: 0 })],
      ['revEpoch above epoch', chunkArgs(chunks, 1, { revEpoch: 2 })],
      ['a version above s', chunkArgs(chunks, 1, { chunk: { kind: 'versions', items: [{ ...item, rev: header.rev + 1, v: { ...item.v, m: header.rev + 1 } }] } })],
      ['a version whose modRev is not its rev', chunkArgs(chunks, 1, { chunk: { kind: 'versions', items: [{ ...item, v: { ...item.v, m: item.rev + 1 } }] } })],
      ['an empty versions chunk', chunkArgs(chunks, 1, { chunk: { kind: 'versions', items: [] } })],
      ['a bad digest', chunkArgs(chunks, 1, { chunk: { kind: 'end', versions: 1, digest: 'xyz' } })],
      ['an unknown kind', chunkArgs(chunks, 1, { chunk: { kind: 'trailer' } as unknown as SnapshotChunk })],
      ['a negative seq', chunkArgs(chunks, -1)],
    ];
    for (const [what, args] of bad) {
      let code: string | undefined;
      try {
        checkRequest('snapshotChunk', args);
      } catch (e) {
        code = (e as CoordError).code;
      }
      expect(code, what).toBe('invalid-argument');
    }
  });
});
