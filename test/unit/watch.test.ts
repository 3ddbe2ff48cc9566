// Watches through the library on an in-process volume (openVolume), checked against the plain
// model of test/unit/model.ts: 10,000 random writes (puts, deletes, range deletes, txns) with
// watchers started at random revs — far in the past (replayed from the history tables: the brick
// keeps only 500 revs of log), recent, and ahead of the stream — each of which must see exactly
// the events the model's write history makes, rev by rev, with prevKv. Compactions along the way:
// a watch from at or below the compact rev ends `compacted` with that rev, or resyncs. Then a
// slow consumer, progress, getAndWatch and cancel.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openVolume, type EmbeddedVolume, type KeySelector, type KeyValue, type WatchMessage, type Watcher } from '../../src/client/index.js';
import { isCoordError, type CoordError } from '../../src/common/errors.js';
import { compareKeys, prefixEnd } from '../../src/common/keys.js';
import { seededRandom } from '../../src/common/random.js';
import { singleBrickVolfile } from '../../src/daemon/volfiles.js';
import { Model, type ModelCompare, type ModelKv, type ModelSelector, type ModelTxnOp } from './model.js';

const SEED = Number(process.env['WATCH_SEED'] ?? 20_260_331);
const OPS = 10_000;

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The default volfile, with a short log (history replay), small checkpoints and fast progress. */
async function open(watchOptions: Record<string, string> = {}): Promise<EmbeddedVolume> {
  const dir = await mkdtemp(join(tmpdir(), 'coordvol-watch-'));
  dirs.push(dir);
  let text = singleBrickVolfile({ volumeName: 'coordvol', brickDir: 'brick', fsync: false, leaseMs: 10, checkpointEntries: 100 });
  text = text.replace('    type storage/lmdb\n', '    type storage/lmdb\n    option log-retain-revs 500\n');
  const opts = Object.entries(watchOptions).map(([k, v]) => `    option ${k} ${v}\n`).join('');
  text = text.replace('    type features/watch\n', `    type features/watch\n${opts}`);
  const file = join(dir, 'test.vol');
  await writeFile(file, text);
  return openVolume({ dir, volfile: file, timeoutMs: 30_000 });
}

// ---- the expected events, from the model

const PREFIXES = ['/a/', '/a/b/', '/ab', '/b/', '/c/'];
const KEYS = PREFIXES.flatMap((p) => Array.from({ length: 40 }, (_, i) => `${p}${i}`));
const SELECTORS: KeySelector[] = [
  { prefix: '' }, { prefix: '/a/' }, { prefix: '/a/b/' }, { prefix: '/ab' }, { prefix: '/b/' }, { key: '/a/3' }, { key: '/c/17' },
  { start: '/a/5', end: '/b/2' }, { start: '/b/' }, { start: '/', end: '/ab' },
];

function selRange(sel: KeySelector): { start: string; end: string | undefined } {
  if (sel.key !== undefined) return { start: sel.key, end: sel.key + '\u0001' };
  if (sel.prefix !== undefined) return { start: sel.prefix, end: sel.prefix === '' ? undefined : prefixEnd(sel.prefix) };
  return { start: sel.start, end: sel.end };
}
const selects = (sel: KeySelector, key: string): boolean => {
  const r = selRange(sel);
  return compareKeys(key, r.start) >= 0 && (r.end === undefined || compareKeys(key, r.end) < 0);
};

interface Ev {
  readonly type: 'put' | 'delete';
  readonly kv: ModelKv | KeyValue;
  readonly prevKv?: ModelKv | KeyValue | undefined;
}

const txt = (v: Uint8Array | undefined): string => (v === undefined ? '-' : Buffer.from(v).toString());
const kvText = (kv: ModelKv | KeyValue): string => `${kv.key} v=${txt(kv.value)} c=${kv.createRev} m=${kv.modRev} n=${kv.version}`;
const evText = (rev: number, e: Ev, prevKv: boolean): string => `${rev} ${e.type} ${kvText(e.kv)}${prevKv && e.prevKv ? ` prev(${kvText(e.prevKv)})` : ''}`;

/** Replays every write in the model too, and records each new rev's events (all keys). */
class Expected {
  readonly model = new Model();
  readonly byRev = new Map<number, Ev[]>();
  private readonly state = new Map<string, ModelKv>();

