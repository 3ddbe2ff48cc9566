// The HTTP API (DESIGN §9) over an embedded volume, through inject() (no socket) except for one
// real listener: every route, every error status, auth, and the /metrics text line by line.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openVolume, type EmbeddedVolume, type Volume } from '../../src/client/index.js';
import { buildApi } from '../../src/api/app.js';
import { isLoopback, startApi, type RunningApi } from '../../src/api/listen.js';
import { renderMetrics } from '../../src/api/metrics.js';
import { coordError, ERROR_CODES, type ErrorCode } from '../../src/common/errors.js';
import { keyBytesMax, valueBytesMax } from '../../src/common/limits.js';
import { refusal } from './helpers.js';

let dir: string;
let vol: EmbeddedVolume;
let app: FastifyInstance;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-api-'));
  vol = await openVolume({ dir, fsync: false, leaseMs: 10 });
  app = buildApi({ volume: vol, extraMetrics: () => '# HELP test_connections Test.\n# TYPE test_connections gauge\ntest_connections 7' });
  await app.ready();
});

afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await app.close();
  await vol.close();
  await rm(dir, { recursive: true, force: true });
});

/** Response bodies, read loosely: the assertions check their shape. */
type Json = Record<string, any>;

async function call(method: 'GET' | 'PUT' | 'DELETE' | 'POST' | 'HEAD', url: string, payload?: string | Buffer | object, headers?: Record<string, string>) {
  const r = await app.inject({ method, url, ...(payload !== undefined ? { payload } : {}), ...(headers ? { headers } : {}) });
  return { status: r.statusCode, headers: r.headers, raw: r.rawPayload, body: String(r.headers['content-type'] ?? '').startsWith('application/json') ? (r.json() as Json) : undefined, text: r.body };
}

/** The refusal's status and code. */
async function refused(method: 'GET' | 'PUT' | 'DELETE' | 'POST', url: string, payload?: string | Buffer | object): Promise<[number, string]> {
  const r = await call(method, url, payload);
  expect(r.body?.['error']?.message).toEqual(expect.any(String));
  return [r.status, r.body?.['error']?.code as string];
}

