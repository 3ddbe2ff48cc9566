// features/watch on a memory brick, driven by appending entries to the brick's store directly, so
// every case is exact: what a rev's events are and in what order, reserved keys, effects that
// change no key, events shared between watchers, progress rules, a watch waiting for its fromRev,
// compaction overtaking a live watcher and a paused replay, a slow consumer, and replay from the
// history tables below the log's first rev.
import { afterEach, describe, expect, it } from 'vitest';
import { type CoordError } from '../../src/common/errors.js';
import { asEpoch, asRev, asSessionId, type Rev } from '../../src/common/ids.js';
import { compareKeys } from '../../src/common/keys.js';
import { seededRandom } from '../../src/common/random.js';
import type { BrickStore, Effect, Entry } from '../../store/index.js';
import { StorageTranslator } from '../../translators/storage/brick.js';
import { buildGraph, registry, systemClock, type Graph, type Translator } from '../../translators/index.js';
import type { KeySelector, SharedWatchEvent, WatchSink } from '../../translators/fops.js';
import { refusal } from './helpers.js';

/** A sink that records every call; its backlog is whatever the test says. */
class TestSink implements WatchSink {
  readonly calls: ({ kind: 'events'; rev: number; events: SharedWatchEvent[] } | { kind: 'progress'; rev: number } | { kind: 'end'; error: CoordError })[] = [];
  backlogBytes = 0;
  readonly owner: string;
  private waiters: (() => void)[] = [];
  constructor(owner = 'test') {
    this.owner = owner;
  }
  events(rev: Rev, events: readonly SharedWatchEvent[]): void {
    this.calls.push({ kind: 'events', rev, events: [...events] });
  }
  progress(rev: Rev): void {
    this.calls.push({ kind: 'progress', rev });
  }
  end(error: CoordError): void {
    this.calls.push({ kind: 'end', error });
  }
  drained(bytes: number): Promise<void> {
    if (this.backlogBytes <= bytes) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }
  drain(): void {
    this.backlogBytes = 0;
    for (const w of this.waiters.splice(0)) w();
  }
  /** rev → "type key=value" lines, for events only. */
  get revs(): number[] {
    return this.calls.flatMap((c) => (c.kind === 'events' ? [c.rev] : []));
  }
  lines(): string[] {
    return this.calls.flatMap((c) =>
      c.kind === 'events' ? c.events.map((e) => `${c.rev} ${e.event.type} ${e.event.kv.key}${e.event.kv.value ? '=' + Buffer.from(e.event.kv.value).toString() : ''}${e.event.prevKv ? ' prev=' + Buffer.from(e.event.prevKv.value ?? []).toString() : ''}`) : [],
    );
  }
  get ended(): CoordError | undefined {
    const e = this.calls.find((c) => c.kind === 'end');
    return e?.kind === 'end' ? e.error : undefined;
  }
}

const graphs: Graph[] = [];
afterEach(async () => {
  for (const g of graphs.splice(0)) await g.fini();
});

async function brick(watchOptions: Record<string, string> = {}, brickOptions: Record<string, string> = {}): Promise<{ store: BrickStore; watch: Translator; log: LogWriter }> {
  const opts = (o: Record<string, string>): string => Object.entries(o).map(([k, v]) => `    option ${k} ${v}\n`).join('');
  const volfile = `volume b\n    type storage/memory\n${opts(brickOptions)}end-volume\n\nvolume w\n    type features/watch\n${opts(watchOptions)}    subvolumes b\nend-volume\n`;
  const graph = buildGraph(volfile, { file: 'watch.vol', registry, env: { clock: systemClock, baseDir: '/tmp' } });
  await graph.init();
  graphs.push(graph);
  const store = (graph.get('b') as StorageTranslator).store;
  await store.write({ promise: { epoch: asEpoch(1), grantee: 'test' } });
  return { store, watch: graph.top, log: new LogWriter(store) };
}

const put = (key: string, value: string, createRev = 0, version = 1): Effect => ({ t: 'put', key, value: Buffer.from(value), createRev: asRev(createRev), version, session: asSessionId(0) });
const del = (key: string): Effect => ({ t: 'del', key });

