// The session routes of the HTTP API through inject(): open, keepalive, list, close; ephemeral
// and sequential puts; a session the HTTP client stops keeping alive expires (the API's process
// does not keep it alive); and bad input refused with typed errors, changing nothing.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/app.js';
import { sessionFops } from '../../src/api/routes-sessions.js';
import { FopVolume, type FopCaller } from '../../src/client/volume.js';
import { startMaster, type Master } from '../../src/daemon/master.js';

const TTL = 2_000;

let dir: string;
let master: Master;
let vol: FopVolume;
let app: FastifyInstance;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-session-api-'));
  master = await startMaster({ dir, fsync: false, leaseMs: 10 });
  const top = master.top;
  const caller: FopCaller = (fop, ctx, args) => top.call(fop, ctx, args);
  vol = new FopVolume(caller, async () => undefined);
  app = buildApi({ volume: vol, sessions: sessionFops(caller) });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await master?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Response bodies, read loosely: the assertions check their shape. */
type Json = Record<string, any>;

async function call(method: 'GET' | 'PUT' | 'DELETE' | 'POST', url: string, payload?: string | object): Promise<{ status: number; body: Json }> {
  const r = await app.inject({ method, url, ...(payload !== undefined ? { payload } : {}) });
  return { status: r.statusCode, body: r.json() as Json };
}

/** The volume's rev, sessions and keys: what a refused request must leave as it was. */
async function snapshot(): Promise<unknown> {
  const { rev, kvs } = await vol.range('');
  const { sessions } = await vol.sessions();
  return { rev, keys: kvs.map((k) => k.key), sessions: sessions.map((s) => s.id) };
}

describe('/v1/sessions', () => {
  it('opens a session, makes ephemeral and sequential keys with it, lists it, and closes it', async () => {
    const open = await call('POST', '/v1/sessions', { ttlMs: TTL, owner: 'web-1' });
    expect(open).toEqual({ status: 200, body: { id: expect.any(Number), ttlMs: TTL, rev: expect.any(Number) } });
    const id = open.body['id'] as number;

    const put = await call('PUT', `/v1/kv/svc/web-1?session=${id}`, 'up');
    expect(put.status).toBe(200);
    expect((await vol.get('/svc/web-1')).kv?.session).toBe(id);
    const seq = await call('PUT', `/v1/kv/svc/q-?session=${id}&sequential=true`, 'x');
    expect(seq.body['key']).toMatch(/^\/svc\/q-\d{20}$/);
    const plainSeq = await call('PUT', '/v1/kv/jobs/j-?sequential=true', 'y');
    expect(plainSeq.body['key']).toMatch(/^\/jobs\/j-\d{20}$/);
    expect((await vol.get(plainSeq.body['key'] as string)).kv?.session).toBe(0);

    const ls = await call('GET', '/v1/sessions');
    expect(ls.status).toBe(200);
    expect(ls.body['sessions']).toEqual([{ id, ttlMs: TTL, remainingMs: expect.any(Number), owner: 'web-1', keys: 2, state: 'active', client: false }]);

    expect(await call('PUT', `/v1/sessions/${id}/keepalive`)).toEqual({ status: 200, body: { id, ttlMs: TTL } });

    const close = await call('DELETE', `/v1/sessions/${id}`);
    expect(close).toEqual({ status: 200, body: { rev: expect.any(Number) } });
    expect((await vol.range('/svc/')).count).toBe(0); // at once
    expect((await vol.get(plainSeq.body['key'] as string)).kv).toBeDefined();
    expect((await call('GET', '/v1/sessions')).body['sessions']).toEqual([]);

    // Ended: keepalive, close and puts name it with typed errors.
    const ka = await call('PUT', `/v1/sessions/${id}/keepalive`);
    expect([ka.status, ka.body['error']['code']]).toEqual([404, 'session-expired']);
    const again = await call('DELETE', `/v1/sessions/${id}`);
    expect([again.status, again.body['error']['code']]).toEqual([404, 'session-expired']);
  });

  it('names the owner after the HTTP client by default, and finds a retried open by its nonce', async () => {
    const nonce = 'ab'.repeat(16);
    const a = await call('POST', '/v1/sessions', { ttlMs: TTL, nonce });
    const b = await call('POST', '/v1/sessions', { ttlMs: TTL, nonce });
    expect(b.body['id']).toBe(a.body['id']);
    expect((await vol.sessions()).sessions).toEqual([expect.objectContaining({ id: a.body['id'], owner: 'http:127.0.0.1' })]);
    await call('DELETE', `/v1/sessions/${a.body['id']}`);
  });

  it('is kept alive by the HTTP client only: it expires within ttl + ttl/3 once keepalives stop', async () => {
    const id = (await call('POST', '/v1/sessions', { ttlMs: TTL })).body['id'] as number;
    await call('PUT', `/v1/kv/alive/h?session=${id}`, 'up');
    // Keepalives every ttl/3 for two ttls: the key stays.
    for (let i = 0; i < 6; i++) {
      await sleep(TTL / 3);
      expect((await call('PUT', `/v1/sessions/${id}/keepalive`)).status).toBe(200);
    }
    expect((await vol.get('/alive/h')).kv?.session).toBe(id);
    const stoppedAt = performance.now();
    while ((await vol.get('/alive/h')).kv !== undefined) await sleep(20);
    const tookMs = performance.now() - stoppedAt;
    expect(tookMs).toBeGreaterThan(TTL / 2);
    expect(tookMs).toBeLessThanOrEqual(TTL + TTL / 3);
    expect((await call('PUT', `/v1/sessions/${id}/keepalive`)).body['error']['code']).toBe('session-expired');
  }, 20_000);
});

