// `moved` (DESIGN §6): a brick of a replicated volume that has not heard from a holder for
// 2·leaseMs ends its watch streams `moved` and refuses new watches until it hears one again; the
// library resumes the stream elsewhere from its last rev + 1.
//  - features/watch over features/locks on a memory brick, with a hand-driven clock and appends
//    and locks sent by hand: exactly when streams end and with what cursor, which brick requests
//    count as hearing from a holder (appends and heartbeats at the promised epoch, even refused
//    for a prev mismatch; not grants, not fenced appends), the brick's start, and a single-brick
//    volume, which never sends `moved`;
//  - the library over such a brick in process (one "server"): it retries there after a pause and
//    resumes once the brick hears a holder; GET /v1/watch ends its stream with an `error` event
//    naming `moved` and the cursor instead;
//  - a 3-master volume in this process whose masters reach one another through TCP proxies:
//    one master (not the holder) is cut off from the others while clients watch through it. Its
//    brick really stops hearing from the holder; the watch of a client that lists the other
//    masters moves to one of them, a watch started there during the cut moves at once, and a
//    client that lists that master alone waits it out — each delivers every rev once, in order.
import type { Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/app.js';
import type { RemoteVolume, Watcher } from '../../src/client/index.js';
import { FopVolume } from '../../src/client/volume.js';
import { type CoordError } from '../../src/common/errors.js';
import { asEpoch, asRev, asSessionId, type Rev } from '../../src/common/ids.js';
import type { Master } from '../../src/daemon/master.js';
import type { Effect, Entry } from '../../store/index.js';
import { buildGraph, registry, type Clock, type Graph, type Translator } from '../../translators/index.js';
import type { AppendResult, SharedWatchEvent, WatchSink } from '../../translators/fops.js';
import { consumeWatch, refusal, type Consumed } from './helpers.js';
import { Proxy } from './net-fixtures.js';
import { freePort, sleep, startLocalVolume, until } from './fixtures/local-volume.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

/** A watcher's events as "rev key=value" lines (the clients' close at the end ends the loops). */
const consume = (w: Watcher): Consumed => consumeWatch(w, (rev, e) => `${rev} ${e.kv.key}=${Buffer.from(e.kv.value ?? []).toString()}`);

// ---- features/watch over features/locks, by hand

class HandClock implements Clock {
  t = 1_000;
  nowMs(): number {
    return this.t;
  }
}

class TestSink implements WatchSink {
  readonly revs: number[] = [];
  ended: CoordError | undefined;
  backlogBytes = 0;
  readonly owner = 'test';
  events(rev: Rev, _events: readonly SharedWatchEvent[]): void {
    this.revs.push(rev);
  }
  progress(): void {}
  end(error: CoordError): void {
    this.ended = error;
  }
  drained(bytes: number): Promise<void> {
    return this.backlogBytes <= bytes ? Promise.resolve() : new Promise(() => undefined);
  }
}

const LEASE_MS = 20; // the holder timer runs every 10 ms of real time
const graphs: Graph[] = [];
afterEach(async () => {
  for (const g of graphs.splice(0)) await g.fini();
});

/** A brick (memory) with features/locks and features/watch; `bricks` makes it one of a replicated volume. */
async function brick(bricks?: string): Promise<{ clock: HandClock; top: Translator; holder: HandHolder }> {
  const clock = new HandClock();
  const ids = bricks === undefined ? '' : `    option brick ${bricks.split(' ')[0] ?? ''}\n    option volume-bricks ${bricks}\n`;
  const volfile = `volume b\n    type storage/memory\n${ids}end-volume\n\n` +
    `volume l\n    type features/locks\n    option lease-ms ${LEASE_MS}ms\n    subvolumes b\nend-volume\n\n` +
    `volume w\n    type features/watch\n    subvolumes l\nend-volume\n`;
  const graph = buildGraph(volfile, { file: 'moved.vol', registry, env: { clock, baseDir: '/tmp' } });
  await graph.init();
  graphs.push(graph);
  return { clock, top: graph.top, holder: new HandHolder(graph.top) };
}

const THREE = 'h1:/b h2:/b h3:/b';

/** Plays a holder against the brick: appends (committing at once) and heartbeats, through the graph's top. */
class HandHolder {
  epoch = asEpoch(1);
  private last = { epoch: asEpoch(0), rev: asRev(1) }; // the config entry (0, 1)
  constructor(private readonly top: Translator) {}

  async put(key: string, value: string): Promise<Rev> {
    const rev = asRev(this.last.rev + 1);
    const fx: Effect = { t: 'put', key, value: Buffer.from(value), createRev: rev, version: 1, session: asSessionId(0) };
    const e: Entry = { epoch: this.epoch, rev, effects: [fx] };
    const r = await this.append([e]);
    expect(r.ok).toBe(true);
    this.last = { epoch: this.epoch, rev };
    await new Promise((ok) => setImmediate(ok)); // features/watch fans out a turn after the commit
    return rev;
  }

  heartbeat(): Promise<AppendResult> {
    return this.append([]);
  }

  append(entries: Entry[], o: { epoch?: number; prevRev?: number } = {}): Promise<AppendResult> {
    const prevRev = o.prevRev ?? this.last.rev;
    return this.top.call('append', {}, {
      epoch: asEpoch(o.epoch ?? this.epoch),
      sender: 'holder',
      prevEpoch: this.last.epoch,
      prevRev: asRev(prevRev),
      entries,
      commitRev: asRev(entries.at(-1)?.rev ?? this.last.rev),
    });
  }
}

async function watch(top: Translator, fromRev?: number, sink = new TestSink()): Promise<TestSink> {
  await top.call('watch', {}, { prefix: '/', ...(fromRev !== undefined ? { fromRev: asRev(fromRev) } : {}), sink });
  return sink;
}

async function watchState(top: Translator): Promise<Record<string, unknown>> {
  return (await top.call('statedump', {}, {})).find((d) => d.type === 'features/watch')?.state ?? {};
}

/** Two rounds of the holder timer (leaseMs/2 of real time each), and a margin. */
const ticks = (): Promise<void> => sleep(3 * LEASE_MS);

describe('features/watch: moved', () => {
  it('ends every stream moved with its cursor once the brick has not heard from a holder for 2·leaseMs; refuses new watches until it hears one', async () => {
    const { clock, top, holder } = await brick(THREE);
    await holder.put('/a', '1'); // rev 2, at t = 1000
    const live = await watch(top); // from now: rev 3
    const caughtUp = await watch(top, 2); // replays rev 2, then live
    const ahead = await watch(top, 50); // waits in the index for rev 50
    const paused = new TestSink();
    paused.backlogBytes = Number.MAX_SAFE_INTEGER; // its replay waits for a consumer that never reads
    await watch(top, 2, paused);
    await until(() => caughtUp.revs.length === 1, () => 'the replay of rev 2');
    const all = [live, caughtUp, ahead, paused];

    clock.t = 1_030;
    expect((await holder.heartbeat()).ok).toBe(true); // heard at 1030
    clock.t = 1_030 + 2 * LEASE_MS - 1;
    await ticks();
    expect(all.map((s) => s.ended)).toEqual([undefined, undefined, undefined, undefined]);
    expect((await watch(top)).ended).toBeUndefined();

    clock.t = 1_030 + 2 * LEASE_MS;
    await until(() => all.every((s) => s.ended !== undefined), () => 'every stream to end');
    expect(all.map((s) => s.ended?.code)).toEqual(['moved', 'moved', 'moved', 'moved']);
    // The cursor: the next rev each would have delivered.
    expect(all.map((s) => s.ended?.details['cursor'])).toEqual([3, 3, 50, 2]);
    expect(paused.revs).toEqual([]);
    expect(caughtUp.revs).toEqual([2]);

    // While it lasts, new watches are refused moved (with where they would have started).
    const r = await refusal(top.call('watch', {}, { prefix: '/', fromRev: asRev(3), sink: new TestSink() }));
    expect(r.code).toBe('moved');
    await expect(top.call('watch', {}, { prefix: '/', fromRev: asRev(3), sink: new TestSink() })).rejects.toMatchObject({ details: { cursor: 3 } });
    expect(await watchState(top)).toMatchObject({ watchers: 0, moved: 5, movedRefused: 2, cutOff: true });

    // A heartbeat: the brick is in touch again and serves watches.
    clock.t += 5;
    await holder.heartbeat();
    const again = await watch(top, 3);
    const rev = await holder.put('/a', '2');
    await until(() => again.revs.length === 1, () => 'the resumed watch');
    expect(again.revs).toEqual([rev]);
    expect(await watchState(top)).toMatchObject({ watchers: 1, cutOff: false });
  });

  it('hearing from a holder: an append at the promised epoch counts, even refused for a prev mismatch; a grant or a fenced append does not', async () => {
    const { clock, top, holder } = await brick(THREE);
    await holder.put('/a', '1'); // epoch 1 adopted, heard at 1000
    clock.t = 1_000 + LEASE_MS + 5; // the lease lapsed: another candidate may lock
    const grant = await top.call('lock', {}, { epoch: asEpoch(2), candidate: 'other' });
    expect(grant.granted).toBe(true);
    clock.t = 1_000 + LEASE_MS + 10;
    expect(await holder.heartbeat()).toMatchObject({ ok: false, reason: 'fenced' }); // epoch 1 < 2
    const w = await watch(top);
    clock.t = 1_000 + 2 * LEASE_MS - 1;
    await ticks();
    expect(w.ended).toBeUndefined();
    clock.t = 1_000 + 2 * LEASE_MS;
    await until(() => w.ended !== undefined, () => 'the end');
    expect(w.ended?.code).toBe('moved');
    const locks = (await top.call('statedump', {}, {})).find((d) => d.type === 'features/locks')?.state;
    expect(locks?.['heardAgoMs']).toBe(2 * LEASE_MS);

    // The new holder's first append names a prev the brick lacks: refused, but heard.
    holder.epoch = asEpoch(2);
    expect(await holder.append([], { prevRev: 99 })).toMatchObject({ ok: false, reason: 'mismatch' });
    const w2 = await watch(top);
    clock.t += 2 * LEASE_MS - 1;
    await ticks();
    expect(w2.ended).toBeUndefined();
  });

  it('a replicated brick that has heard from no holder since it started serves watches for 2·leaseMs, then refuses them', async () => {
    const { clock, top } = await brick(THREE);
    const w = await watch(top);
    clock.t += 2 * LEASE_MS - 1;
    await ticks();
    expect(w.ended).toBeUndefined();
    clock.t += 1;
    await until(() => w.ended !== undefined, () => 'the end');
    expect(w.ended?.details).toEqual({ cursor: 2 });
    expect((await refusal(watch(top))).code).toBe('moved');
  });

  it('a single-brick volume never sends moved, however long it hears nothing', async () => {
    const { clock, top, holder } = await brick();
    await holder.put('/a', '1');
    const w = await watch(top, 2);
    clock.t += 1_000_000;
    await ticks();
    expect(w.ended).toBeUndefined();
    const fresh = await watch(top);
    const rev = await holder.put('/a', '2');
    await until(() => fresh.revs.length === 1 && w.revs.length === 2, () => 'both watches');
    expect(w.revs).toEqual([2, rev]);
    expect(await watchState(top)).toMatchObject({ moved: 0, movedRefused: 0, cutOff: false });
  });
});

describe('the library and the HTTP API over a brick that moves watches', () => {
  it('in-process (one "server"): the library retries the same brick after a pause until it hears a holder, then resumes from the last rev + 1', async () => {
    const { clock, top, holder } = await brick(THREE);
    const vol = new FopVolume((f, c, a) => top.call(f, c, a), async () => undefined);
    await holder.put('/a', '1'); // rev 2
    const c = consume(vol.watch('/', { fromRev: 2 }));
    await until(() => c.revs.length === 1, () => 'rev 2');
    clock.t += 2 * LEASE_MS;
    await until(async () => {
      const st = await watchState(top);
      return st['moved'] === 1 && (st['movedRefused'] as number) >= 2;
    }, () => 'the stream to end moved and its retries to be refused');
    expect(c.error).toBeUndefined(); // the consumer sees nothing of it
    const rev = await holder.put('/a', '2'); // heard again
    await until(() => c.revs.length === 2, () => 'the resumed stream', 10_000);
    await sleep(20);
    expect(c.revs).toEqual([2, rev]);
    expect(c.lines).toEqual(['2 /a=1', `${rev} /a=2`]);
    expect(c.error).toBeUndefined();
  });

  it('GET /v1/watch ends its stream with an error event naming moved, with the cursor to resume from', async () => {
    const { clock, top, holder } = await brick(THREE);
    const vol = new FopVolume((f, c, a) => top.call(f, c, a), async () => undefined);
    const app = buildApi({ volume: vol });
    cleanup.push(() => app.close());
    await holder.put('/a', '1'); // rev 2
    const res = app.inject({ method: 'GET', url: '/v1/watch?prefix=/&fromRev=2' });
    await until(async () => (await watchState(top))['messagesSent'] === 1, () => 'rev 2 sent');
    clock.t += 2 * LEASE_MS;
    const r = await res; // the stream ends
    expect(r.statusCode).toBe(200);
    const frames = r.body.split('\n\n').filter((f) => f.length > 0).map((f) => ({ event: /^event: (.*)$/m.exec(f)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(f)?.[1] ?? 'null') as unknown }));
    expect(frames.map((f) => f.event)).toEqual(['watching', 'events', 'error']);
    expect(frames[2]?.data).toMatchObject({ error: { code: 'moved', details: { cursor: 3 } } });
    expect(await watchState(top)).toMatchObject({ watchers: 0, moved: 1, movedRefused: 0 }); // not retried here
  });
});

