// protocol/server and protocol/client over loopback: a master graph with protocol/server on top
// (port 0), and connect(). Every fop and every error code arrives typed; bad input on raw
// sockets closes that connection only (a normal client is checked after each case); TLS; and a
// server restarted under a streaming client: reads go on, writes in flight fail indeterminate,
// none is applied twice.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, isCoordError, text, type RemoteVolume } from '../../src/client/index.js';
import { frameBytesMax, valueBytesMax } from '../../src/common/limits.js';
import { singleBrickVolfile } from '../../src/daemon/volfiles.js';
import {
  encodeFrames, FRAME_HEADER_BYTES, MessageDecoder, MessageEncoder,
  type Message,
} from '../../src/wire/index.js';
import { buildGraph, registry, systemClock, type Graph, type ProtocolServerTranslator } from '../../translators/index.js';
import { refusal } from './helpers.js';
import { Proxy, RawClient } from './net-fixtures.js';

const dirs: string[] = [];
const graphs = new Set<Graph>();
const sockets = new Set<Socket>();
const volumes = new Set<RemoteVolume>();

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coordvol-protocol-'));
  dirs.push(d);
  return d;
}

interface Served {
  readonly graph: Graph;
  readonly server: ProtocolServerTranslator;
  readonly port: number;
  readonly secret: string;
  close(): Promise<void>;
}

/** The default single-brick graph with a protocol/server on top, in `dir`. */
async function serve(dir: string, serverOptions: Record<string, string> = {}): Promise<Served> {
  const options = { listen: '127.0.0.1:0', 'handshake-timeout-ms': '300ms', ...serverOptions };
  const volfile = singleBrickVolfile({ volumeName: 'coordvol', brickDir: 'brick', fsync: false, leaseMs: 10 }) + [
    '',
    'volume coordvol-server',
    '    type protocol/server',
    ...Object.entries(options).map(([k, v]) => `    option ${k} ${v}`),
    '    subvolumes coordvol',
    'end-volume',
    '',
  ].join('\n');
  const graph = buildGraph(volfile, { file: join(dir, 'coordvol.vol'), registry, env: { clock: systemClock, baseDir: dir } });
  await graph.init();
  graphs.add(graph);
  const server = graph.top as ProtocolServerTranslator;
  const secret = (await readFile(join(dir, 'secret'), 'utf8')).trim();
  return {
    graph, server, port: server.address.port, secret,
    close: async () => {
      graphs.delete(graph);
      await graph.fini();
    },
  };
}

async function open(port: number, secret: string, more: Partial<Parameters<typeof connect>[0]> = {}): Promise<RemoteVolume> {
  const v = await connect({ servers: [`127.0.0.1:${port}`], secret, timeoutMs: 5_000, ...more });
  volumes.add(v);
  return v;
}

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const v of volumes) await v.close().catch(() => undefined);
  for (const g of graphs) await g.fini().catch(() => undefined);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const str = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : text.decode(b));
const header = (length: number, flags = 0): Buffer => {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt32BE(length >>> 0, 0);
  h[4] = flags;
  return h;
};
const frame = (payload: Uint8Array): Buffer => Buffer.concat(encodeFrames(payload));

/** A raw TCP peer that decodes what the server sends. */
class RawPeer {
  readonly messages: Message[] = [];
  private readonly dec = new MessageDecoder();
  readonly closed: Promise<number>;
  decodeError: unknown;