describe('bad input', () => {
  it('refuses bad opens, ids and put parameters with typed errors, changing nothing', async () => {
    const before = await snapshot();
    const cases: [method: 'POST' | 'PUT' | 'DELETE', url: string, payload: string | object | undefined, status: number, code: string][] = [
      ['POST', '/v1/sessions', { ttlMs: 100 }, 400, 'invalid-argument'], // below max(2 s, 4·leaseMs)
      ['POST', '/v1/sessions', { ttlMs: 3_600_001 }, 400, 'invalid-argument'],
      ['POST', '/v1/sessions', { ttlMs: 'soon' }, 400, 'invalid-argument'],
      ['POST', '/v1/sessions', { ttlMs: 2500.5 }, 400, 'invalid-argument'],
      ['POST', '/v1/sessions', {}, 400, 'invalid-argument'],
      ['POST', '/v1/sessions', { ttlMs: TTL, extra: 1 }, 400, 'invalid-argument'],
      ['POST', '/v1/sessions', { ttlMs: TTL, nonce: 'not-hex' }, 400, 'invalid-argument'],
      ['POST', '/v1/sessions', { ttlMs: TTL, owner: 'x'.repeat(257) }, 400, 'invalid-argument'],
      ['POST', '/v1/sessions', 'ttlMs=2000', 415, 'invalid-argument'], // not JSON
      ['POST', '/v1/sessions?ttlMs=2000', undefined, 400, 'invalid-argument'],
      ['PUT', '/v1/sessions/abc/keepalive', undefined, 400, 'invalid-argument'],
      ['PUT', '/v1/sessions/0/keepalive', undefined, 400, 'invalid-argument'],
      ['PUT', '/v1/sessions/999999/keepalive', undefined, 404, 'session-expired'],
      ['DELETE', '/v1/sessions/-3', undefined, 400, 'invalid-argument'],
      ['DELETE', '/v1/sessions/999999', undefined, 404, 'session-expired'],
      ['PUT', '/v1/kv/eph/x?session=999999', 'v', 404, 'session-not-found'],
      ['PUT', '/v1/kv/eph/x?session=0', 'v', 400, 'invalid-argument'],
      ['PUT', '/v1/kv/eph/x?session=abc', 'v', 400, 'invalid-argument'],
      ['PUT', '/v1/kv/eph/x?sequential=maybe', 'v', 400, 'invalid-argument'],
      ['PUT', '/v1/kv/_coordvol/x?sequential=true', 'v', 403, 'reserved-key'],
    ];
    for (const [method, url, payload, status, code] of cases) {
      const r = await call(method, url, payload);
      expect([method, url, r.status, r.body['error']?.['code']]).toEqual([method, url, status, code]);
      expect(r.body['error']['message']).toEqual(expect.any(String));
    }
    expect(await snapshot()).toEqual(before);
  });

  it('lists sessions but serves no session control without the bare session fops', async () => {
    const plain = buildApi({ volume: vol });
    try {
      expect((await plain.inject({ method: 'GET', url: '/v1/sessions' })).statusCode).toBe(200);
      const r = await plain.inject({ method: 'POST', url: '/v1/sessions', payload: { ttlMs: TTL } });
      expect([r.statusCode, (r.json() as Json)['error']['code']]).toEqual([404, 'not-found']);
    } finally {
      await plain.close();
    }
  });
});
