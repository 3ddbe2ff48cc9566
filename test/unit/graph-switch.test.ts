// The volfile graph switch (DESIGN §8): a running single-brick master (storage/lmdb, locks, watch,
// io-stats, replicate, protocol/server on port 0) switched between volfile texts under a stream
// of puts, in-process and over a connection; refused edits (bad text, membership, options that
// cannot change live, a new translator whose init fails) that leave the running graph serving;
// the chokidar watcher; and the switch's undo paths with fake translators.
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type RemoteVolume } from '../../src/client/index.js';
import { FopVolume } from '../../src/client/volume.js';
import { isCoordError, type CoordError } from '../../src/common/errors.js';
import { SwitchableGraph } from '../../src/daemon/switchable.js';
import { watchVolfile } from '../../src/daemon/volfile-watch.js';
import { singleBrickVolfile } from '../../src/daemon/volfiles.js';
import { buildGraph, createRegistry, type BuildOptions, type Graph } from '../../translators/graph.js';
import { switchGraph } from '../../translators/graph-switch.js';
import { registry } from '../../translators/index.js';
import type { OptionSchema, RawOptionValue } from '../../translators/options.js';
import { ProtocolServerTranslator } from '../../translators/protocol/server.js';
import { StorageTranslator } from '../../translators/storage/brick.js';
import { systemClock, Translator, type TranslatorClass } from '../../translators/translator.js';
import { formatVolfile, parseVolfile, type VolfileDeclText } from '../../translators/volfile.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coordvol-switch-'));
  cleanup.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

type Decl = { name: string; type: string; options: { key: string; value: string }[]; subvolumes: string[] };

/** Rewrites a volfile's declarations. */
function edit(text: string, f: (ds: Decl[]) => void): string {
  const ds: Decl[] = parseVolfile(text, 'edit').map((d) => ({
    name: d.name, type: d.type, options: d.options.map((o) => ({ key: o.key, value: o.value })), subvolumes: d.subvolumes.map((s) => s.name),
  }));
  f(ds);
  return formatVolfile(ds as VolfileDeclText[]);
}

function declOf(ds: Decl[], name: string): Decl {
  const d = ds.find((x) => x.name === name);
  if (!d) throw new Error(`no volume ${name}`);
  return d;
}

const setOption = (text: string, volume: string, key: string, value: string): string =>
  edit(text, (ds) => {
    const d = declOf(ds, volume);
    d.options = [...d.options.filter((o) => o.key !== key), { key, value }];
  });

/** An io-stats layer `coordvol-extra` right above the volume's top io-stats `coordvol`. */
const withExtraStats = (text: string, options: { key: string; value: string }[] = []): string =>
  edit(text, (ds) => {
    for (const d of ds) d.subvolumes = d.subvolumes.map((s) => (s === 'coordvol' ? 'coordvol-extra' : s));
    ds.push({ name: 'coordvol-extra', type: 'debug/io-stats', options, subvolumes: ['coordvol'] });
  });

/** The 1-based line of the first line of `text` containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`no line with ${needle}`);
  return i + 1;
}

/** The typed error `p` is refused with. */
async function refusedWith(p: Promise<unknown>): Promise<CoordError> {
  try {
    await p;
  } catch (e) {
    if (isCoordError(e)) return e;
    throw e;
  }
  throw new Error('expected a refusal, got success');
}

interface Master {
  readonly dir: string;
  readonly file: string;
  readonly text: string;
  readonly sg: SwitchableGraph;
  readonly vol: FopVolume;
  readonly opts: BuildOptions;
}

/** A single-brick master graph (lmdb, fsync off, 50 ms lease), with a protocol/server on port 0 when `listen`. */
async function startMaster(listen: boolean): Promise<Master> {
  const dir = await tempDir();
  const file = join(dir, 'coordvol.vol');
  const text = singleBrickVolfile({ volumeName: 'coordvol', brickDir: 'brick', fsync: false, leaseMs: 50, ...(listen ? { listen: '127.0.0.1:0' } : {}) });
  await writeFile(file, text);
  const opts: BuildOptions = { file, registry, env: { clock: systemClock, baseDir: dir } };
  const graph = buildGraph(text, opts);
  await graph.init();
  const sg = new SwitchableGraph(graph, text, opts);
  cleanup.push(() => sg.close());
  const vol = new FopVolume((fop, ctx, args) => sg.top.call(fop, ctx, args), async () => undefined, 10_000);
  return { dir, file, text, sg, vol, opts };
}