describe('/v1/kv', () => {
  it('puts any body byte for byte and reads it back as JSON and raw', async () => {
    const put = await call('PUT', '/v1/kv/t/text', 'héllo ✓', { 'content-type': 'text/plain' });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ rev: expect.any(Number), key: '/t/text' });
    const get = await call('GET', '/v1/kv/t/text');
    expect(get.body).toEqual({
      rev: put.body!['rev'],
      kv: { key: '/t/text', value: 'héllo ✓', valueBase64: Buffer.from('héllo ✓').toString('base64'), createRev: put.body!['rev'], modRev: put.body!['rev'], version: 1, session: 0 },
    });
    // A JSON body is a value like any other: stored as sent, not parsed.
    await call('PUT', '/v1/kv/t/json', '{ "a": 1 }', { 'content-type': 'application/json' });
    expect((await call('GET', '/v1/kv/t/json?raw=true')).text).toBe('{ "a": 1 }');
  });

  it('round-trips binary values: value is null, valueBase64 and raw carry the bytes', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const put = await call('PUT', '/v1/kv/t/bin', bytes, { 'content-type': 'application/octet-stream' });
    expect(put.status).toBe(200);
    const get = await call('GET', '/v1/kv/t/bin');
    expect(get.body?.['kv']?.value).toBeNull();
    expect(Buffer.from(get.body?.['kv']?.valueBase64 as string, 'base64').equals(bytes)).toBe(true);
    const raw = await call('GET', '/v1/kv/t/bin?raw=true');
    expect(raw.status).toBe(200);
    expect(raw.headers['content-type']).toBe('application/octet-stream');
    expect(raw.raw.equals(bytes)).toBe(true);
    expect(raw.headers['x-coordvol-mod-rev']).toBe(String(put.body!['rev']));
    expect(raw.headers['x-coordvol-version']).toBe('1');
    expect(Number(raw.headers['x-coordvol-rev'])).toBeGreaterThanOrEqual(put.body!['rev'] as number);
  });

  it('stores an empty body as an empty value', async () => {
    expect((await call('PUT', '/v1/kv/t/empty')).status).toBe(200);
    expect((await call('GET', '/v1/kv/t/empty')).body?.['kv']).toMatchObject({ value: '', valueBase64: '', version: 1 });
  });

  it("decodes the key from the path: '/' + the rest, percent-escapes included", async () => {
    await call('PUT', '/v1/kv/odd/a%2Fb%3Fc%25d%20e%23', 'x');
    expect((await vol.get('/odd/a/b?c%d e#')).kv?.key).toBe('/odd/a/b?c%d e#');
    expect((await call('GET', '/v1/kv/odd/a/b%3Fc%25d%20e%23')).status).toBe(200);
    expect(await refused('PUT', '/v1/kv/odd/%zz', 'x')).toEqual([400, 'invalid-argument']);
    expect(await refused('PUT', '/v1/kv/odd/%00', 'x')).toEqual([400, 'invalid-argument']);
  });

  it('answers a missing key with 404 not-found and the rev it read at', async () => {
    const r = await call('GET', '/v1/kv/t/missing');
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ rev: vol.seenRev, error: { code: 'not-found', message: expect.any(String), details: { key: '/t/missing' } } });
    expect(await refused('GET', '/v1/kv/t/missing?raw=true')).toEqual([404, 'not-found']);
  });

  it('returns the previous kv on put and delete with prevKv, and deletes prefixes', async () => {
    await call('PUT', '/v1/kv/p/a', 'one');
    const put = await call('PUT', '/v1/kv/p/a?prevKv=true', 'two');
    expect(put.body?.['prevKv']).toMatchObject({ key: '/p/a', value: 'one', version: 1 });
    await call('PUT', '/v1/kv/p/b', 'b');
    await call('PUT', '/v1/kv/p/c/d', 'd');
    const del = await call('DELETE', '/v1/kv/p/a?prevKv=true');
    expect(del.body).toEqual({ rev: expect.any(Number), deleted: 1, prevKvs: [expect.objectContaining({ key: '/p/a', value: 'two', version: 2 })] });
    const none = await call('DELETE', '/v1/kv/p/a');
    expect(none.body).toEqual({ rev: del.body!['rev'], deleted: 0 }); // nothing deleted: no new rev
    const prefix = await call('DELETE', '/v1/kv/p/?prefix=true');
    expect(prefix.body).toMatchObject({ deleted: 2 });
    expect((await vol.range('/p/')).count).toBe(0);
  });

  it('reads at an older rev and serializably', async () => {
    const first = await call('PUT', '/v1/kv/h/k', 'v1');
    await call('PUT', '/v1/kv/h/k', 'v2');
    expect((await call('GET', `/v1/kv/h/k?rev=${first.body!['rev']}`)).body?.['kv']?.value).toBe('v1');
    expect((await call('GET', '/v1/kv/h/k?consistency=serializable')).body?.['kv']?.value).toBe('v2');
  });

  it('refuses oversized values with 413 value-too-large, from the store or the body limit', async () => {
    expect((await call('PUT', '/v1/kv/big/max', Buffer.alloc(valueBytesMax), { 'content-type': 'application/octet-stream' })).status).toBe(200);
    expect(await refused('PUT', '/v1/kv/big/over', Buffer.alloc(valueBytesMax + 1))).toEqual([413, 'value-too-large']);
    expect(await refused('PUT', '/v1/kv/big/way-over', Buffer.alloc(2 * valueBytesMax))).toEqual([413, 'value-too-large']);
    expect((await vol.range('/big/')).count).toBe(1);
  });

  it('refuses reserved and oversized keys', async () => {
    expect(await refused('PUT', '/v1/kv/_coordvol/x', 'v')).toEqual([403, 'reserved-key']);
    expect(await refused('DELETE', '/v1/kv/_coordvol/x')).toEqual([403, 'reserved-key']);
    expect(await refused('PUT', `/v1/kv/${'k'.repeat(keyBytesMax)}`, 'v')).toEqual([400, 'key-too-large']);
  });

  it('refuses bad query parameters with 400 invalid-argument, naming the parameter', async () => {
    for (const q of ['rev=abc', 'rev=-1', 'rev=1.5', 'raw=maybe', 'consistency=strong', 'bogus=1']) {
      const r = await call('GET', `/v1/kv/t/text?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body?.['error']).toMatchObject({ code: 'invalid-argument', details: { validation: expect.any(Array) } });
    }
    expect(await refused('PUT', '/v1/kv/t/text?prevKv=yes', 'v')).toEqual([400, 'invalid-argument']);
    expect(await refused('DELETE', '/v1/kv/t/text?prefix=1x')).toEqual([400, 'invalid-argument']);
  });

  it('refuses a rev above the current one with 400 future-rev', async () => {
    expect(await refused('GET', `/v1/kv/t/text?rev=${vol.seenRev + 1000}`)).toEqual([400, 'future-rev']);
  });
});

describe('/v1/range', () => {
  beforeAll(async () => {
    for (const k of ['/r/a', '/r/b/1', '/r/b/2', '/r/c/x/y', '/rz']) await vol.put(k, `v${k}`);
  });

  it('lists a prefix in key order', async () => {
    const r = await call('GET', '/v1/range?prefix=/r/');
    expect(r.body).toMatchObject({ count: 4, more: false });
    expect((r.body?.['kvs'] as Json[]).map((kv) => [kv['key'], kv['value']])).toEqual([
      ['/r/a', 'v/r/a'], ['/r/b/1', 'v/r/b/1'], ['/r/b/2', 'v/r/b/2'], ['/r/c/x/y', 'v/r/c/x/y'],
    ]);
  });

  it('takes start and end, limit, keysOnly and countOnly', async () => {
    const r = await call('GET', '/v1/range?start=/r/b&end=/r/c&limit=1&keysOnly=true');
    expect(r.body).toMatchObject({ count: 2, more: true });
    expect(r.body?.['kvs']).toEqual([{ key: '/r/b/1', createRev: expect.any(Number), modRev: expect.any(Number), version: 1, session: 0 }]);
    const c = await call('GET', '/v1/range?prefix=/r&countOnly=true');
    expect(c.body).toMatchObject({ count: 5, kvs: [] });
  });

  it('lists the direct children of a path', async () => {
    const r = await call('GET', '/v1/range?prefix=/r&children=true');
    expect(r.body?.['children']).toEqual(['a', 'b', 'c']);
  });

  it('refuses bad selectors and options', async () => {
    expect(await refused('GET', '/v1/range')).toEqual([400, 'invalid-argument']);
    expect(await refused('GET', '/v1/range?prefix=/r&start=/r')).toEqual([400, 'invalid-argument']);
    expect(await refused('GET', '/v1/range?prefix=/r&end=/s')).toEqual([400, 'invalid-argument']);
    expect(await refused('GET', '/v1/range?start=/s&end=/r')).toEqual([400, 'invalid-argument']);
    expect(await refused('GET', '/v1/range?prefix=/r&limit=0')).toEqual([400, 'invalid-argument']);
    expect(await refused('GET', '/v1/range?prefix=/r&limit=ten')).toEqual([400, 'invalid-argument']);
    expect(await refused('GET', '/v1/range?start=/r&children=true')).toEqual([400, 'invalid-argument']);
  });
});

describe('/v1/txn', () => {
  const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
  const lock = { compare: [{ key: '/x/leader', target: 'exists', op: '=', value: false }] };

  it('takes the success branch, with values as text or base64', async () => {
    const r = await call('POST', '/v1/txn', {
      ...lock,
      success: [
        { op: 'put', key: '/x/leader', valueBase64: b64(Buffer.from([0, 0xfe, 0xff])) },
        { op: 'put', key: '/x/term', value: '1' },
        { op: 'range', prefix: '/x/' },
      ],
      failure: [{ op: 'get', key: '/x/leader' }],
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ succeeded: true, results: [{ op: 'put', key: '/x/leader' }, { op: 'put', key: '/x/term' }, { op: 'range', count: 2, more: false }] });
    expect(r.body?.['results'][2].kvs[0]).toMatchObject({ key: '/x/leader', value: null, valueBase64: b64(Buffer.from([0, 0xfe, 0xff])) });
  });

  it('takes the failure branch when a compare fails, and compares values given in base64', async () => {
    const r = await call('POST', '/v1/txn', { ...lock, success: [{ op: 'delete', key: '/x/leader' }], failure: [{ op: 'get', key: '/x/leader' }, { op: 'get', key: '/x/none' }] });
    expect(r.body).toMatchObject({ succeeded: false, results: [{ op: 'get', kv: { key: '/x/leader', valueBase64: 'AP7/' } }, { op: 'get', kv: null }] });
    const cas = await call('POST', '/v1/txn', {
      compare: [{ key: '/x/leader', target: 'value', op: '=', valueBase64: 'AP7/' }, { key: '/x/term', target: 'value', op: '=', value: '1' }],
      success: [{ op: 'delete', prefix: '/x/', prevKv: true }],
    });
    expect(cas.body).toMatchObject({ succeeded: true, results: [{ op: 'delete', deleted: 2, prevKvs: [{ key: '/x/leader' }, { key: '/x/term', value: '1' }] }] });
  });

  it('refuses malformed txns with 400', async () => {
    const bad: object[] = [
      { success: [{ op: 'put', key: '/x/a' }] }, // no value
      { success: [{ op: 'put', key: '/x/a', value: 'a', valueBase64: 'YQ==' }] },
      { success: [{ op: 'put', key: '/x/a', valueBase64: 'not base64!' }] },
      { success: [{ op: 'get', key: '/x/a', value: 'a' }] },
      { success: [{ op: 'put', key: '/x/a', value: 'a' }, { op: 'put', key: '/x/a', value: 'b' }] },
      { success: [{ op: 'frobnicate', key: '/x/a' }] },
      { compare: [{ key: '/x/a', target: 'value', op: '=', value: 5 }] },
      { compare: [{ key: '/x/a', target: 'version', op: '=', valueBase64: 'YQ==' }] },
      { compare: [{ key: '/x/a', target: 'color', op: '=', value: 1 }] },
      { succes: [] },
    ];
    for (const t of bad) expect(await refused('POST', '/v1/txn', t), JSON.stringify(t)).toEqual([400, 'invalid-argument']);
    const truncated = await call('POST', '/v1/txn', '{ "success": ', { 'content-type': 'application/json' });
    expect([truncated.status, truncated.body?.['error']?.code]).toEqual([400, 'invalid-argument']);
    const r = await call('POST', '/v1/txn', 'compare=1', { 'content-type': 'application/x-www-form-urlencoded' });
    expect([r.status, r.body?.['error']?.code]).toEqual([415, 'invalid-argument']);
    expect(await refused('POST', '/v1/txn', { success: [{ op: 'put', key: '/_coordvol/x', value: 'v' }] })).toEqual([403, 'reserved-key']);
    // Over 1,024 ops in all (each list is within its own bound): the store's too-large.
    const gets = Array.from({ length: 600 }, () => ({ op: 'get', key: '/x/a' }));
    expect(await refused('POST', '/v1/txn', { success: gets, failure: gets })).toEqual([400, 'too-large']);
    expect((await vol.range('/x/')).count).toBe(0);
  });
});

describe('inspection and compaction', () => {
  it('serves status, statedump and profile as JSON', async () => {
    const status = await call('GET', '/v1/status');
    expect(status.body?.['volume']).toMatchObject({ volumeName: 'coordvol', quorum: 1 });
    const dump = await call('GET', '/v1/statedump');
    expect((dump.body as unknown as Json[]).map((d) => d['type'])).toContain('storage/lmdb');
    const profile = await call('GET', '/v1/profile');
    expect((profile.body as unknown as Json[])[0]).toMatchObject({ name: 'coordvol', fops: { put: { count: expect.any(Number) } } });
    expect(await refused('GET', '/v1/status?verbose=true')).toEqual([400, 'invalid-argument']);
  });

  it('compacts, then reads below the compact rev get 410 compacted', async () => {
    const old = await call('PUT', '/v1/kv/c/k', 'old');
    await call('PUT', '/v1/kv/c/k', 'new');
    const at = vol.seenRev;
    const r = await call('POST', '/v1/compact', { rev: at });
    expect(r.body).toEqual({ rev: at + 1, compactRev: at });
    expect(await refused('GET', `/v1/kv/c/k?rev=${old.body!['rev']}`)).toEqual([410, 'compacted']);
    expect(await refused('GET', `/v1/range?prefix=/c/&rev=${old.body!['rev']}`)).toEqual([410, 'compacted']);
    expect(await refused('POST', '/v1/compact', { rev: 'soon' })).toEqual([400, 'invalid-argument']);
    expect(await refused('POST', '/v1/compact', {})).toEqual([400, 'invalid-argument']);
  });

  it('answers unknown routes with 404 not-found', async () => {
    expect(await refused('GET', '/v2/kv/a')).toEqual([404, 'not-found']);
  });
});

/** One sample line of the text format: name, labels, value. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$/;

function parseMetrics(text: string): Map<string, number> {
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  const samples = new Map<string, number>();
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'HELP') helped.add(meta[2]!);
      else {
        expect(['counter', 'gauge', 'summary', 'histogram', 'untyped']).toContain(meta[3]);
        expect(typed.has(meta[2]!), `second TYPE for ${meta[2]}`).toBe(false);
        typed.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = SAMPLE.exec(line);
    expect(m, line).not.toBeNull();
    const [, name, labels, value] = m!;
    // A summary's _sum and _count series belong to its family (the text format's rule).
    const base = /_(sum|count)$/.test(name!) && typed.get(name!.replace(/_(sum|count)$/, '')) === 'summary' ? name!.replace(/_(sum|count)$/, '') : name!;
    expect(typed.has(base) && helped.has(base), `HELP and TYPE before ${name}`).toBe(true);
    const n = Number(value);
    expect(Number.isFinite(n), line).toBe(true);
    samples.set(`${name}{${labels ?? ''}}`, n);
  }
  return samples;
}

describe('/metrics', () => {
  it('exposes fop counts, latency and volume gauges in the text format, counts growing', async () => {
    const first = await call('GET', '/metrics');
    expect(first.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const before = parseMetrics(first.text);
    const gets = 'coordvol_fop_total{translator="coordvol",fop="get"}';
    expect(before.get(gets)).toBeGreaterThan(0);
    expect(before.get('coordvol_fop_errors_total{translator="coordvol",fop="get"}')).toBeGreaterThan(0);
    expect(before.get('coordvol_fop_latency_ms{translator="coordvol",fop="get",quantile="0.99"}')).toBeGreaterThanOrEqual(0);
    expect(before.get('coordvol_fop_latency_ms_max{translator="coordvol",fop="get"}')).toBeGreaterThanOrEqual(0);
    expect(before.get('coordvol_fop_total{translator="coordvol-brick-stats",fop="append"}')).toBeGreaterThan(0);
    expect(before.get('coordvol_commit_rev{volume="coordvol"}')).toBe(vol.seenRev);
    expect(before.get('coordvol_epoch{volume="coordvol"}')).toBe(1);
    expect(before.get('coordvol_compact_rev{volume="coordvol"}')).toBeGreaterThan(0);
    expect(before.get('coordvol_keys{volume="coordvol"}')).toBe((await vol.range({ prefix: '', countOnly: true })).count);
    expect(before.get('test_connections{}')).toBe(7); // extraMetrics, appended
    for (let i = 0; i < 3; i++) await call('GET', '/v1/kv/t/text');
    const after = parseMetrics((await call('GET', '/metrics')).text);
    expect(after.get(gets)).toBe(before.get(gets)! + 3);
  });

  it('escapes label values', () => {
    const text = renderMetrics([{ name: 'a"b\\c\nd', fops: { get: { count: 1, errors: 0, latencyMsP50: 0.5, latencyMsP99: 1, latencyMsMax: 2, latencyMsSum: 3 } } }], {});
    expect(text).toContain('coordvol_fop_total{translator="a\\"b\\\\c\\nd",fop="get"} 1\n');
    expect(parseMetrics(text).size).toBe(7);
    expect(text).toContain('coordvol_fop_latency_ms_sum{translator="a\\"b\\\\c\\nd",fop="get"} 3\n');
  });
});

describe('bearer token', () => {
  let secured: FastifyInstance;
  beforeAll(async () => {
    secured = buildApi({ volume: vol, token: 's3cret-token' });
    closers.push(() => secured.close());
    await secured.ready();
  });

  it('refuses requests without the right token with 401 unauthorized', async () => {
    for (const authorization of [undefined, 'Bearer wrong', 'Basic czNjcmV0LXRva2Vu', 'Bearer s3cret-token-and-more', 'Bearer ']) {
      for (const url of ['/v1/kv/t/text', '/metrics', '/v1/status', '/nowhere']) {
        const r = await secured.inject({ method: 'GET', url, ...(authorization !== undefined ? { headers: { authorization } } : {}) });
        expect(r.statusCode, `${url} ${authorization}`).toBe(401);
        expect(r.json()).toMatchObject({ error: { code: 'unauthorized' } });
        expect(r.headers['www-authenticate']).toMatch(/^Bearer/);
      }
    }
    const put = await secured.inject({ method: 'PUT', url: '/v1/kv/t/sneaky', payload: 'v' });
    expect(put.statusCode).toBe(401);
    expect((await vol.get('/t/sneaky')).kv).toBeUndefined();
  });

  it('serves requests with it', async () => {
    const r = await secured.inject({ method: 'GET', url: '/v1/kv/t/text', headers: { authorization: 'Bearer s3cret-token' } });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ kv: { value: 'héllo ✓' } });
  });

  it('refuses an empty token', () => {
    expect(() => buildApi({ volume: vol, token: ' ' })).toThrow(/token/);
  });
});

describe('error statuses', () => {
  /** A volume whose every call fails with `fail`. */
  const failing = (fail: () => unknown): Volume =>
    new Proxy({} as Volume, { get: (_t, prop) => (prop === 'seenRev' ? 0 : () => Promise.reject(fail())) });

  it('maps every CoordError code to its status', async () => {
    const expected: Partial<Record<ErrorCode, number>> = {
      'invalid-argument': 400, 'key-too-large': 400, 'value-too-large': 413, 'too-large': 400, 'reserved-key': 403,
      'not-found': 404, 'future-rev': 400, 'compacted': 410, 'unauthorized': 401, 'timeout': 504, 'unavailable': 503,
      'no-quorum': 503, 'indeterminate': 500, 'internal': 500,
    };
    for (const code of ERROR_CODES) {
      const a = buildApi({ volume: failing(() => coordError(code, `failed with ${code}`, { why: 'test' })) });
      const r = await a.inject({ method: 'GET', url: '/v1/kv/k' });
      await a.close();
      if (expected[code] !== undefined) expect(r.statusCode, code).toBe(expected[code]);
      else expect(r.statusCode, code).toBeGreaterThanOrEqual(400);
      expect(r.json(), code).toEqual({ error: { code, message: `failed with ${code}`, details: { why: 'test' } } });
    }
  });

  it('answers anything else thrown with 500 internal, without its message', async () => {
    const a = buildApi({ volume: failing(() => new TypeError('secret detail')) });
    const r = await a.inject({ method: 'GET', url: '/v1/status' });
    await a.close();
    expect(r.statusCode).toBe(500);
    expect(r.json()).toMatchObject({ error: { code: 'internal' } });
    expect(r.body).not.toContain('secret detail');
  });
});

describe('startApi', () => {
  it('serves on 127.0.0.1 port 0', async () => {
    const api = await startApi({ volume: vol, host: '127.0.0.1', port: 0 });
    closers.push(() => api.close());
    expect(api.address).toBe(`http://127.0.0.1:${api.port}`);
    const put = await fetch(`${api.address}/v1/kv/net/k`, { method: 'PUT', body: new Uint8Array([1, 2, 3]) });
    expect(put.status).toBe(200);
    const get = await fetch(`${api.address}/v1/kv/net/k?raw=true`);
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    expect(get.headers.get('x-coordvol-version')).toBe('1');
    await api.close();
  });

  it('refuses a non-loopback address without a token, and listens on it with one', async () => {
    expect(await refusal(startApi({ volume: vol, host: '0.0.0.0', port: 0 }))).toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/token/) });
    const api: RunningApi = await startApi({ volume: vol, host: '0.0.0.0', port: 0, token: 'tok' });
    closers.push(() => api.close());
    const r = await fetch(`http://127.0.0.1:${api.port}/v1/status`);
    expect(r.status).toBe(401);
    await api.close();
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '127.0.0.1.example.com', '']) expect(isLoopback(h), h).toBe(false);
  });
});