  private constructor(readonly socket: Socket) {
    sockets.add(socket);
    const t0 = performance.now();
    socket.on('data', (c: Buffer) => {
      try {
        this.messages.push(...this.dec.push(c));
      } catch (e) {
        this.decodeError = e;
      }
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((ok) => socket.once('close', () => ok(performance.now() - t0)));
  }

  static open(port: number): Promise<RawPeer> {
    return new Promise((ok, fail) => {
      const s = tcpConnect({ host: '127.0.0.1', port });
      s.once('connect', () => ok(new RawPeer(s)));
      s.once('error', fail);
    });
  }

  /** Waits for the server to close the connection (ms since open), failing the test after `ms`. */
  async closedWithin(ms: number): Promise<number> {
    return Promise.race([this.closed, new Promise<number>((_, fail) => setTimeout(() => fail(new Error(`not closed within ${ms} ms`)), ms))]);
  }

  goaway(): string | undefined {
    const g = this.messages.find((m) => m.type === 'goaway');
    return g?.type === 'goaway' ? `${g.error.code}: ${g.error.message}` : undefined;
  }
}

describe('over loopback', () => {
  let dir: string;
  let served: Served;
  let vol: RemoteVolume;

  beforeAll(async () => {
    dir = await tempDir();
    served = await serve(dir);
    vol = await open(served.port, served.secret);
    await vol.put('/health', 'ok');
  });

  /** After every case the server still answers a normal client correctly. */
  afterEach(async () => {
    expect(str((await vol.get('/health')).kv?.value)).toBe('ok');
    const { rev } = await vol.put('/health-check', String(Date.now()));
    expect((await vol.get('/health-check')).kv?.modRev).toBe(rev);
  });

  describe('every fop', () => {
    it('put with prevKv, get now and at an older rev', async () => {
      const first = await vol.put('/f/a', 'one');
      const second = await vol.put('/f/a', 'two', { prevKv: true });
      expect(second.rev).toBe(first.rev + 1);
      expect(str(second.prevKv?.value)).toBe('one');
      expect(second.prevKv).toMatchObject({ key: '/f/a', version: 1, modRev: first.rev });
      const now = await vol.get('/f/a');
      expect(now.kv).toMatchObject({ key: '/f/a', version: 2, createRev: first.rev, modRev: second.rev, session: 0 });
      expect(str(now.kv?.value)).toBe('two');
      expect(str((await vol.get('/f/a', { rev: first.rev })).kv?.value)).toBe('one');
      expect((await vol.get('/f/missing')).kv).toBeUndefined();
      expect(str((await vol.get('/f/a', { consistency: 'serializable' })).kv?.value)).toBe('two');
    });

    it('range with prefix, children, keysOnly, countOnly and limit, as the graph answers in-process', async () => {
      for (const k of ['/r/a', '/r/b', '/r/c/1', '/r/c/2', '/r/d']) await vol.put(k, `v${k}`);
      const local = <Q extends Parameters<RemoteVolume['range']>[0]>(q: Q) => served.graph.top.call('range', {}, (typeof q === 'string' ? { prefix: q } : q) as never);
      const queries = [
        { prefix: '/r/' },
        { prefix: '/r', children: true },
        { prefix: '/r/', keysOnly: true },
        { prefix: '/r/', countOnly: true },
        { prefix: '/r/', limit: 2 },
        { start: '/r/b', end: '/r/d' },
      ] as const;
      for (const q of queries) {
        const remote = await vol.range(q);
        expect(remote).toEqual(await local(q));
      }
      expect((await vol.range({ prefix: '/r', children: true })).children).toEqual(['a', 'b', 'c', 'd']);
      expect((await vol.range({ prefix: '/r/', keysOnly: true })).kvs.every((kv) => kv.value === undefined || kv.value.byteLength === 0)).toBe(true);
      const counted = await vol.range({ prefix: '/r/', countOnly: true });
      expect([counted.count, counted.kvs.length]).toEqual([5, 0]);
      const limited = await vol.range({ prefix: '/r/', limit: 2 });
      expect([limited.kvs.map((kv) => kv.key), limited.count, limited.more]).toEqual([['/r/a', '/r/b'], 5, true]);
    });

    it('delete a range with prevKv', async () => {
      for (const k of ['/d/1', '/d/2', '/d/3']) await vol.put(k, k);
      const r = await vol.delete({ prefix: '/d/' }, { prevKv: true });
      expect(r.deleted).toBe(3);
      expect(r.prevKvs?.map((kv) => str(kv.value))).toEqual(['/d/1', '/d/2', '/d/3']);
      expect((await vol.range('/d/')).count).toBe(0);
      expect((await vol.delete('/d/1')).deleted).toBe(0);
    });

    it('txn, both branches', async () => {
      const cas = (expect_: boolean) =>
        vol.txn({
          compare: [{ key: '/t/leader', target: 'exists', op: '=', value: expect_ }],
          success: [{ op: 'put', key: '/t/leader', value: text.encode('node-1') }, { op: 'get', key: '/t/leader' }],
          failure: [{ op: 'get', key: '/t/leader' }, { op: 'range', prefix: '/t/' }],
        });
      const won = await cas(false);
      expect(won.succeeded).toBe(true);
      expect(won.results[0]).toMatchObject({ op: 'put', key: '/t/leader' });
      const lost = await cas(false);
      expect(lost.succeeded).toBe(false);
      expect(lost.rev).toBe(won.rev);
      const [got, listed] = lost.results;
      expect(got?.op === 'get' && str(got.kv?.value)).toBe('node-1');
      expect(listed?.op === 'range' && listed.count).toBe(1);
    });

    it('compact, then reads below it are compacted', async () => {
      const a = await vol.put('/c/x', '1');
      const b = await vol.put('/c/x', '2');
      const c = await vol.compact(b.rev);
      expect(c.compactRev).toBe(b.rev);
      const err = await refusal(vol.get('/c/x', { rev: a.rev }));
      expect(err.code).toBe('compacted');
      expect(str((await vol.get('/c/x', { rev: b.rev })).kv?.value)).toBe('2');
    });

    it('status, statedump (with the server and its port) and profile', async () => {
      const st = await vol.status();
      expect(st.volume).toMatchObject({ volumeId: vol.volumeId, volumeName: 'coordvol', quorum: 1 });
      const dump = await vol.statedump();
      expect(dump.map((d) => d.type)).toEqual(['debug/io-stats', 'protocol/client', 'protocol/server', 'debug/io-stats', 'cluster/replicate', 'debug/io-stats', 'features/watch', 'features/locks', 'storage/lmdb']);
      const server = dump.find((d) => d.type === 'protocol/server');
      expect(server?.state).toMatchObject({ port: served.port, address: `127.0.0.1:${served.port}`, volumeId: vol.volumeId, tls: false });
      expect(dump.find((d) => d.type === 'protocol/client')?.state).toMatchObject({ state: 'open', volumeId: vol.volumeId });
      const profile = await vol.profile();
      expect(profile.map((p) => p.name)).toEqual(['client-stats', 'coordvol', 'coordvol-brick-stats']);
      expect(profile[0]?.fops['put']?.count).toBeGreaterThan(0);
      expect(profile[1]?.fops['put']?.count).toBeGreaterThan(0);
    });

    it('many requests at once: the client holds those over its in-flight cap, the server pauses reading past its own', async () => {
      const many = await Promise.all(Array.from({ length: 3_000 }, (_, i) => (i % 2 ? vol.get('/health') : vol.range({ prefix: '/health', countOnly: true }))));
      expect(many.every((r) => ('kv' in r ? str(r.kv?.value) === 'ok' : r.count >= 1))).toBe(true);
      // A client that pipelines without any cap: the server reads at most 1,024 requests ahead.
      const c = await RawClient.open(served.port, served.secret, sockets);
      const answers = await Promise.all(Array.from({ length: 3_000 }, (_, i) => c.request('get', { key: '/health' }, i + 1)));
      expect(answers.every((a) => a.ok)).toBe(true);
      c.socket.destroy();
    });

    it('a client graph from a volfile: protocol/client with secret-file, requests waiting for the connection', async () => {
      const volfile = [
        'volume remote',
        '    type protocol/client',
        `    option remote 127.0.0.1:1, 127.0.0.1:${served.port}`,
        '    option secret-file secret',
        '    option reconnect-min-ms 5',
        'end-volume',
        '',
      ].join('\n');
      const g = buildGraph(volfile, { file: join(dir, 'client.vol'), registry, env: { clock: systemClock, baseDir: dir } });
      await g.init();
      graphs.add(g);
      // Sent before any connection is open (the first server listed refuses): it waits for the second.
      const r = await g.top.call('get', { deadlineMs: performance.now() + 3_000 }, { key: '/health' });
      expect(str(r.kv?.value)).toBe('ok');
      expect((await g.top.call('statedump', {}, {}))[0]?.state).toMatchObject({ state: 'open', server: `127.0.0.1:${served.port}` });
      graphs.delete(g);
      await g.fini();
    });

    it('a value of exactly 1 MiB, and a txn and range of 5 MiB (several frames each way)', async () => {
      const big = randomBytes(valueBytesMax);
      await vol.put('/big/one', big);
      expect(Buffer.compare((await vol.get('/big/one')).kv?.value ?? Buffer.alloc(0), big)).toBe(0);
      const values = Array.from({ length: 5 }, () => randomBytes(valueBytesMax));
      expect(5 * valueBytesMax).toBeGreaterThan(frameBytesMax);
      const t = await vol.txn({ success: values.map((value, i) => ({ op: 'put' as const, key: `/big/${i}`, value })) });
      expect(t.succeeded).toBe(true);
      const r = await vol.range({ start: '/big/0', end: '/big/9' });
      expect(r.kvs.map((kv) => Buffer.compare(kv.value ?? Buffer.alloc(0), values[Number(kv.key.slice(5))] as Buffer))).toEqual([0, 0, 0, 0, 0]);
    });
  });

  describe('every error the server returns arrives typed', () => {
    const bigKey = '/' + 'k'.repeat(4096);
    const cases: [string, () => Promise<unknown>, string, RegExp][] = [
      ['invalid-argument', () => vol.put('', 'x'), 'invalid-argument', /must not be empty/],
      ['key-too-large', () => vol.put(bigKey, 'x'), 'key-too-large', /4097 bytes, over the 4096-byte limit/],
      ['value-too-large', () => vol.put('/v', Buffer.alloc(valueBytesMax + 1)), 'value-too-large', /1048577 bytes, over the 1048576-byte limit/],
      ['reserved-key', () => vol.put('/_coordvol/x', 'y'), 'reserved-key', /read-only to clients/],
      ['future-rev', () => vol.get('/health', { rev: 1_000_000 }), 'future-rev', /above the current rev/],
      ['too-large', () => vol.txn({ success: Array.from({ length: 1025 }, (_, i) => ({ op: 'get' as const, key: `/k${i}` })) }), 'too-large', /at most 1024/],
      ['compacted', async () => {
        const a = await vol.put('/e/c', '1');
        await vol.compact((await vol.put('/e/c', '2')).rev);
        return vol.get('/e/c', { rev: a.rev });
      }, 'compacted', /compact/],
    ];
    it.each(cases)('%s', async (_name, call, code, message) => {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(isCoordError(err)).toBe(true);
      expect(err).toMatchObject({ code, name: 'CoordError' });
      expect((err as Error).message).toMatch(message);
    });

    it('details travel with the error', async () => {
      const err = await vol.put('/v', Buffer.alloc(valueBytesMax + 1)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'value-too-large', details: { bytes: valueBytesMax + 1, max: valueBytesMax } });
    });

    it('origins off the wire: only on writes, clientId and seq from 1, ackedSeq below seq, of a live client session', async () => {
      const c = await RawClient.open(served.port, served.secret, sockets);
      const put = { key: '/o', value: new Uint8Array([1]) };
      const refused = async (op: string, args: unknown, origin: unknown): Promise<unknown> => {
        const r = await c.request(op, args, undefined, origin);
        return r.ok ? 'ok' : r.error.code;
      };
      expect(await refused('get', { key: '/o' }, [1, 1, 0])).toBe('invalid-argument');
      expect(await refused('put', put, [0, 1, 0])).toBe('invalid-argument');
      expect(await refused('put', put, [1, 0, 0])).toBe('invalid-argument');
      expect(await refused('put', put, [1, 2, 2])).toBe('invalid-argument');
      expect(await refused('put', put, [999_999, 1, 0])).toBe('session-expired'); // no such client session
      const open = await c.request('sessionOpen', { ttlMs: 10_000, nonce: 'cd'.repeat(16), client: true });
      const id = (open as { result: { id: number } }).result.id;
      const first = await c.request('put', put, undefined, [id, 1, 0]);
      const again = await c.request('put', put, undefined, [id, 1, 0]);
      expect(first).toMatchObject({ ok: true, result: { key: '/o' } });
      expect(again).toMatchObject({ ok: true, result: { key: '/o', rev: (first as { result: { rev: number } }).result.rev, duplicate: true } });
      expect(await refused('put', put, [id, 1, 1])).toBe('invalid-argument');
      expect(await refused('put', put, [id, 3, 2])).toBe('ok');
      expect(await refused('put', put, [id, 2, 0])).toBe('stale-retry');
      expect((await vol.get('/o')).kv?.version).toBe(2);
      // An origin of the wrong shape is a malformed message: that connection closes.
      const closed = new Promise((r) => c.socket.once('close', r));
      void c.request('put', put, undefined, 'seven');
      await closed;
      expect(c.conn.closedReason?.message).toMatch(/origin must be \[clientId, seq, ackedSeq\]/);
    });

    it('unknown ops and args of the wrong shape are answered on a connection that stays open', async () => {
      const c = await RawClient.open(served.port, served.secret, sockets);
      expect(await c.request('frobnicate', {}, 1)).toMatchObject({ ok: false, error: { code: 'invalid-argument', message: 'unknown op "frobnicate"' } });
      expect(await c.request('append', {}, 2)).toMatchObject({ ok: false, error: { code: 'invalid-argument' } });
      expect(await c.request('get', 'x', 3)).toMatchObject({ ok: false, error: { code: 'invalid-argument', message: 'get takes an object' } });
      expect(await c.request('txn', { compare: [{ key: '/a', target: 'lease', op: '=', value: 1 }] }, 4)).toMatchObject({ ok: false, error: { message: /target "lease" is unknown/ } });
      expect(await c.request('put', { key: '/a', value: 'not bytes' }, 5)).toMatchObject({ ok: false, error: { message: /bytes/ } });
      // A txn with its lists left out (checkTxnArgs allows that; the holder's evaluation does not
      // expect it): the server fills them in.
      expect(await c.request('txn', { success: [{ op: 'get', key: '/health' }] }, 7)).toMatchObject({ ok: true, result: { succeeded: true } });
      const ok = await c.request('get', { key: '/health', extra: { nested: [1, 2] } }, 6);
      expect(ok.ok && str((ok.result as { kv: { value: Uint8Array } }).kv.value)).toBe('ok');
      c.socket.destroy();
    });
  });

  describe('bad input on raw sockets closes that connection only', () => {
    it('random bytes', async () => {
      for (let i = 0; i < 20; i++) {
        const p = await RawPeer.open(served.port);
        const junk = randomBytes(5 + ((i * 97) % 2000));
        if (i % 2 === 0) junk[0] = 0xff; // a length over every cap: refused at once
        p.socket.write(junk);
        if (i % 2 === 0) {
          await p.closedWithin(2_000);
          expect(p.goaway()).toMatch(/^protocol-error: /);
        } else {
          p.socket.end(); // whatever the server made of it, it must cope with the close too
          await p.closedWithin(2_000);
        }
      }
    });

    it('a truncated frame, then close', async () => {
      const p = await RawPeer.open(served.port);
      p.socket.end(Buffer.concat([header(100), Buffer.alloc(10)]));
      await p.closedWithin(2_000);
      expect(p.goaway()).toBeUndefined();
    });

    it('a length prefix over the cap, before and after the handshake', async () => {
      const p = await RawPeer.open(served.port);
      p.socket.write(header(frameBytesMax + 1));
      await p.closedWithin(2_000);
      expect(p.goaway()).toMatch(/^protocol-error: frame of 4194305 bytes, over the 4194304-byte frame limit/);
      const q = await RawPeer.open(served.port);
      q.socket.write(header(5_000));
      await q.closedWithin(2_000);
      expect(q.goaway()).toMatch(/over the 4096-byte message limit/);
      const c = await RawClient.open(served.port, served.secret, sockets);
      const closed = new Promise((ok) => c.socket.once('close', ok));
      // A whole first frame marked more, then a header over the cap.
      c.socket.write(Buffer.concat([header(16, 1), Buffer.alloc(16), header(0xffffffff)]));
      await closed;
      expect(c.conn.closedReason?.message).toMatch(/frame of 4294967295 bytes, over the 4194304-byte frame limit/);
    });

    it('valid msgpack of the wrong shape', async () => {
      for (const v of [[1, 2, 3], { type: 'auth', v: 1 }, 'hello', { type: 'auth', v: 1, clientNonce: 'x', mac: 1 }]) {
        const p = await RawPeer.open(served.port);
        p.socket.write(frame(pack(v)));
        await p.closedWithin(2_000);
        expect(p.goaway()).toMatch(/^protocol-error: malformed message/);
      }
    });

    it('a request before the handshake', async () => {
      const p = await RawPeer.open(served.port);
      p.socket.write(Buffer.concat(new MessageEncoder().encode({ type: 'request', id: 1, op: 'get', args: { key: '/health' } })));
      await p.closedWithin(2_000);
      expect(p.goaway()).toBe('protocol-error: expected auth, got a request message before the handshake finished');
      expect(p.messages.map((m) => m.type)).toEqual(['hello', 'goaway']);
    });

    it('a wrong secret, a wrong volume, and nobody listening', async () => {
      const t0 = performance.now();
      expect((await refusal(connect({ servers: [`127.0.0.1:${served.port}`], secret: 'wrong', timeoutMs: 5_000 }))).code).toBe('auth-failed');
      expect((await refusal(connect({ servers: [`127.0.0.1:${served.port}`], secret: served.secret, expectVolumeId: 'other', timeoutMs: 5_000 }))).code).toBe('wrong-volume');
      expect(performance.now() - t0).toBeLessThan(2_000); // refused at once, not at the deadline
      const dead = await RawPeer.open(served.port).then(async (p) => {
        p.socket.destroy();
        return p.closed;
      });
      expect(dead).toBeGreaterThanOrEqual(0);
      const gone = await refusal(connect({ servers: ['127.0.0.1:1'], secret: served.secret, timeoutMs: 300 }));
      expect(gone.code).toBe('unavailable');
      expect(gone.message).toMatch(/ECONNREFUSED/);
      expect((await refusal(connect({ servers: ['nohost'], secret: 'x' }))).code).toBe('invalid-argument');
    });

    it('a client that never finishes the handshake is closed after handshake-timeout-ms', async () => {
      const p = await RawPeer.open(served.port);
      const ms = await p.closedWithin(3_000);
      expect(ms).toBeGreaterThanOrEqual(250);
      expect(ms).toBeLessThan(2_000);
      expect(p.goaway()).toBe('timeout: the handshake did not finish within 300 ms');
    });

    it('2,000 connections opening and closing, in batches', async () => {
      const before = served.server.connections;
      for (let batch = 0; batch < 8; batch++) {
        const peers = await Promise.all(Array.from({ length: 250 }, () => RawPeer.open(served.port)));
        peers.forEach((p, i) => {
          if (i % 3 === 1) p.socket.write(randomBytes(64));
          if (i % 3 === 2) p.socket.end();
          else p.socket.destroy();
        });
        await Promise.all(peers.map((p) => p.closed));
        for (const p of peers) sockets.delete(p.socket);
      }
      const until = performance.now() + 3_000;
      while (served.server.connections > before && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(served.server.connections).toBe(before);
    });
  });
});

describe('TLS', () => {
  function selfSigned(dir: string, name: string): string {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=coordvol-test', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`),
    ], { stdio: 'ignore' });
    return join(dir, `${name}.pem`);
  }

  // node:crypto cannot make X.509 certificates: the openssl binary does (.ci/run installs it).
  it('serves over TLS with a self-signed certificate', async () => {
    const dir = await tempDir();
    const cert = selfSigned(dir, 'server');
    const other = selfSigned(dir, 'other');
    expect(existsSync(cert)).toBe(true);
    const s = await serve(dir, { 'tls-cert': 'server.pem', 'tls-key': 'server.key' });
    const ca = await readFile(cert);
    const v = await open(s.port, s.secret, { tls: { ca } });
    await v.put('/tls', 'yes');
    expect(str((await v.get('/tls')).kv?.value)).toBe('yes');
    expect((await v.statedump()).find((d) => d.type === 'protocol/server')?.state).toMatchObject({ tls: true });
    // A certificate the client does not trust is an authentication failure, not an outage.
    expect((await refusal(connect({ servers: [`127.0.0.1:${s.port}`], secret: s.secret, tls: { ca: await readFile(other) }, timeoutMs: 2_000 }))).code).toBe('auth-failed');
    // A plain client gets no hello from a TLS server.
    expect((await refusal(connect({ servers: [`127.0.0.1:${s.port}`], secret: s.secret, timeoutMs: 500 }))).code).toBe('unavailable');
    await v.close();
    await s.close();
  });
});