function must<T>(t: T | undefined, what: string): T {
  if (t === undefined) throw new Error(`missing ${what}`);
  return t;
}

describe('graph switch under load', () => {
  it('switches the stack 5 times during 2,000 puts (in-process and remote): none fails, state carried', async () => {
    const m = await startMaster(true);
    const server = m.sg.graph.top as ProtocolServerTranslator;
    expect(server).toBeInstanceOf(ProtocolServerTranslator);
    const secret = (await readFile(server.secretFile, 'utf8')).trim();
    const remote: RemoteVolume = await connect({ servers: [`127.0.0.1:${server.address.port}`], secret, timeoutMs: 10_000 });
    cleanup.push(() => remote.close());

    const replicate = m.sg.graph.get('coordvol-replicate');
    const brick = m.sg.graph.get('coordvol-brick');
    if (!(brick instanceof StorageTranslator)) throw new Error('no storage translator');
    const store = brick.store;
    const carried = ['coordvol-brick', 'coordvol-locks', 'coordvol-watch', 'coordvol-replicate', 'coordvol-server'].map((n) => m.sg.graph.get(n));
    const localSession = await m.vol.openSession({ ttlMs: 3_000 });
    const remoteSession = await remote.openSession({ ttlMs: 3_000 });
    await m.vol.put('/eph/local', 'l', { session: localSession });
    await remote.put('/eph/remote', 'r', { session: remoteSession });

    const total = 2_000;
    const acked = new Map<string, string>();
    const failures: unknown[] = [];
    let next = 0;
    const worker = async (v: { put: FopVolume['put'] }, tag: string): Promise<void> => {
      for (let i = next++; i < total; i = next++) {
        const key = `/load/${String(i).padStart(5, '0')}`;
        const value = `${tag}-${i}`;
        try {
          await v.put(key, value);
          acked.set(key, value);
        } catch (e) {
          failures.push(e);
        }
      }
    };
    const load = Promise.all([
      ...Array.from({ length: 32 }, () => worker(m.vol, 'local')),
      ...Array.from({ length: 32 }, () => worker(remote, 'remote')),
    ]);

    const t0 = m.text;
    const t1 = withExtraStats(t0);
    const t2 = withExtraStats(t0, [{ key: 'latency-measurement', value: 'off' }]);
    const retired: Translator[] = [];
    const switchMs: number[] = [];
    for (const t of [t1, t2, t0, t1, t0]) {
      const mark = acked.size;
      await until(() => acked.size >= Math.min(total, mark + 150) || failures.length > 0, 'puts between switches');
      const before = m.sg.graph;
      const s0 = performance.now();
      expect(await m.sg.switchTo(t)).toEqual({ switched: true });
      switchMs.push(performance.now() - s0);
      // Every translator of the old graph is either carried into the new one or torn down.
      for (const x of before.translators) {
        if (m.sg.graph.translators.includes(x)) expect(x.isUp).toBe(true);
        else (expect(x.isUp).toBe(false), retired.push(x));
      }
      expect(m.sg.graph.get('coordvol-extra') !== undefined).toBe(t !== t0);
    }
    await load;

    expect(failures).toEqual([]);
    expect(acked.size).toBe(total);
    expect(retired.length).toBeGreaterThanOrEqual(5 * 2); // at least the two io-stats, each time
    // The layers fops enter through drained before they went (the old brick-side io-stats may
    // still see the engine's brick requests until replicate's relink remaps its local brick).
    expect(retired.filter((x) => x.name === 'coordvol' || x.name === 'coordvol-extra').every((x) => x.fopsInFlight === 0)).toBe(true);
    const r = await m.vol.range({ prefix: '/load/', limit: 10_000 });
    expect(r.kvs.length).toBe(total);
    for (const kv of r.kvs) expect(Buffer.from(kv.value ?? []).toString()).toBe(acked.get(kv.key));

    // The same stateful instances, the same store, the same connection and sessions.
    expect(m.sg.graph.get('coordvol-replicate')).toBe(replicate);
    expect((m.sg.graph.get('coordvol-brick') as StorageTranslator).store).toBe(store);
    expect(['coordvol-brick', 'coordvol-locks', 'coordvol-watch', 'coordvol-replicate', 'coordvol-server'].map((n) => m.sg.graph.get(n))).toEqual(carried);
    expect(server.connections).toBeGreaterThanOrEqual(1);
    expect(localSession.isLost || remoteSession.isLost).toBe(false);
    const ids = (await m.vol.sessions()).sessions.map((s) => s.id);
    expect(ids).toEqual(expect.arrayContaining([localSession.id, remoteSession.id]));
    expect((await m.vol.get('/eph/local')).kv?.session).toBe(localSession.id);
    await remote.put('/eph/remote-after', 'r2', { session: remoteSession });
    expect((await remote.get('/eph/remote-after')).kv?.session).toBe(remoteSession.id);
    // Every switch returned promptly: none waited out the 30 s drain bound.
    expect(Math.max(...switchMs)).toBeLessThan(5_000);
  }, 20_000);

  it('lets a fop in flight on the old top finish before tearing it down', async () => {
    const m = await startMaster(false);
    const oldTop = m.sg.top;
    const { rev } = await m.vol.put('/k', 'v');
    // A serializable read that waits on the old top until 3 more revs commit.
    let readDone = false;
    const read = oldTop.call('get', { deadlineMs: performance.now() + 5_000 }, { key: '/k', consistency: 'serializable', minRev: (rev + 3) as typeof rev })
      .finally(() => (readDone = true));
    let switched = false;
    const sw = m.sg.switchTo(withExtraStats(m.text)).then((r) => ((switched = true), r));
    await until(() => m.sg.top !== oldTop, 'the new top');
    await sleep(100);
    expect(switched).toBe(false); // the old top still has the read inside
    expect(oldTop.isUp).toBe(true);
    expect(oldTop.fopsInFlight).toBe(1);
    for (let i = 0; i < 3; i++) await m.vol.put(`/more/${i}`, 'x'); // through the new top
    expect(await sw).toEqual({ switched: true });
    expect(readDone).toBe(true);
    expect((await read).kv?.key).toBe('/k');
    expect(oldTop.isUp).toBe(false);
  });
});

