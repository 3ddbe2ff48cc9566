// Watches over the wire: a master with protocol/server on loopback, connect() on the other side.
//  - a remote watcher whose connections are cut mid-stream (no goaway) resumes after each
//    reconnect from the rev after the last it delivered: no gap, no duplicate;
//  - a client that stops reading has its watch cancelled (slow-consumer) by the server while
//    writes and another watcher go on;
//  - bad watch requests on a raw connection get typed errors, change nothing, and leave the
//    connection open.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type RemoteVolume, type WatchMessage } from '../../src/client/index.js';
import { FopVolume, type Volume } from '../../src/client/volume.js';
import { startMaster, type Master } from '../../src/daemon/master.js';
import { singleBrickVolfile } from '../../src/daemon/volfiles.js';
import { decodeWatchEvent } from '../../translators/features/watch-codec.js';
import { serverPort } from './helpers.js';
import { Proxy, RawClient } from './net-fixtures.js';

const dirs: string[] = [];
const sockets = new Set<Socket>();
const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const c of closers.reverse()) await c().catch(() => undefined);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A master serving on a free port (watch and server translators with the given options), and a local volume on its graph. */
async function serve(watchOptions: Record<string, string> = {}, serverOptions: Record<string, string> = {}): Promise<{ master: Master; port: number; secret: string; local: Volume }> {
  const dir = await mkdtemp(join(tmpdir(), 'coordvol-watch-remote-'));
  dirs.push(dir);
  let text = singleBrickVolfile({ volumeName: 'coordvol', brickDir: 'brick', fsync: false, leaseMs: 10, listen: '127.0.0.1:0' });
  const opts = Object.entries(watchOptions).map(([k, v]) => `    option ${k} ${v}\n`).join('');
  text = text.replace('    type features/watch\n', `    type features/watch\n${opts}`);
  const sopts = Object.entries(serverOptions).map(([k, v]) => `    option ${k} ${v}\n`).join('');
  text = text.replace('    type protocol/server\n', `    type protocol/server\n${sopts}`);
  await writeFile(join(dir, 'm.vol'), text);
  const master = await startMaster({ dir, volfile: join(dir, 'm.vol') });
  closers.push(() => master.close());
  const secret = (await readFile(join(dir, 'secret'), 'utf8')).trim();
  const top = master.top;
  return { master, port: serverPort(master), secret, local: new FopVolume((f, c, a) => top.call(f, c, a), async () => undefined) };
}

async function remote(port: number, secret: string): Promise<RemoteVolume> {
  const v = await connect({ servers: [`127.0.0.1:${port}`], secret, timeoutMs: 10_000 });
  closers.push(() => v.close());
  return v;
}

function watchState(dump: readonly { type: string; state: Readonly<Record<string, unknown>> }[]): Record<string, unknown> {
  return dump.find((d) => d.type === 'features/watch')?.state ?? {};
}

