// GET /v1/watch as server-sent events on a real listening fastify: frames with ids, prevKv,
// Last-Event-ID resumption, "from now" without a start, bad input refused before the stream
// (400), the bearer token, and an app close that ends open streams.
import { request, type IncomingMessage } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../../src/api/listen.js';
import { openVolume, type EmbeddedVolume } from '../../src/client/index.js';

let dir: string;
let vol: EmbeddedVolume;
let api: RunningApi;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-watch-http-'));
  vol = await openVolume({ dir, fsync: false, leaseMs: 10 });
  api = await startApi({ volume: vol, host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await api?.close();
  await vol?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Frame {
  readonly id?: string;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** An SSE stream: its status, and its frames as they arrive. */
class Sse {
  readonly frames: Frame[] = [];
  status = 0;
  contentType = '';
  body = '';
  ended = false;
  private buf = '';
  private res: IncomingMessage | undefined;
  readonly started: Promise<void>;

  constructor(base: string, path: string, headers: Record<string, string> = {}) {
    this.started = new Promise((ok, fail) => {
      const req = request(`${base}${path}`, { headers }, (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        this.contentType = String(res.headers['content-type']);
        res.setEncoding('utf8');
        res.on('data', (c: string) => this.take(c));
        res.on('end', () => (this.ended = true));
        res.on('error', () => (this.ended = true));
        ok();
      });
      req.on('error', fail);
      req.end();
    });
  }

  private take(chunk: string): void {
    this.body += chunk;
    this.buf += chunk;
    let cut: number;
    while ((cut = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, cut);
      this.buf = this.buf.slice(cut + 2);
      const f: { id?: string; event?: string; data?: string } = {};
      for (const line of block.split('\n')) {
        const m = /^(\w+): ?(.*)$/.exec(line);
        const v = m?.[2] ?? '';
        if (m?.[1] === 'id') f.id = v;
        else if (m?.[1] === 'event') f.event = v;
        else if (m?.[1] === 'data') f.data = v;
      }
      if (f.event) this.frames.push({ ...(f.id !== undefined ? { id: f.id } : {}), event: f.event, data: JSON.parse(f.data ?? '{}') as Record<string, unknown> });
    }
  }

  async waitFor(n: number, ms = 5_000): Promise<void> {
    const t0 = performance.now();
    while (this.frames.length < n && !this.ended) {
      if (performance.now() - t0 > ms) throw new Error(`${this.frames.length} of ${n} frames: ${this.body}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async waitEnd(ms = 5_000): Promise<void> {
    const t0 = performance.now();
    while (!this.ended) {
      if (performance.now() - t0 > ms) throw new Error(`not ended: ${this.body}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): void {
    this.res?.destroy();
  }
}

describe('GET /v1/watch (server-sent events)', () => {
  it('streams each rev as an `events` frame with its rev as id, prevKv included', async () => {
    const a = await vol.put('/h/a', 'one');
    const s = new Sse(api.address, `/v1/watch?prefix=/h/&fromRev=${a.rev}&prevKv=true`);
    await s.started;
    expect(s.status).toBe(200);
    expect(s.contentType).toMatch(/^text\/event-stream/);
    const b = await vol.put('/h/a', 'two');
    await vol.put('/other', 'x');
    const d = await vol.delete('/h/a');
    await s.waitFor(4);
    expect(s.frames[0]).toEqual({ event: 'watching', data: { fromRev: a.rev } });
    expect(s.frames.slice(1).map((f) => [f.id, f.event])).toEqual([[String(a.rev), 'events'], [String(b.rev), 'events'], [String(d.rev), 'events']]);
    expect(s.frames[2]?.data).toMatchObject({
      rev: b.rev,
      events: [{ type: 'put', kv: { key: '/h/a', value: 'two', valueBase64: Buffer.from('two').toString('base64'), modRev: b.rev, version: 2 }, prevKv: { value: 'one', modRev: a.rev } }],
    });
    expect(s.frames[3]?.data).toMatchObject({ rev: d.rev, events: [{ type: 'delete', kv: { key: '/h/a', modRev: d.rev }, prevKv: { value: 'two' } }] });
    s.close();
  });

  it('without fromRev it starts after the current rev; with Last-Event-ID it goes on after that rev', async () => {
    const before = await vol.put('/n/x', 'old');
    const s = new Sse(api.address, '/v1/watch?prefix=/n/');
    await s.waitFor(1);
    expect(s.frames[0]).toEqual({ event: 'watching', data: { fromRev: before.rev + 1 } });
    const r1 = await vol.put('/n/x', 'new');
    const r2 = await vol.put('/n/y', 'next');
    await s.waitFor(3);
    expect(s.frames.slice(1).map((f) => f.id)).toEqual([String(r1.rev), String(r2.rev)]);
    s.close();
    // An EventSource reconnecting after r1: the stream resumes at r1 + 1.
    const again = new Sse(api.address, '/v1/watch?prefix=/n/', { 'last-event-id': String(r1.rev) });
    await again.waitFor(2);
    expect(again.frames.map((f) => [f.event, f.id])).toEqual([['watching', undefined], ['events', String(r2.rev)]]);
    again.close();
  });

  it('bad input is refused with 400 before any stream; compaction after the start is an error frame', async () => {
    for (const q of ['prefix=/a&start=/b', 'end=/b', 'prefix=/x&fromRev=0', 'prefix=/x&fromRev=abc', 'prefix=/x&bogus=1', 'start=/b&end=/a', `prefix=/x&prevKv=maybe`]) {
      const s = new Sse(api.address, `/v1/watch?${q}`);
      await s.waitEnd();
      expect(s.status, q).toBe(400);
      expect(JSON.parse(s.body || '{}'), q).toMatchObject({ error: { code: 'invalid-argument' } });
    }
    const r = await vol.put('/z/a', '1');
    await vol.compact(r.rev);
    const s = new Sse(api.address, '/v1/watch?prefix=/z/&fromRev=1');
    await s.waitFor(2);
    expect(s.frames[1]).toMatchObject({ event: 'error', data: { error: { code: 'compacted', details: { compactRev: r.rev } } } });
    await s.waitEnd();
  });

  it('a token-protected API refuses a watch without the token; closing the app ends open streams', async () => {
    const guarded = await startApi({ volume: vol, host: '127.0.0.1', port: 0, token: 'sesame' });
    const no = new Sse(guarded.address, '/v1/watch?prefix=/');
    await no.waitEnd();
    expect(no.status).toBe(401);
    const yes = new Sse(guarded.address, '/v1/watch?prefix=/', { authorization: 'Bearer sesame' });
    await yes.waitFor(1);
    expect(yes.status).toBe(200);
    const t0 = performance.now();
    await guarded.close();
    expect(performance.now() - t0).toBeLessThan(3_000);
    await yes.waitEnd();
    // Every stream's watch is gone: closed by its client, ended by an error, or by the app's close.
    const watchers = async (): Promise<unknown> => (await vol.statedump()).find((d) => d.type === 'features/watch')?.state['watchers'];
    const t1 = performance.now();
    while ((await watchers()) !== 0 && performance.now() - t1 < 5_000) await new Promise((r) => setTimeout(r, 10));
    expect(await watchers()).toBe(0);
  });
});