describe('refused edits leave the running graph serving', () => {
  it('refuses text that does not parse or validate, naming the line', async () => {
    const m = await startMaster(false);
    const graph = m.sg.graph;
    const garbage = m.text.replace('    subvolumes coordvol-replicate\n', '    frobnicate\n    subvolumes coordvol-replicate\n');
    const unknownType = m.text.replace('volume coordvol\n    type debug/io-stats', 'volume coordvol\n    type debug/nope');
    const badValue = setOption(m.text, 'coordvol-locks', 'lease-ms', 'soon');
    const missingSub = m.text.replace('subvolumes coordvol-replicate', 'subvolumes coordvol-nowhere');
    const cases: [string, number, string][] = [
      [garbage, lineOf(garbage, 'frobnicate'), 'unknown keyword'],
      [unknownType, lineOf(unknownType, 'debug/nope'), 'unknown type debug/nope'],
      [badValue, lineOf(badValue, 'lease-ms soon'), 'option lease-ms'],
      [missingSub, lineOf(missingSub, 'coordvol-nowhere'), 'subvolume coordvol-nowhere is not defined'],
    ];
    for (const [text, line, part] of cases) {
      const e = await refusedWith(m.sg.switchTo(text));
      expect(e.code).toBe('volfile-invalid');
      expect(e.message.startsWith(`${m.file}:${line}: `), e.message).toBe(true);
      expect(e.message).toContain(part);
      expect(m.sg.graph).toBe(graph);
      expect(graph.translators.every((t) => t.isUp)).toBe(true);
      await m.vol.put('/still', 'serving');
    }
    expect(m.sg.previousText).toBe(m.text);
  });

  it('refuses an edit of the brick list or quorum with membership-edit, naming peer probe / peer detach', async () => {
    const m = await startMaster(false);
    const graph = m.sg.graph;
    const cases: [string, string][] = [
      [setOption(m.text, 'coordvol-brick', 'volume-bricks', 'h1:/b h2:/b h3:/b'), 'option volume-bricks'],
      [setOption(m.text, 'coordvol-replicate', 'remote-bricks', 'h2:/b'), 'option remote-bricks'],
      [setOption(m.text, 'coordvol-brick', 'quorum-count', '2'), 'option quorum-count'],
      [setOption(m.text, 'coordvol-brick', 'brick', 'elsewhere:/b'), 'option brick'],
    ];
    for (const [text, part] of cases) {
      const e = await refusedWith(m.sg.switchTo(text));
      expect(e.code).toBe('membership-edit');
      const line = lineOf(text, part);
      expect(e.message.startsWith(`${m.file}:${line}: `), e.message).toBe(true);
      expect(e.message).toContain(part);
      expect(e.message).toContain('coordvol peer probe HOST --as-master');
      expect(e.message).toContain('coordvol peer detach HOST');
      expect(m.sg.graph).toBe(graph);
      await m.vol.put('/still', 'serving');
    }
    // The same value written differently (order of a set, the default spelled out) is no edit.
    const same = setOption(m.text, 'coordvol-brick', 'quorum-count', '0');
    expect(await m.sg.switchTo(same)).toEqual({ switched: true });
  });

  it('refuses an option a running translator cannot take live, and the removal of a carried one', async () => {
    const m = await startMaster(false);
    const graph = m.sg.graph;
    // With an io-stats change in the same edit: nothing of it may happen either.
    const lease = setOption(withExtraStats(m.text), 'coordvol-locks', 'lease-ms', '200ms');
    let e = await refusedWith(m.sg.switchTo(lease));
    expect(e.code).toBe('volfile-invalid');
    expect(e.message.startsWith(`${m.file}:${lineOf(lease, 'lease-ms 200ms')}: `), e.message).toBe(true);
    expect(e.message).toContain('option lease-ms of volume coordvol-locks (features/locks) cannot change while running; restart the master');
    expect(m.sg.graph).toBe(graph);
    expect(m.sg.graph.get('coordvol-extra')).toBeUndefined();

    const noWatch = edit(m.text, (ds) => {
      declOf(ds, 'coordvol-brick-stats').subvolumes = ['coordvol-locks'];
      ds.splice(ds.findIndex((d) => d.name === 'coordvol-watch'), 1);
    });
    e = await refusedWith(m.sg.switchTo(noWatch));
    expect(e.code).toBe('volfile-invalid');
    expect(e.message).toContain('volume coordvol-watch (features/watch) was removed or renamed');
    expect(m.sg.graph).toBe(graph);
    expect(graph.translators.every((t) => t.isUp)).toBe(true);
    await m.vol.put('/still', 'serving');
  });

  it('leaves the old graph serving when a new translator fails to init', async () => {
    const m = await startMaster(true);
    const graph = m.sg.graph;
    const server = graph.top as ProtocolServerTranslator;
    const oldChild = server.children[0];
    // A second server on the first one's port: its listen fails, after coordvol-extra is up.
    const text = edit(withExtraStats(m.text), (ds) => {
      ds.push({ name: 'second-server', type: 'protocol/server', options: [{ key: 'listen', value: `127.0.0.1:${server.address.port}` }], subvolumes: ['coordvol-server'] });
    });
    const e = await refusedWith(m.sg.switchTo(text));
    expect(e.code).toBe('unavailable');
    expect(m.sg.graph).toBe(graph);
    expect(server.children[0]).toBe(oldChild); // never relinked
    expect(graph.translators.every((t) => t.isUp)).toBe(true);
    await m.vol.put('/still', 'serving');
    // And a good edit after it goes through.
    expect(await m.sg.switchTo(withExtraStats(m.text))).toEqual({ switched: true });
    expect(server.children[0]?.name).toBe('coordvol-extra');
  });
});