  /** After the model applied a write that touched at most `keys`: the events of its rev. */
  record(before: number, keys: Iterable<string>): void {
    const rev = this.model.rev;
    if (rev === before) return;
    const evs: Ev[] = [];
    for (const key of [...new Set(keys)].sort(compareKeys)) {
      const prev = this.state.get(key);
      const now = this.model.get(key).kv;
      if (now && now.modRev === rev) {
        evs.push({ type: 'put', kv: now, prevKv: prev });
        this.state.set(key, now);
      } else if (!now && prev) {
        evs.push({ type: 'delete', kv: { key, createRev: 0, modRev: rev, version: 0, session: 0 }, prevKv: prev });
        this.state.delete(key);
      }
    }
    if (evs.length > 0) this.byRev.set(rev, evs);
  }

  /** The keys of `sel` live at `rev`, replayed from the recorded events (the model refuses reads below its compact rev). */
  stateAt(sel: KeySelector, rev: number): (ModelKv | KeyValue)[] {
    const state = new Map<string, ModelKv | KeyValue>();
    for (let r = 1; r <= rev; r++) {
      for (const e of this.byRev.get(r) ?? []) {
        if (e.type === 'put') state.set(e.kv.key, e.kv);
        else state.delete(e.kv.key);
      }
    }
    return [...state.values()].filter((kv) => selects(sel, kv.key)).sort((a, b) => compareKeys(a.key, b.key));
  }

  liveKeys(sel: KeySelector): string[] {
    return [...this.state.keys()].filter((k) => selects(sel, k));
  }

  /** The lines a watch of `sel` from `from` must have seen, up to `to`. */
  lines(sel: KeySelector, from: number, to: number, prevKv: boolean): string[] {
    const out: string[] = [];
    for (let r = from; r <= to; r++) for (const e of this.byRev.get(r) ?? []) if (selects(sel, e.kv.key)) out.push(evText(r, e, prevKv));
    return out;
  }

  lastRevFor(sel: KeySelector): number {
    let last = 0;
    for (const [r, evs] of this.byRev) if (r > last && evs.some((e) => selects(sel, e.kv.key))) last = r;
    return last;
  }
}

/** A watcher consumed in the background, its messages kept. */
class Consumer {
  readonly messages: WatchMessage[] = [];
  error: CoordError | undefined;
  readonly done: Promise<void>;
  constructor(readonly watcher: Watcher, readonly sel: KeySelector, readonly fromRev: number, readonly prevKv: boolean, readonly resync: boolean) {
    this.done = (async () => {
      try {
        for await (const m of watcher) this.messages.push(m);
      } catch (e) {
        if (!isCoordError(e)) throw e;
        this.error = e;
      }
    })();
  }
  lastRev(): number {
    const m = this.messages.at(-1);
    return m === undefined ? 0 : m.rev;
  }
  lines(): string[] {
    return this.messages.flatMap((m) => (m.kind === 'events' ? m.events.map((e) => evText(m.rev, e, this.prevKv)) : m.kind === 'resync' ? [`resync ${m.rev}`] : []));
  }
}