// ---- a 3-master volume in this process, its masters linked through proxies that can be cut

describe('moved across a 3-master volume', () => {
  it('a master cut off from the others ends its watches moved; clients resume them on another master (or there, once it hears a holder) from the last rev + 1', async () => {
    const lease = 150;
    const ports = [await freePort(), await freePort(), await freePort()];
    // proxies[i][j]: master i's link to master j.
    const proxies: Proxy[][] = [];
    const sockets = new Set<Socket>();
    cleanup.push(async () => {
      for (const s of sockets) s.destroy();
    });
    for (let i = 0; i < 3; i++) {
      proxies.push([]);
      for (let j = 0; j < 3; j++) {
        const p = await Proxy.start(ports[j] as number, sockets);
        cleanup.push(() => p.close());
        (proxies[i] as Proxy[]).push(p);
      }
    }
    const { plan, masters, open } = await startLocalVolume({
      prefix: 'coordvol-moved-',
      leaseMs: lease,
      ports,
      clientTimeoutMs: 5_000,
      edit: (volfile, i, planned) => {
        let text = volfile;
        for (let j = 0; j < 3; j++) if (j !== i) text = text.replace(`option remote ${planned[j]?.listen}\n`, `option remote 127.0.0.1:${proxies[i]?.[j]?.port}\n`);
        expect(text.match(/option remote 127\.0\.0\.1:(\d+)/g)?.map((l) => Number(l.split(':')[1]))).toEqual([0, 1, 2].filter((j) => j !== i).map((j) => proxies[i]?.[j]?.port));
        return text;
      },
    }, cleanup);
    const all = await open(plan.map((m) => m.listen));
    let holder = '';
    await until(async () => {
      holder = (await all.status().catch(() => undefined))?.volume?.holder ?? '';
      return holder !== '';
    }, () => 'a holder', 30_000);
    const v = plan.findIndex((m) => m.listen !== holder); // cut off a master that does not hold the lock
    const cut = plan[v]?.listen as string;
    const rest = plan.filter((_, i) => i !== v).map((m) => m.listen);
    const writer = await open(rest);
    const viaCut = await open([cut, ...rest]);
    const solo = await open([cut]);
    const clientState = async (vol: RemoteVolume): Promise<Record<string, unknown>> =>
      (await vol.statedump()).find((d) => d.type === 'protocol/client')?.state ?? {};

    const want: string[] = [];
    const write = async (i: number): Promise<void> => {
      const key = `/m/${i % 7}`;
      const r = await writer.put(key, `v${i}`);
      want.push(`${r.rev} ${key}=v${i}`);
    };
    const first = (await writer.put('/m/start', 's')).rev;
    want.push(`${first} /m/start=s`);
    const moving = consume(viaCut.watch('/m/', { fromRev: first }));
    const waiting = consume(solo.watch('/m/', { fromRev: first }));
    for (let i = 1; i <= 30; i++) await write(i);
    await until(() => moving.lines.length === want.length && waiting.lines.length === want.length, () => `${moving.lines.length}, ${waiting.lines.length} of ${want.length}`);
    expect((await clientState(viaCut))['server']).toBe(cut);

    // Cut master v off from the other two, both ways.
    for (let j = 0; j < 3; j++) if (j !== v) (proxies[v]?.[j]?.block(), proxies[j]?.[v]?.block());
    const cutAt = performance.now();
    let i = 31;
    while (performance.now() - cutAt < 8 * lease) await write(i++);
    // Its brick has had no append or heartbeat for 2·leaseMs: its watch streams ended moved.
    const cutWatch = async (): Promise<Record<string, unknown>> =>
      (await (masters[v] as Master).top.call('statedump', {}, {})).find((d) => d.type === 'features/watch')?.state ?? {};
    await until(async () => ((await cutWatch())['moved'] as number) >= 2, () => 'the cut master to end its watches', 20_000);
    expect(await cutWatch()).toMatchObject({ cutOff: true });
    // A watch started now at the cut master is refused there and moves on at once.
    const late = await open([cut, ...rest]);
    const lateWatch = consume(late.watch('/m/', { fromRev: first }));
    for (let k = 0; k < 10; k++) await write(i++);
    await until(() => moving.lines.length === want.length && lateWatch.lines.length === want.length, () => `${moving.lines.length}, ${lateWatch.lines.length} of ${want.length}`, 20_000);
    expect(((await cutWatch())['movedRefused'] as number) >= 1).toBe(true);
    // The client that lists the cut master alone keeps trying it, and gets nothing meanwhile.
    expect(waiting.lines.length).toBeLessThan(want.length);

    // Heal: the cut master hears the holder again, catches up, and serves watches.
    for (let j = 0; j < 3; j++) if (j !== v) (proxies[v]?.[j]?.unblock(), proxies[j]?.[v]?.unblock());
    for (let k = 0; k < 10; k++) await write(i++);
    await until(() => [moving, waiting, lateWatch].every((c) => c.lines.length >= want.length), () => `${moving.lines.length}, ${waiting.lines.length}, ${lateWatch.lines.length} of ${want.length}`, 30_000);
    await sleep(50);
    for (const c of [moving, waiting, lateWatch]) {
      expect(c.error).toBeUndefined();
      expect(c.lines).toEqual(want); // no gap, no duplicate, in rev order
      expect(new Set(c.revs).size).toBe(c.revs.length);
    }
    const moved = await clientState(viaCut);
    expect(moved['movedMoves'] as number).toBeGreaterThanOrEqual(1);
    expect(rest).toContain(moved['server']);
    expect(((await clientState(late))['movedMoves'] as number) >= 1).toBe(true);
    expect(await clientState(solo)).toMatchObject({ movedMoves: 0, server: cut }); // one server: nowhere to move
  }, 120_000);
});