describe('own writes', () => {
  it('adopts the master\'s own rewrite as the reference without switching', async () => {
    const m = await startMaster(false);
    const graph = m.sg.graph;
    const brick = must(graph.get('coordvol-brick'), 'brick') as StorageTranslator;
    // The config written back after a commit: another brick list.
    const own = setOption(m.text, 'coordvol-brick', 'volume-bricks', `${brick.brickStatus().path} h2:/b`);
    m.sg.noteOwnWrite(own);
    expect(m.sg.takeOwnWrite(own)).toBe(true);
    expect(await m.sg.switchTo(own)).toEqual({ switched: false });
    expect(m.sg.graph).toBe(graph);
    expect(m.sg.previousText).toBe(own);
    // An operator's edit on top of it switches; one that puts the old brick list back is refused.
    expect(await m.sg.switchTo(withExtraStats(own))).toEqual({ switched: true });
    expect((await refusedWith(m.sg.switchTo(withExtraStats(m.text)))).code).toBe('membership-edit');
  });
});

describe('watchVolfile', () => {
  it('sees atomic and in-place writes, skips own writes and repeats, reports refusals', async () => {
    const dir = await tempDir();
    const file = join(dir, 'w.vol');
    await writeFile(file, 'one');
    const seen: string[] = [];
    const errors: unknown[] = [];
    const w = watchVolfile({
      path: file,
      onText: async (t) => {
        if (t === 'bad') throw new Error('refused');
        seen.push(t);
      },
      isOwnWrite: (t) => t === 'own',
      onError: (e) => errors.push(e),
      debounceMs: 20,
      stabilityMs: 20,
    });
    cleanup.push(() => w.close());
    await w.ready;

    await writeFile(join(dir, 'w.vol.tmp'), 'two');
    await rename(join(dir, 'w.vol.tmp'), file);
    await until(() => seen.includes('two'), 'the atomic write');
    await writeFile(file, 'three');
    await until(() => seen.includes('three'), 'the in-place write');
    await writeFile(file, 'bad');
    await until(() => errors.length === 1, 'the refusal');
    await writeFile(file, 'three'); // the text applied last: nothing to do
    await sleep(150);
    await writeFile(file, 'own');
    await sleep(150);
    await writeFile(file, 'four');
    await until(() => seen.includes('four'), 'the next write');
    expect(seen).toEqual(['two', 'three', 'four']);
    expect(errors.map((e) => (e as Error).message)).toEqual(['refused']);
  });

  it('drives a SwitchableGraph from the file on disk', async () => {
    const m = await startMaster(false);
    const errors: unknown[] = [];
    const w = watchVolfile({
      path: m.file,
      initialText: m.text,
      onText: async (t) => void (await m.sg.switchTo(t)),
      isOwnWrite: (t) => m.sg.takeOwnWrite(t),
      onError: (e) => errors.push(e),
      debounceMs: 20,
      stabilityMs: 20,
    });
    cleanup.push(() => w.close());
    await w.ready;
    const graph = m.sg.graph;
    const tmp = `${m.file}.tmp`;
    await writeFile(tmp, withExtraStats(m.text));
    await rename(tmp, m.file);
    await until(() => m.sg.graph.get('coordvol-extra') !== undefined, 'the switch');
    expect(m.sg.graph).not.toBe(graph);
    await writeFile(m.file, setOption(m.text, 'coordvol-brick', 'quorum-count', '3'));
    await until(() => errors.length === 1, 'the refusal');
    expect((errors[0] as CoordError).code).toBe('membership-edit');
    await m.vol.put('/still', 'serving');
  });
});