async function until(cond: () => boolean, what: () => string, ms = 20_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe(`watches against the model (seed ${SEED}: WATCH_SEED=${SEED} npx vitest run test/unit/watch.test.ts)`, () => {
  let vol: EmbeddedVolume;
  beforeAll(async () => {
    vol = await open();
  });
  afterAll(async () => {
    await vol?.close();
  });

  it('10,000 random writes: every watcher sees exactly the model\'s events, in rev order, once', async () => {
    const rnd = seededRandom(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    const x = new Expected();
    const m = x.model;
    const consumers: Consumer[] = [];
    const compactions: number[] = [];
    const start = (fromRev: number, resync = false): void => {
      const sel = pick(SELECTORS);
      const prevKv = rnd() < 0.5;
      consumers.push(new Consumer(vol.watch(sel, { fromRev, prevKv, resync }), sel, fromRev, prevKv, resync));
    };
    for (let i = 0; i < 3; i++) start(3 + i * 2); // from the first write, and ahead of it
    for (let i = 0; i < OPS; i++) {
      const before = m.rev;
      const roll = rnd();
      if (roll < 0.5) {
        const key = pick(KEYS);
        const value = Buffer.from(`v${i}`);
        const r = await vol.put(key, value);
        m.put(key, value);
        x.record(before, [key]);
        expect(r.rev).toBe(m.rev);
      } else if (roll < 0.65) {
        const key = pick(KEYS);
        const r = await vol.delete(key);
        m.delete({ key });
        x.record(before, [key]);
        expect(r.rev).toBe(m.rev);
      } else if (roll < 0.7) {
        const sel: ModelSelector = rnd() < 0.5 ? { prefix: pick(['/a/b/', '/c/', '/ab']) } : { start: pick(KEYS), end: pick(['/b/2', '/c/']) };
        if ('start' in sel && compareKeys(sel.end as string, sel.start) <= 0) continue;
        const doomed = x.liveKeys(sel as KeySelector);
        const r = await vol.delete(sel as KeySelector);
        m.delete(sel);
        x.record(before, doomed);
        expect(r.rev).toBe(m.rev);
      } else {
        const keys = [...new Set(Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => pick(KEYS)))];
        const ops: ModelTxnOp[] = keys.map((k, j) => (rnd() < 0.25 ? { op: 'delete', key: k } : { op: 'put', key: k, value: Buffer.from(`t${i}.${j}`) }));
        const cut = Math.floor(rnd() * ops.length);
        const c = pick(keys);
        const compare: ModelCompare = rnd() < 0.5 ? { key: c, target: 'exists', op: '=', value: rnd() < 0.5 } : { key: c, target: 'version', op: '>', value: Math.floor(rnd() * 3) };
        const t = { compare: [compare], success: ops.slice(cut), failure: ops.slice(0, cut) };
        const r = await vol.txn(t as Parameters<EmbeddedVolume['txn']>[0]);
        const mr = m.txn(t);
        x.record(before, keys);
        expect([r.rev, r.succeeded]).toEqual([mr.rev, mr.succeeded]);
      }
      if (i % 400 === 0) {
        start(m.compactRev + 1 + Math.floor(rnd() * (m.rev - m.compactRev))); // history or recent
        start(m.rev + 1 + Math.floor(rnd() * 3)); // live, or waiting for a rev not yet written
      }
      if (i > 0 && i % 3_000 === 0) {
        const to = m.rev - 200 - Math.floor(rnd() * 400);
        const cr = await vol.compact(to);
        const before2 = m.rev;
        m.compact(to);
        x.record(before2, []);
        expect(cr.rev).toBe(m.rev);
        compactions.push(to);
        start(1 + Math.floor(rnd() * to)); // at or below the compact rev: compacted
        start(1 + Math.floor(rnd() * to), true); // the same, with resync
      }
    }
    const finalRev = m.rev;
    for (const c of consumers) {
      const last = x.lastRevFor(c.sel);
      await until(() => c.error !== undefined || c.lastRev() >= last || last < c.fromRev, () => `watch ${JSON.stringify(c.sel)} from ${c.fromRev}: at ${c.lastRev()} of ${last}`);
    }
    for (const c of consumers) await c.watcher.cancel();
    await Promise.all(consumers.map((c) => c.done));

    let compacted = 0;
    let resynced = 0;
    for (const c of consumers) {
      const got = c.lines();
      const where = `watch ${JSON.stringify(c.sel)} from ${c.fromRev} prevKv ${c.prevKv}`;
      if (c.error) {
        // Only compaction ends a watch here, and only at or below its compact rev: what came
        // before is the model's events, and the stream stopped where compaction caught it.
        expect(c.error.code, where).toBe('compacted');
        const compactRev = c.error.details['compactRev'] as number;
        expect(compactions, where).toContain(compactRev);
        const next = Math.max(c.fromRev, c.lastRev() + 1);
        expect(next, where).toBeLessThanOrEqual(compactRev);
        expect(got, where).toEqual(x.lines(c.sel, c.fromRev, c.lastRev(), c.prevKv));
        compacted++;
        continue;
      }
      const rs = c.messages.findIndex((msg) => msg.kind === 'resync');
      if (rs >= 0) {
        const msg = c.messages[rs] as Extract<WatchMessage, { kind: 'resync' }>;
        expect(c.resync, where).toBe(true);
        expect(msg.kvs.map(kvText), where).toEqual(x.stateAt(c.sel, msg.rev).map(kvText));
        const after = c.messages.slice(rs + 1).flatMap((mm) => (mm.kind === 'events' ? mm.events.map((e) => evText(mm.rev, e, c.prevKv)) : []));
        expect(after, where).toEqual(x.lines(c.sel, msg.rev + 1, finalRev, c.prevKv));
        resynced++;
        continue;
      }
      expect(got, where).toEqual(x.lines(c.sel, c.fromRev, finalRev, c.prevKv));
    }
    // Every stale watch (two per compaction) ended compacted or resynced.
    expect(compacted).toBeGreaterThanOrEqual(compactions.length);
    expect(resynced).toBeGreaterThanOrEqual(compactions.length);
    const dump = (await vol.statedump()).find((d) => d.type === 'features/watch')?.state as Record<string, number>;
    expect(dump['historyWindows']).toBeGreaterThan(0); // some watchers replayed from below the log
    expect(dump['watchers']).toBe(0);
  }, 120_000);
});

describe('watch consumers', () => {
  it('a slow consumer is cancelled (slow-consumer) once its queue passes the cap; writes and other watchers go on', async () => {
    const vol = await open({ 'backlog-bytes-max': '64KB' });
    const slow = vol.watch('/s/');
    const fast = new Consumer(vol.watch('/s/'), { prefix: '/s/' }, 0, false, false);
    const t0 = performance.now();
    let last = 0;
    for (let i = 0; i < 300; i++) last = (await vol.put(`/s/${i % 7}`, 'x'.repeat(1024))).rev;
    const writeMs = performance.now() - t0;
    await until(() => fast.lastRev() === last, () => `fast at ${fast.lastRev()} of ${last}`);
    expect(fast.messages).toHaveLength(300);
    // The slow one gets what was queued before the cap, then the error.
    const got: number[] = [];
    const err = await (async () => {
      try {
        for await (const m of slow) got.push(m.rev);
      } catch (e) {
        return e as CoordError;
      }
      return undefined;
    })();
    expect(err?.code).toBe('slow-consumer');
    expect(got.length).toBeGreaterThan(40);
    expect(got.length).toBeLessThan(300);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => (got[0] as number) + i));
    expect(writeMs).toBeLessThan(20_000);
    await fast.watcher.cancel();
    await vol.close();
  }, 60_000);

  it('progress: an idle watch hears the current rev; getAndWatch misses nothing; cancel ends the iterator', async () => {
    const vol = await open({ 'progress-ms': '20ms' });
    await vol.put('/p/a', '1');
    await vol.put('/q/a', '1');
    const idle = vol.watch('/p/', { progress: true });
    const iter = idle[Symbol.asyncIterator]();
    const first = await iter.next();
    expect(first.value).toEqual({ kind: 'progress', rev: vol.seenRev }); // the rev this client had seen
    const put = await vol.put('/q/b', '2');
    let p: IteratorResult<WatchMessage>;
    do p = await iter.next();
    while (!p.done && p.value.rev < put.rev);
    expect(p.value).toEqual({ kind: 'progress', rev: put.rev });

    const { rev, kvs, watcher } = await vol.getAndWatch('/p/', { prevKv: true });
    expect(kvs.map((kv) => kv.key)).toEqual(['/p/a']);
    const w = watcher[Symbol.asyncIterator]();
    const r = await vol.put('/p/a', '2');
    const next = await w.next();
    expect(next.value).toMatchObject({ kind: 'events', rev: r.rev, events: [{ type: 'put', kv: { key: '/p/a', modRev: r.rev }, prevKv: { modRev: kvs[0]?.modRev } }] });
    expect(r.rev).toBe(rev + 1);
    const pending = w.next();
    await watcher.cancel();
    expect(await pending).toEqual({ value: undefined, done: true });
    await idle.cancel();
    expect(await iter.next()).toEqual({ value: undefined, done: true });
    const dump = (await vol.statedump()).find((d) => d.type === 'features/watch')?.state as Record<string, number>;
    expect(dump['watchers']).toBe(0);
    await vol.close();
  });

  it('bad watch arguments are typed errors from the first read', async () => {
    const vol = await open();
    const first = async (w: Watcher): Promise<string> => {
      try {
        await w[Symbol.asyncIterator]().next();
      } catch (e) {
        return isCoordError(e) ? e.code : String(e);
      }
      return 'no error';
    };
    expect(await first(vol.watch({ start: '/b', end: '/a' }))).toBe('invalid-argument');
    expect(await first(vol.watch({ key: '' }))).toBe('invalid-argument');
    expect(await first(vol.watch({ key: 'k'.repeat(5000) }))).toBe('key-too-large');
    expect(await first(vol.watch('/x', { fromRev: 0 }))).toBe('invalid-argument');
    expect(await first(vol.watch('/x', { fromRev: 1.5 }))).toBe('invalid-argument');
    await vol.close();
  });
});