/** Appends entries and commits them, one write per call, keeping each put's createRev/version right. */
class LogWriter {
  private readonly live = new Map<string, { createRev: number; version: number }>();
  constructor(private readonly store: BrickStore) {}
  entry(effects: readonly Effect[]): Entry {
    const rev = this.store.last.rev + 1;
    const fixed = effects.map((fx) => {
      if (fx.t === 'put') {
        const old = this.live.get(fx.key);
        const rec = { createRev: old ? old.createRev : rev, version: old ? old.version + 1 : 1 };
        this.live.set(fx.key, rec);
        return { ...fx, createRev: asRev(rec.createRev), version: rec.version };
      }
      if (fx.t === 'del') this.live.delete(fx.key);
      return fx;
    });
    return { epoch: asEpoch(1), rev: asRev(rev), effects: fixed };
  }
  async commit(...batches: (readonly Effect[])[]): Promise<Rev> {
    const entries: Entry[] = [];
    for (const b of batches) {
      const e = this.entry(b);
      entries.push(e);
      await this.store.write({ append: [e] }); // appended: entry() reads last.rev
    }
    const last = entries.at(-1) as Entry;
    await this.store.write({ commitRev: last.rev });
    await new Promise((r) => setImmediate(r)); // features/watch fans out a turn after the commit
    return last.rev;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

async function watch(t: Translator, sel: KeySelector, opts: { fromRev?: number; prevKv?: boolean; progress?: boolean } = {}, sink = new TestSink()): Promise<{ sink: TestSink; watchId: number; fromRev: number }> {
  const r = await t.call('watch', {}, { ...sel, ...(opts.fromRev !== undefined ? { fromRev: asRev(opts.fromRev) } : {}), ...(opts.prevKv ? { prevKv: true } : {}), ...(opts.progress ? { progress: true } : {}), sink });
  return { sink, watchId: r.watchId, fromRev: r.fromRev };
}

describe('features/watch over a brick', () => {
  it('delivers each rev once, its events together in key order, with prevKv from rev − 1', async () => {
    const { watch: t, log } = await brick();
    const a = await watch(t, { prefix: '/' }, { prevKv: true });
    expect(a.fromRev).toBe(2); // from now: the brick's commitRev (1, the config entry) + 1
    await log.commit([put('/b', '1'), put('/a', '1')]);
    await log.commit([put('/a', '2'), del('/b')], [{ t: 'compact', rev: asRev(2) }]);
    await until(() => a.sink.revs.length === 2, 'two revs');
    expect(a.sink.lines()).toEqual(['2 put /a=1', '2 put /b=1', '3 put /a=2 prev=1', '3 delete /b prev=1']);
    // A delete's kv: the key, modRev = the delete's rev, no value.
    const d = a.sink.calls[1];
    expect(d?.kind === 'events' && d.events[1]?.event.kv).toEqual({ key: '/b', createRev: 0, modRev: 3, version: 0, session: 0 });
  });

  it('keys under /_coordvol/ reach only watches that lie inside it; effects that change no key make no event', async () => {
    const { watch: t, log } = await brick();
    const all = await watch(t, { prefix: '' });
    const slash = await watch(t, { start: '/' });
    const reserved = await watch(t, { prefix: '/_coordvol/' });
    const session = await watch(t, { key: '/_coordvol/sessions/9' });
    const wide = await watch(t, { start: '/_coordvol/', end: '/_coordvol1' }); // reaches past /_coordvol/
    const unknown = { t: 'session-open', id: 9 } as unknown as Effect; // an effect kind a later issue adds
    await log.commit([put('/_coordvol/sessions/9', 's'), put('/x', '1')], [unknown, { t: 'epoch-start' }], [put('/_coordvol/sessions/9', 't', 0, 2)]);
    await until(() => reserved.sink.revs.length === 2, 'reserved events');
    expect(all.sink.lines()).toEqual(['2 put /x=1']);
    expect(slash.sink.lines()).toEqual(['2 put /x=1']);
    expect(wide.sink.lines()).toEqual([]);
    expect(reserved.sink.lines()).toEqual(['2 put /_coordvol/sessions/9=s', '4 put /_coordvol/sessions/9=t']);
    expect(session.sink.lines()).toEqual(reserved.sink.lines());
  });

  it('shares one event object (and one encoding) between watchers whose options agree', async () => {
    const { watch: t, log } = await brick();
    const w = await Promise.all([watch(t, { prefix: '/a' }), watch(t, { key: '/a/1' }), watch(t, { start: '/a/', end: '/a/2' }), watch(t, { prefix: '/a/' }, { prevKv: true })]);
    await log.commit([put('/a/1', 'x')]);
    await until(() => w.every((x) => x.sink.revs.length === 1), 'one rev each');
    const evs = w.map((x) => (x.sink.calls[0] as { events: SharedWatchEvent[] }).events[0] as SharedWatchEvent);
    expect(evs[1]).toBe(evs[0]);
    expect(evs[2]).toBe(evs[0]);
    expect(evs[0]?.encoded).toBe(evs[1]?.encoded); // encoded once, then the same bytes
    expect(evs[3]).not.toBe(evs[0]); // prevKv asked: another event
  });

  it('a fromRev above commitRev + 1 waits for the stream to reach it, and gets no progress before', async () => {
    const { watch: t, log } = await brick({ 'progress-ms': '20ms' });
    const w = await watch(t, { prefix: '/' }, { fromRev: 4, progress: true });
    await log.commit([put('/a', '1')]); // rev 2
    await sleep(80);
    expect(w.sink.calls).toEqual([]);
    await log.commit([put('/a', '2')], [put('/a', '3')], [put('/a', '4')]); // revs 3, 4, 5
    await until(() => w.sink.revs.length === 2, 'revs 4 and 5');
    expect(w.sink.lines()).toEqual(['4 put /a=3', '5 put /a=4']);
  });

  it('progress: only when every event up to p was sent; p never decreases, ≤ commitRev, ≥ fromRev − 1', async () => {
    const { store, watch: t, log } = await brick({ 'progress-ms': '20ms' });
    await log.commit([put('/a', '1')], [put('/b', '1')]); // revs 2, 3
    const w = await watch(t, { prefix: '/a' }, { fromRev: 2, progress: true });
    const quiet = await watch(t, { prefix: '/zzz' }, { progress: true });
    for (let i = 0; i < 5; i++) {
      await log.commit([put('/b', String(i))]);
      await sleep(25);
    }
    await log.commit([put('/a', 'last')]);
    await sleep(60);
    const progress = w.sink.calls.flatMap((c) => (c.kind === 'progress' ? [c.rev] : []));
    expect(progress.length).toBeGreaterThan(1);
    let seen = 0;
    let lastP = 0;
    for (const c of w.sink.calls) {
      if (c.kind === 'events') {
        expect(c.rev).toBeGreaterThan(lastP); // nothing at or below a progress rev comes after it
        seen = c.rev;
      } else if (c.kind === 'progress') {
        expect(c.rev).toBeGreaterThanOrEqual(Math.max(lastP, seen, w.fromRev - 1));
        expect(c.rev).toBeLessThanOrEqual(store.commitRev);
        lastP = c.rev;
      }
    }
    expect(w.sink.lines()).toEqual(['2 put /a=1', `${store.commitRev} put /a=last`]);
    // A watch with nothing to send hears progress alone, from its start on.
    const qp = quiet.sink.calls.map((c) => (c.kind === 'progress' ? c.rev : -1));
    expect(qp.every((p) => p >= quiet.fromRev - 1)).toBe(true);
    expect(qp).toEqual([...qp].sort((x, y) => x - y));
    expect(qp.at(-1)).toBe(store.commitRev);
  });

  it('compaction that commits with live entries overtakes live watchers: compacted with the compact rev', async () => {
    const { store, watch: t, log } = await brick();
    const w = await watch(t, { prefix: '/' });
    const later = await watch(t, { prefix: '/' }, { fromRev: 20 });
    // Entries 2..4 and the compact entry 5 (compacting to 4) commit in one write.
    await log.commit([put('/a', '1')], [put('/a', '2')], [put('/a', '3')], [{ t: 'compact', rev: asRev(4) }]);
    await until(() => w.sink.ended !== undefined, 'the end');
    expect(store.compactRev).toBe(4);
    expect(w.sink.ended?.code).toBe('compacted');
    expect(w.sink.ended?.details['compactRev']).toBe(4);
    expect(w.sink.revs).toEqual([]);
    expect(later.sink.calls).toEqual([]); // its cursor (20) is above the compact rev
    expect((await refusal(t.call('watch', {}, { prefix: '/', fromRev: asRev(4), sink: new TestSink() }))).code).toBe('compacted');
  });

  it('compaction overtaking a replay paused by its consumer ends it compacted', async () => {
    const { watch: t, log } = await brick({ 'backlog-bytes-max': '64KB' });
    for (let i = 0; i < 5; i++) await log.commit(...Array.from({ length: 10 }, (_, j) => [put(`/k/${j}`, `${i}`)]));
    const sink = new TestSink();
    sink.backlogBytes = 40_000; // over half the cap: the replay waits for its consumer
    await watch(t, { prefix: '/k/' }, { fromRev: 2 }, sink);
    await sleep(30);
    expect(sink.calls).toEqual([]);
    const compactTo = await log.commit([put('/x', '1')]);
    await log.commit([{ t: 'compact', rev: compactTo }]);
    sink.drain();
    await until(() => sink.ended !== undefined, 'the end');
    expect(sink.ended?.code).toBe('compacted');
    expect(sink.ended?.details['compactRev']).toBe(compactTo);
  });

  it('a slow consumer is cancelled at its next rev; other watchers and writes go on', async () => {
    const { watch: t, log } = await brick({ 'backlog-bytes-max': '64KB' });
    const slow = await watch(t, { prefix: '/' });
    const fast = await watch(t, { prefix: '/' });
    await log.commit([put('/a', '1')]);
    slow.sink.backlogBytes = 65 * 1024;
    const last = await log.commit([put('/a', '2')], [put('/a', '3')]);
    await until(() => fast.sink.revs.length === 3, 'the fast watcher');
    expect(slow.sink.revs).toEqual([2]);
    expect(slow.sink.ended?.code).toBe('slow-consumer');
    expect(fast.sink.revs).toEqual([2, 3, last]);
    const dump = (await t.call('statedump', {}, {}))[0]?.state;
    expect(dump).toMatchObject({ watchers: 1, slowConsumers: 1 });
  });

  it('replays from the log and, below its first rev, from the history tables: the same events', async () => {
    const { store, watch: t, log } = await brick({ 'backlog-bytes-max': '64KB' }, { 'log-retain-revs': '20', 'checkpoint-entries': '10' });
    const expected: string[] = [];
    const rnd = seededRandom(7);
    const live = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const effects: Effect[] = [];
      const keys = new Set<string>();
      for (let j = 1 + Math.floor(rnd() * 3); j > 0; j--) keys.add(`/h/${Math.floor(rnd() * 30)}`);
      for (const k of keys) {
        if (live.has(k) && rnd() < 0.3) {
          effects.push(del(k));
          live.delete(k);
        } else {
          effects.push(put(k, 'v'.repeat(1 + Math.floor(rnd() * 300)) + i));
          live.add(k);
        }
      }
      if (rnd() < 0.1) effects.push(put(`/other/${i}`, 'x'));
      const rev = await log.commit(effects);
      for (const fx of [...effects].sort((x, y) => compareKeys((x as { key: string }).key, (y as { key: string }).key))) {
        if (fx.t === 'put' && fx.key.startsWith('/h/')) expected.push(`${rev} put ${fx.key}=${Buffer.from(fx.value).toString()}`);
        if (fx.t === 'del') expected.push(`${rev} delete ${fx.key}`);
      }
    }
    await until(() => store.firstRev > 300, 'the log to be trimmed');
    const w = await watch(t, { prefix: '/h/' }, { fromRev: 2 });
    await until(() => w.sink.revs.at(-1) === store.commitRev || expected.length === 0, 'the replay', 10_000);
    expect(w.sink.lines()).toEqual(expected);
    const dump = (await t.call('statedump', {}, {}))[0]?.state as { historyWindows: number };
    expect(dump.historyWindows).toBeGreaterThan(1); // the byte budget cut the history in windows
  }, 30_000);
});