describe('switchGraph undo paths (fake translators)', () => {
  const log: string[] = [];
  /** The volume whose relink throws. */
  let refuseRelink = '';
  class Fake extends Translator {
    override async init(): Promise<void> {
      log.push(`init ${this.name}`);
      if (this.rawOptions['fail-init'] === true) throw new Error(`init ${this.name} failed`);
      await super.init();
    }
    override async fini(): Promise<void> {
      log.push(`fini ${this.name}`);
      await super.fini();
    }
    override relink(children: readonly Translator[]): void {
      log.push(`relink ${this.name} ${children.map((c) => c.name).join(',')}`);
      if (refuseRelink === this.name) throw new Error(`${this.name} refuses its subvolumes`);
      super.relink(children);
    }
  }
  /** Takes `n` live (and back again); refuses the rest. */
  class Live extends Fake {
    override reconfigure(options: Readonly<Record<string, RawOptionValue>>): void {
      this.refuseOptions(options, ['n']);
      log.push(`reconfigure ${this.name} n=${String(options['n'])}`);
      this.adoptOptions(options);
    }
  }
  const schema: OptionSchema = {
    n: { type: 'int', default: 0, description: 'live' },
    m: { type: 'int', default: 0, description: 'fixed' },
    'fail-init': { type: 'bool', default: false, description: 'init throws' },
  };
  const cls = (type: string, carried: boolean, make: typeof Fake, min = 1): TranslatorClass => ({
    type, options: schema, subvolumes: { min, max: 1 }, ...(carried ? { carried: true as const } : {}),
    create: (spec) => new make(spec),
  });
  const reg = createRegistry([cls('test/live', true, Live, 0), cls('test/fixed', true, Fake), cls('test/pass', false, Fake)]);
  const opts: BuildOptions = { file: 'fake.vol', registry: reg, env: { clock: systemClock, baseDir: '/tmp' } };
  const text = (o: { n?: number; m?: number; failInit?: boolean } = {}): string => [
    'volume leaf', '  type test/live', `  option n ${o.n ?? 0}`, 'end-volume',
    'volume fixed', '  type test/fixed', `  option m ${o.m ?? 0}`, '  subvolumes leaf', 'end-volume',
    'volume pass', '  type test/pass', ...(o.failInit ? ['  option fail-init on'] : ['  option n 1']), '  subvolumes fixed', 'end-volume',
  ].join('\n');

  async function running(): Promise<Graph> {
    const g = buildGraph(text(), opts);
    await g.init();
    return g;
  }

  it('undoes a live reconfigure when a later translator refuses its change', async () => {
    const g = await running();
    log.length = 0;
    const e = await refusedWith(switchGraph(g, text({ n: 5, m: 1 }), { ...opts, previousText: text() }));
    expect(e.message).toBe(`fake.vol:7: option m of volume fixed (test/fixed) cannot change while running; restart the master`);
    expect(log).toEqual(['reconfigure leaf n=5', 'reconfigure leaf n=0']);
    expect(g.get('leaf')?.rawOptions['n']).toBe(0);
    expect(g.translators.every((t) => t.isUp)).toBe(true);
    await g.fini();
  });

  it('on a failed init: finis the new translators, undoes reconfigure, relinks nothing', async () => {
    const g = await running();
    log.length = 0;
    await expect(switchGraph(g, text({ n: 5, failInit: true }), { ...opts, previousText: text() })).rejects.toThrow('init pass failed');
    expect(log).toEqual(['reconfigure leaf n=5', 'init pass', 'reconfigure leaf n=0']);
    expect(g.isUp).toBe(true);
    expect(g.translators.every((t) => t.isUp)).toBe(true);
    await g.fini();
  });

  it('on a refused relink: relinks back, finis the new translators, undoes reconfigure', async () => {
    const g = await running();
    const fixed = g.get('fixed');
    const leafChildren = g.get('leaf')?.children;
    log.length = 0;
    refuseRelink = 'fixed';
    try {
      await expect(switchGraph(g, text({ n: 5 }), { ...opts, previousText: text() })).rejects.toThrow('fixed refuses its subvolumes');
    } finally {
      refuseRelink = '';
    }
    expect(log).toEqual(['reconfigure leaf n=5', 'init pass', 'relink leaf ', 'relink fixed leaf', 'relink leaf ', 'fini pass', 'reconfigure leaf n=0']);
    expect(g.get('leaf')?.children).toBe(leafChildren);
    expect(fixed?.children[0]).toBe(g.get('leaf'));
    expect(g.isUp && g.translators.every((t) => t.isUp)).toBe(true);
    await g.fini();
  });

  it('relinks carried translators bottom-up, finis the old rest, and the new graph owns them all', async () => {
    const g = await running();
    const oldPass = g.get('pass');
    log.length = 0;
    const next = await switchGraph(g, text({ n: 5 }), { ...opts, previousText: text() });
    expect(log).toEqual(['reconfigure leaf n=5', 'init pass', 'relink leaf ', 'relink fixed leaf', 'fini pass']);
    expect(next.get('leaf')).toBe(g.get('leaf'));
    expect(next.get('pass')).not.toBe(oldPass);
    expect(oldPass?.isUp).toBe(false);
    log.length = 0;
    await g.fini(); // owns nothing any more
    expect(log).toEqual([]);
    await next.fini();
    expect(log).toEqual(['fini pass', 'fini fixed', 'fini leaf']);
  });
});