async function until(cond: () => boolean, what: () => string, ms = 20_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const txt = (v: Uint8Array | undefined): string => (v === undefined ? '-' : Buffer.from(v).toString());

describe('watches over the wire', () => {
  it('a watch whose connection is cut mid-stream resumes from its last rev + 1: no gap, no duplicate', async () => {
    const { port, secret, local } = await serve();
    const proxy = await Proxy.start(port, sockets);
    closers.push(() => proxy.close());
    const vol = await remote(proxy.port, secret);
    const first = await local.put('/r/0', 'start');
    const watcher = vol.watch('/r/', { fromRev: first.rev, prevKv: true });
    const got: string[] = [];
    const revs: number[] = [];
    const consuming = (async () => {
      for await (const m of watcher) {
        if (m.kind !== 'events') continue;
        revs.push(m.rev);
        for (const e of m.events) got.push(`${m.rev} ${e.type} ${e.kv.key} ${txt(e.kv.value)} prev=${txt(e.prevKv?.value)}`);
      }
    })();
    const want: string[] = [`${first.rev} put /r/0 start prev=-`];
    const state = new Map<string, string>([['/r/0', 'start']]);
    let cuts = 0;
    for (let i = 1; i <= 1500; i++) {
      const key = `/r/${i % 13}`;
      if (i % 5 === 0 && state.has(key)) {
        const r = await local.delete(key);
        want.push(`${r.rev} delete ${key} - prev=${state.get(key)}`);
        state.delete(key);
      } else {
        const r = await local.put(key, `v${i}`);
        want.push(`${r.rev} put ${key} v${i} prev=${state.get(key) ?? '-'}`);
        state.set(key, `v${i}`);
      }
      if (i % 250 === 0) {
        cuts += proxy.cut();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await until(() => got.length >= want.length, () => `${got.length} of ${want.length} events`);
    expect(cuts).toBeGreaterThanOrEqual(5);
    expect(got).toEqual(want);
    expect(new Set(revs).size).toBe(revs.length);
    const client = (await vol.statedump()).find((d) => d.type === 'protocol/client')?.state as { watches: { cut: number; started: number } };
    expect(client.watches.cut).toBeGreaterThanOrEqual(5); // it really was cut, and resumed each time
    expect(client.watches.started).toBeGreaterThanOrEqual(6);
    await watcher.cancel();
    await consuming;
  }, 60_000);

  it('one rev whose events outgrow a push spans several pushes and arrives as one message', async () => {
    const { port, secret, local } = await serve();
    const vol = await remote(port, secret);
    const value = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 20; i++) await local.put(`/huge/${String(i).padStart(2, '0')}`, value);
    const w = vol.watch('/huge/', { prevKv: true });
    const it = w[Symbol.asyncIterator]();
    await new Promise((r) => setTimeout(r, 50)); // the watch is set up
    const d = await local.delete({ prefix: '/huge/' }); // 20 deletes, each with its 1 MiB prevKv
    const m = (await it.next()).value as WatchMessage;
    expect(m).toMatchObject({ kind: 'events', rev: d.rev });
    const events = m.kind === 'events' ? m.events : [];
    expect(events.map((e) => e.kv.key)).toEqual(Array.from({ length: 20 }, (_, i) => `/huge/${String(i).padStart(2, '0')}`));
    expect(events.every((e) => e.type === 'delete' && e.prevKv?.value?.byteLength === value.byteLength)).toBe(true);
    await w.cancel();
  }, 30_000);

  it('a client that only receives pushes still pings: the server\'s idle timeout does not cut a busy watch', async () => {
    const { port, secret, local } = await serve({}, { 'idle-timeout-ms': '300ms' });
    const vol = await connect({ servers: [`127.0.0.1:${port}`], secret, timeoutMs: 10_000, pingMs: 100 });
    closers.push(() => vol.close());
    const w = vol.watch('/busy/');
    const got: number[] = [];
    const consuming = (async () => {
      for await (const m of w) got.push(m.rev);
    })();
    await new Promise((r) => setTimeout(r, 50));
    let last = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 1_200) {
      last = (await local.put('/busy/k', String(last))).rev;
      await new Promise((r) => setTimeout(r, 30));
    }
    await until(() => got.at(-1) === last, () => `at ${got.at(-1)} of ${last}`);
    const client = (await vol.statedump()).find((d) => d.type === 'protocol/client')?.state as { opens: number; watches: { cut: number } };
    expect(client.opens).toBe(1);
    expect(client.watches.cut).toBe(0);
    await w.cancel();
    await consuming;
  }, 30_000);

  it('a client that stops reading has its watch cancelled (slow-consumer); writes and other watchers go on', async () => {
    const { master, port, secret, local } = await serve({ 'backlog-bytes-max': '256KB' });
    const raw = await RawClient.open(port, secret, sockets);
    const answer = await raw.request('watch', { prefix: '/big/', stream: 7 });
    expect(answer).toMatchObject({ ok: true, result: { fromRev: expect.any(Number) } });
    const fast = (await remote(port, secret)).watch('/big/');
    const seen: WatchMessage[] = [];
    const consuming = (async () => {
      for await (const m of fast) seen.push(m);
    })();
    await new Promise((r) => setTimeout(r, 50)); // the library's watch is set up
    raw.socket.pause();
    const value = Buffer.alloc(64 * 1024, 1);
    let last = 0;
    const t0 = performance.now();
    for (let i = 0; i < 160; i++) last = (await local.put(`/big/${i % 4}`, value)).rev;
    const writeMs = performance.now() - t0;
    await until(() => seen.at(-1)?.rev === last, () => `the other watcher at ${seen.at(-1)?.rev} of ${last}`);
    expect(seen).toHaveLength(160);
    raw.socket.resume();
    await until(() => raw.pushes.some((p) => (p.body as { kind: string }).kind === 'end'), () => `${raw.pushes.length} pushes, no end`);
    const mine = raw.pushes.filter((p) => p.stream === 7);
    const end = mine.at(-1)?.body as { kind: string; error: { code: string } };
    expect(end).toMatchObject({ kind: 'end', error: { code: 'slow-consumer' } });
    // What it did get is a gap-free run of revs, each whole.
    const evRevs = mine.slice(0, -1).map((p) => (p.body as { rev: number }).rev);
    expect(evRevs.length).toBeGreaterThan(0);
    expect(evRevs.length).toBeLessThan(160);
    expect(evRevs).toEqual(Array.from({ length: evRevs.length }, (_, i) => (evRevs[0] as number) + i));
    const ev = decodeWatchEvent((mine[0]?.body as { events: Uint8Array[] }).events[0] as Uint8Array);
    expect(ev).toMatchObject({ type: 'put', kv: { key: '/big/0' } });
    expect(writeMs).toBeLessThan(30_000);
    expect(watchState(await master.top.call('statedump', {}, {}))).toMatchObject({ slowConsumers: 1, watchers: 1 });
    await fast.cancel();
    await consuming;
  }, 60_000);

  it('watchers of one connection whose options agree share one push per rev (also), and each gets every event', async () => {
    const { port, secret, local } = await serve();
    const raw = await RawClient.open(port, secret, sockets);
    for (const stream of [1, 2, 3]) expect(await raw.request('watch', { prefix: '/fan/', stream })).toMatchObject({ ok: true });
    expect(await raw.request('watch', { prefix: '/fan/', stream: 4, prevKv: true })).toMatchObject({ ok: true }); // other options: its own push
    const lib = await remote(port, secret);
    const watchers = [lib.watch('/fan/'), lib.watch('/fan/'), lib.watch('/fan/')];
    const seen: number[][] = watchers.map(() => []);
    const consuming = watchers.map(async (w, i) => {
      for await (const m of w) if (m.kind === 'events') for (const _ of m.events) (seen[i] as number[]).push(m.rev);
    });
    await new Promise((r) => setTimeout(r, 50));
    const revs: number[] = [];
    for (let i = 0; i < 5; i++) revs.push((await local.put(`/fan/${i}`, `v${i}`)).rev);
    await until(() => seen.every((s) => s.length === 5), () => `library watchers saw ${seen.map((s) => s.length).join(', ')} of 5`);
    for (const s of seen) expect(s).toEqual(revs);
    await until(() => raw.pushes.filter((p) => p.stream === 4).length === 5, () => `${raw.pushes.length} raw pushes`);
    const shared = raw.pushes.filter((p) => p.stream !== 4);
    expect(shared).toHaveLength(5); // one per rev for streams 1-3
    for (const [i, p] of shared.entries()) {
      expect(p.body).toMatchObject({ kind: 'events', rev: revs[i] });
      expect([p.stream, ...((p.body as { also: number[] }).also ?? [])].sort()).toEqual([1, 2, 3]);
    }
    await Promise.all(watchers.map((w) => w.cancel()));
    await Promise.all(consuming);
  });

  it('bad watch requests get typed errors, change nothing, and the connection stays open', async () => {
    const { master, port, secret, local } = await serve();
    const raw = await RawClient.open(port, secret, sockets);
    expect(await raw.error('watch', 5)).toBe('invalid-argument');
    expect(await raw.error('watch', { stream: 1 })).toBe('invalid-argument'); // no selector
    expect(await raw.error('watch', { prefix: '/a', key: '/a', stream: 1 })).toBe('invalid-argument');
    expect(await raw.error('watch', { prefix: '/a' })).toBe('invalid-argument'); // no stream
    expect(await raw.error('watch', { prefix: '/a', stream: 0 })).toBe('invalid-argument');
    expect(await raw.error('watch', { prefix: '/a', stream: 2 ** 40 })).toBe('invalid-argument');
    expect(await raw.error('watch', { key: 'k'.repeat(5000), stream: 1 })).toBe('key-too-large');
    expect(await raw.error('watch', { start: '/b', end: '/a', stream: 1 })).toBe('invalid-argument');
    expect(await raw.error('watch', { prefix: '/a', fromRev: -1, stream: 1 })).toBe('invalid-argument');
    expect(await raw.error('watch', { prefix: '/a', fromRev: '3', stream: 1 })).toBe('invalid-argument');
    expect(await raw.error('watch', { prefix: '/a', prevKv: 'yes', stream: 1 })).toBe('invalid-argument');
    expect(await raw.error('unwatch', { stream: 'x' })).toBe('invalid-argument');
    expect(await raw.error('unwatch', null)).toBe('invalid-argument');
    expect(await raw.error('unwatch', { stream: 99 })).toBe('ok'); // nothing to stop
    expect(watchState(await master.top.call('statedump', {}, {}))).toMatchObject({ watchers: 0, watches: 0 });
    // Compacted history: refused with the compact rev.
    await local.put('/a/x', '1');
    const p = await local.put('/a/x', '2');
    await local.compact(p.rev);
    const c = await raw.request('watch', { prefix: '/a', fromRev: 1, stream: 1 });
    expect(c).toMatchObject({ ok: false, error: { code: 'compacted', details: { compactRev: p.rev } } });
    // A good watch, then the same stream again.
    expect(await raw.request('watch', { prefix: '/a', fromRev: p.rev + 1, stream: 2 })).toMatchObject({ ok: true, result: { fromRev: p.rev + 1 } });
    expect(await raw.error('watch', { prefix: '/b', stream: 2 })).toBe('invalid-argument');
    expect(watchState(await master.top.call('statedump', {}, {}))).toMatchObject({ watchers: 1 });
    // The connection is still open: its watch delivers.
    const w = await local.put('/a/y', 'z');
    await until(() => raw.pushes.length > 0, () => 'no push');
    expect(raw.pushes[0]).toMatchObject({ stream: 2, body: { kind: 'events', rev: w.rev } });
    expect(await raw.error('unwatch', { stream: 2 })).toBe('ok');
    expect(watchState(await master.top.call('statedump', {}, {}))).toMatchObject({ watchers: 0 });
    // A closed connection takes its watches with it.
    expect(await raw.error('watch', { prefix: '/a', stream: 3 })).toBe('ok');
    expect(watchState(await master.top.call('statedump', {}, {}))).toMatchObject({ watchers: 1 });
    raw.socket.destroy();
    const t0 = performance.now();
    while (performance.now() - t0 < 5_000 && watchState(await master.top.call('statedump', {}, {}))['watchers'] !== 0) await new Promise((r) => setTimeout(r, 10));
    expect(watchState(await master.top.call('statedump', {}, {}))).toMatchObject({ watchers: 0 });
  });
});