describe('reconnect', () => {
  it('waits for a connection until the deadline, then fails unavailable; reconnects when the server is back', async () => {
    const dir = await tempDir();
    const first = await serve(dir);
    const v = await open(first.port, first.secret, { timeoutMs: 400 });
    await v.put('/k', 'before');
    await first.close();
    const err = await refusal(v.get('/k'));
    expect(err.code).toBe('unavailable');
    const second = await serve(dir, { listen: `127.0.0.1:${first.port}` });
    const until = performance.now() + 3_000;
    let got: string | undefined;
    while (got === undefined && performance.now() < until) got = await v.get('/k').then((r) => str(r.kv?.value), () => undefined);
    expect(got).toBe('before');
    await v.close();
    await second.close();
  });

  /**
   * 16 workers, each with a put and a get of an earlier key in flight at once. `disrupt` runs
   * mid-stream; the stream goes on for 300 ms after it. Then: every read succeeded, every failed
   * write is indeterminate, every acknowledged write is there at its rev, none applied twice.
   */
  async function streamThrough(v: RemoteVolume, disrupt: () => Promise<void>): Promise<{ indeterminate: number; puts: number; duplicates: number }> {
    let stop = false;
    let duplicates = 0;
    const puts: { key: string; rev?: number; error?: string }[] = [];
    const readErrors: string[] = [];
    let reads = 0;
    const worker = async (w: number): Promise<void> => {
      let lastOk: { key: string } | undefined;
      for (let i = 0; !stop; i++) {
        const rec: { key: string; rev?: number; error?: string } = { key: `/s/${w}/${i}` };
        puts.push(rec);
        const check = lastOk;
        await Promise.all([
          v.put(rec.key, rec.key).then((r) => {
            rec.rev = r.rev;
            if (r.duplicate === true) duplicates++;
          }, (e: unknown) => {
            rec.error = isCoordError(e) ? e.code : String(e);
          }),
          check === undefined ? undefined : v.get(check.key).then((r) => {
            reads++;
            if (str(r.kv?.value) !== check.key) readErrors.push(`${check.key}: read ${str(r.kv?.value)}`);
          }, (e: unknown) => readErrors.push(`${check.key}: ${isCoordError(e) ? e.code : String(e)}`)),
        ]);
        if (rec.rev !== undefined) lastOk = rec;
      }
    };
    const workers = Array.from({ length: 16 }, (_, w) => worker(w));
    await new Promise((r) => setTimeout(r, 200));
    const readsBefore = reads;
    await disrupt();
    const readsAfter = reads;
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(workers);

    expect(readErrors).toEqual([]);
    expect(readsBefore).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(readsAfter); // the stream went on after the disruption
    const failed = puts.filter((p) => p.error !== undefined);
    expect(failed.filter((p) => p.error !== 'indeterminate')).toEqual([]);
    const ok = puts.filter((p) => p.rev !== undefined);
    expect(new Set(ok.map((p) => p.rev)).size).toBe(ok.length); // one rev per acknowledged write
    // Every key was put once: a write applied twice would show version 2.
    const all = await v.range({ prefix: '/s/' });
    expect(all.kvs.filter((kv) => kv.version !== 1)).toEqual([]);
    const byKey = new Map(all.kvs.map((kv) => [kv.key, kv]));
    for (const p of ok) expect(byKey.get(p.key)?.modRev).toBe(p.rev);
    // An indeterminate write is there once or not at all; nothing else is.
    expect(all.count).toBeGreaterThanOrEqual(ok.length);
    expect(all.count).toBeLessThanOrEqual(ok.length + failed.length);
    return { indeterminate: failed.length, puts: puts.length, duplicates };
  }

  it('a server restarted under a streaming client: reads succeed, writes in flight fail indeterminate, none applied twice', async () => {
    const dir = await tempDir();
    let s = await serve(dir);
    const port = s.port;
    const v = await open(port, s.secret, { timeoutMs: 10_000, exactlyOnce: false });
    // The old server finishes what it read, then says goaway; requests it had not read yet are
    // in flight for the client: writes among them fail indeterminate (this run may have none).
    await streamThrough(v, async () => {
      await s.close();
      s = await serve(dir, { listen: `127.0.0.1:${port}` });
    });
    await v.close();
    await s.close();
  });

  it('connections cut mid-stream (no goaway), without exactly-once: writes in flight fail indeterminate, reads are sent again', async () => {
    const dir = await tempDir();
    const s = await serve(dir);
    const proxy = await Proxy.start(s.port, sockets);
    const v = await open(proxy.port, s.secret, { timeoutMs: 10_000, exactlyOnce: false });
    const { indeterminate } = await streamThrough(v, async () => {
      for (let i = 0; i < 3; i++) {
        proxy.cut();
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    expect(indeterminate).toBeGreaterThan(0);
    await v.close();
    await proxy.close();
    await s.close();
  });

  it('connections cut mid-stream with exactly-once writes: every write in flight is sent again and applied once', async () => {
    const dir = await tempDir();
    const s = await serve(dir);
    const proxy = await Proxy.start(s.port, sockets);
    const v = await open(proxy.port, s.secret, { timeoutMs: 10_000 });
    let retried = 0;
    let duplicates = 0;
    for (let round = 0; round < 5 && duplicates === 0; round++) {
      // Writes applied whose answers were lost, then a cut: their retries must be answered, not applied again.
      const r = await streamThrough(v, async () => {
        for (let i = 0; i < 3; i++) {
          proxy.dropReplies();
          await new Promise((res) => setTimeout(res, 30));
          proxy.cut();
          await new Promise((res) => setTimeout(res, 50));
        }
      });
      duplicates += r.duplicates;
      // streamThrough checked that every key is there once (version 1) at its acked rev.
      expect(r.indeterminate).toBe(0);
      const dump = (await v.statedump()).find((d) => d.type === 'protocol/client')?.state as { retried: number };
      retried = dump.retried;
    }
    expect(retried).toBeGreaterThan(0); // writes were in flight at a cut, and were sent again
    expect(duplicates).toBeGreaterThan(0); // some had been applied: answered from the stored result
    // The client's own session names its writes; it is listed as a client session.
    expect((await v.sessions()).sessions.filter((x) => x.client)).toHaveLength(1);
    await v.close();
    await proxy.close();
    await s.close();
  });

  it('a session opened before the first write names the client too: one session per client until it is closed', async () => {
    const dir = await tempDir();
    const s = await serve(dir);
    const v = await open(s.port, s.secret);
    const mine = await v.openSession({ ttlMs: 5_000 });
    await v.put('/one/a', 'x', { session: mine });
    await v.put('/one/b', 'y');
    expect((await v.sessions()).sessions.map((x) => [x.id, x.client])).toEqual([[mine.id, false]]);
    await mine.close();
    // Closed: the next write opens a session of the library's own, listed as a client session.
    expect((await v.put('/one/c', 'z')).key).toBe('/one/c');
    const after = (await v.sessions()).sessions;
    expect(after).toHaveLength(1);
    expect(after[0]?.client).toBe(true);
    await v.close();
    // close() closes the library's own session.
    const w = await open(s.port, s.secret, { exactlyOnce: false });
    expect((await w.sessions()).sessions).toEqual([]);
    await w.close();
    await s.close();
  });
});
