// The wire codec and the connection state machine, without sockets: frames round-trip at any
// chunking, the decoder answers any bytes with messages or a protocol-error (fuzzed), the
// validator refuses every wrong shape, and the handshake is driven by hand, transcript style.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { CoordError, isCoordError } from '../../src/common/errors.js';
import { frameBytesMax, handshakeMessageBytesMax, messageBytesMax } from '../../src/common/limits.js';
import {
  clientMac, Connection, encodeFrames, FLAG_MORE, FRAME_HEADER_BYTES, FrameDecoder, MessageDecoder, MessageEncoder, NONCE_BYTES,
  parseMessage, parseAddress, type ConnectionConfig, type Message, type Step,
} from '../../src/wire/index.js';

const concat = (chunks: readonly Uint8Array[]): Buffer => Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));

/** Splits bytes at the given cut points (any order, duplicates allowed). */
function chunked(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, bytes.byteLength]) {
    if (p > at) out.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
  return out;
}

function protocolError(f: () => unknown): CoordError {
  try {
    f();
  } catch (e) {
    if (isCoordError(e) && e.code === 'protocol-error') return e;
    throw e;
  }
  throw new Error('expected a protocol-error');
}

const header = (length: number, flags: number): Uint8Array => {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt32BE(length >>> 0, 0);
  h[4] = flags;
  return h;
};

describe('frames', () => {
  it('round-trip one-frame and multi-frame messages, whole and one byte at a time', () => {
    const payloads = [Buffer.from([1]), randomBytes(1000), randomBytes(100)];
    const wire = concat(payloads.flatMap((p) => encodeFrames(p, 64)));
    // 1000 bytes in frames of 64: 16 frames, the first 15 marked more.
    expect(wire.byteLength).toBe(1 + 1000 + 100 + FRAME_HEADER_BYTES * (1 + 16 + 2));
    for (const step of [wire.byteLength, 7, 1]) {
      const d = new FrameDecoder({ frameBytesMax: 64 });
      const got: Buffer[] = [];
      for (let at = 0; at < wire.byteLength; at += step) got.push(...d.push(wire.subarray(at, at + step)));
      expect(got).toEqual(payloads);
      expect(d.bufferedBytes).toBe(0);
    }
  });

  it('split a message over frameBytesMax into full frames marked more, and reassemble it', () => {
    const payload = randomBytes(2 * frameBytesMax + 3);
    const frames = encodeFrames(payload);
    expect(frames.map((f) => f.byteLength)).toEqual([5, frameBytesMax, 5, frameBytesMax, 5, 3]);
    expect(frames.filter((_, i) => i % 2 === 0).map((h) => h[4])).toEqual([FLAG_MORE, FLAG_MORE, 0]);
    const d = new FrameDecoder();
    const got = frames.flatMap((f) => d.push(f));
    expect(got).toHaveLength(1);
    expect(Buffer.compare(got[0] as Buffer, payload)).toBe(0);
  });

  it('copy each message into a buffer of its own', () => {
    const chunk = concat(encodeFrames(Buffer.from('abc')));
    const [m] = new FrameDecoder().push(chunk);
    chunk.fill(0);
    expect(m?.toString()).toBe('abc');
  });

  it.each([
    ['a length over the frame cap', header(frameBytesMax + 1, 0), /over the 4194304-byte frame limit/],
    ['a length of 2^32 - 1', header(0xffffffff, 0), /frame limit/],
    ['a bad flags byte', header(10, 0x02), /bad frame flags 0x02/],
    ['an empty frame', header(0, 0), /empty frame/],
  ])('refuse %s', (_name, bytes, why) => {
    const d = new FrameDecoder();
    expect(protocolError(() => d.push(bytes)).message).toMatch(why);
    // Once failed, always failed: the stream lost its framing.
    expect(protocolError(() => d.push(header(1, 0))).message).toMatch(why);
  });

  it('refuse a message over the cap, counting every frame', () => {
    const d = new FrameDecoder({ frameBytesMax: 16, messageBytesMax: 40 });
    expect(d.push(concat([header(16, FLAG_MORE), Buffer.alloc(16), header(16, FLAG_MORE), Buffer.alloc(16)]))).toEqual([]);
    expect(protocolError(() => d.push(header(9, 0))).message).toMatch(/at least 41 bytes, over the 40-byte message limit/);
    expect(messageBytesMax % frameBytesMax).toBe(0);
  });
});

describe('messages', () => {
  const samples: Message[] = [
    { type: 'hello', v: 1, volumeId: 'abc', nonce: randomBytes(NONCE_BYTES) },
    { type: 'request', id: 7, op: 'put', args: { key: '/a', value: Buffer.from('x'), prevKv: true }, timeoutMs: 100 },
    { type: 'response', id: 7, ok: true, result: { rev: 3, key: '/a', prevKv: undefined } },
    { type: 'response', id: 8, ok: false, error: { code: 'compacted', message: 'gone', details: { compactRev: 4 } } },
    { type: 'ping' },
    { type: 'goaway', error: { code: 'closed', message: 'bye', details: {} } },
  ];

  it('round-trip through encoder and decoder at any chunking, shapes described once', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), fc.array(fc.constantFrom(...samples), { minLength: 1, maxLength: 30 }), (cuts, msgs) => {
        const enc = new MessageEncoder();
        const dec = new MessageDecoder();
        const wire = concat(msgs.flatMap((m) => enc.encode(m)));
        const got = chunked(wire, cuts).flatMap((c) => dec.push(c));
        expect(got).toEqual(msgs);
      }),
      { numRuns: 200 },
    );
  });

  it('stay in step over more shapes than msgpackr has record slots', () => {
    const enc = new MessageEncoder();
    const dec = new MessageDecoder();
    for (let i = 0; i < 300; i++) {
      const result = { [`field${i % 150}`]: i, nested: { [`n${i % 97}`]: [i] } };
      const [m] = enc.encode({ type: 'response', id: i, ok: true, result }).flatMap((c) => dec.push(c));
      expect(m).toEqual({ type: 'response', id: i, ok: true, result });
    }
  });

  it('refuse a message over the cap at the encoder, which then starts afresh in step', () => {
    const enc = new MessageEncoder({ messageBytesMax: 1000 });
    const dec = new MessageDecoder();
    expect(() => enc.encode({ type: 'response', id: 1, ok: true, result: { novel: Buffer.alloc(2000) } })).toThrow(/over the 1000-byte message limit/);
    const m: Message = { type: 'response', id: 2, ok: true, result: { novel: 1 } };
    expect(enc.encode(m).flatMap((c) => dec.push(c))).toEqual([m]);
  });

  it('refuse values of the wrong shape, whatever they are (fuzz)', () => {
    const types = ['hello', 'auth', 'welcome', 'request', 'response', 'ping', 'pong', 'goaway', 'other'];
    const shaped = fc.record({ type: fc.constantFrom(...types) }).chain((base) =>
      fc.dictionary(fc.constantFrom('v', 'volumeId', 'nonce', 'mac', 'clientNonce', 'id', 'op', 'args', 'ok', 'result', 'error', 'timeoutMs'), fc.anything({ withTypedArray: true })).map((rest) => ({ ...rest, ...base })),
    );
    fc.assert(
      fc.property(fc.oneof(fc.anything({ withTypedArray: true, withMap: true, withSet: true, withDate: true }), shaped), (v) => {
        // Through msgpack first, as off the wire; values msgpackr cannot encode are out of scope.
        let decoded: unknown;
        try {
          const dec = new MessageDecoder();
          const msgs = dec.push(concat(encodeFrames(pack(v))));
          decoded = msgs[0];
        } catch (e) {
          if (!isCoordError(e)) throw e;
          expect(e.code).toBe('protocol-error');
          return;
        }
        // What passed is a well-formed message: validating it again gives the same.
        expect(parseMessage(decoded)).toEqual(decoded);
      }),
      { numRuns: 2000 },
    );
  });

  it('answer random bytes at random chunkings with messages or a protocol-error, nothing else (fuzz)', () => {
    const valid = concat(new MessageEncoder().encode(samples[1] as Message));
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      // Valid framing around random payloads reaches msgpack and the validator.
      fc.uint8Array({ minLength: 1, maxLength: 200 }).map((p) => concat(encodeFrames(p))),
      // A valid message with random bytes changed.
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }).map((edits) => {
        const b = Buffer.from(valid);
        for (const [i, x] of edits) b[i % b.byteLength] = x;
        return b;
      }),
    );
    fc.assert(
      fc.property(fc.array(bytes, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 30 }), (parts, cuts) => {
        const dec = new MessageDecoder();
        const wire = concat(parts);
        try {
          for (const c of chunked(wire, cuts)) for (const m of dec.push(c)) expect(parseMessage(m)).toEqual(m);
        } catch (e) {
          if (!isCoordError(e) || e.code !== 'protocol-error') throw e;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('keep an unknown error code from a newer peer, as internal', () => {
    const m = parseMessage({ type: 'goaway', error: { code: 'brand-new', message: 'hm' } });
    expect(m).toEqual({ type: 'goaway', error: { code: 'internal', message: 'brand-new: hm', details: { code: 'brand-new' } } });
  });
});

describe('addresses', () => {
  it('parse host:port and [v6]:port, refuse the rest', () => {
    expect(parseAddress('127.0.0.1:7420', 'x')).toEqual({ host: '127.0.0.1', port: 7420 });
    expect(parseAddress('[::1]:80', 'x')).toEqual({ host: '::1', port: 80 });
    expect(parseAddress('localhost:0', 'x', true)).toEqual({ host: 'localhost', port: 0 });
    for (const bad of ['localhost', ':80', 'a:70000', 'a:0', '::1:80', 'a b:1']) expect(() => parseAddress(bad, 'listen')).toThrow(/not host:port/);
  });
});

// ---- the connection state machine, driven by hand

const SECRET = Buffer.from('s3cret');
const VOLUME = 'vol-1';

function machine(role: 'client' | 'server', over: Partial<ConnectionConfig> = {}, nowMs = 0): Connection {
  return new Connection({
    role,
    secret: SECRET,
    nonce: randomBytes(NONCE_BYTES),
    ...(role === 'server' ? { volumeId: VOLUME, idleTimeoutMs: 10_000 } : { pingMs: 1_000, pingTimeoutMs: 500 }),
    handshakeTimeoutMs: 5_000,
    ...over,
  }, nowMs);
}

/** Two machines joined by hand; a transcript of what each side sent, decoded by taps. */
class Pair {
  readonly log: string[] = [];
  private readonly taps = { client: new MessageDecoder(), server: new MessageDecoder() };
  readonly delivered: { client: Message[]; server: Message[] } = { client: [], server: [] };
  nowMs = 0;

  constructor(
    readonly client: Connection,
    readonly server: Connection,
  ) {}

  /** Carries out a step of `from`: its bytes go to the other side, whose step is carried out in turn. */
  run(from: 'client' | 'server', step: Step): void {
    const to = from === 'client' ? 'server' : 'client';
    for (const m of step.deliver) this.delivered[from].push(m);
    if (step.opened) this.log.push(`${from} open ${step.opened.volumeId}`);
    for (const chunk of step.send) {
      for (const m of this.taps[from].push(chunk)) this.log.push(`${from} → ${describeMsg(m)}`);
      this.run(to, this[to].receive(chunk, this.nowMs));
    }
    if (step.closed) this.log.push(`${from} closed ${step.closed.code}`);
  }

  start(): this {
    this.run('client', this.client.connected(this.nowMs));
    this.run('server', this.server.connected(this.nowMs));
    return this;
  }
}

function describeMsg(m: Message): string {
  switch (m.type) {
    case 'goaway':
      return `goaway ${m.error.code}`;
    case 'request':
      return `request ${m.id} ${m.op}`;
    case 'response':
      return `response ${m.id} ${m.ok ? 'ok' : m.error.code}`;
    default:
      return m.type;
  }
}

describe('the connection state machine', () => {
  it('opens on a good handshake, then carries requests, responses and pings', () => {
    const p = new Pair(machine('client', { expectVolumeId: VOLUME }), machine('server')).start();
    expect(p.log).toEqual(['server → hello', 'client → auth', 'server open vol-1', 'server → welcome', 'client open vol-1']);
    expect([p.client.state, p.server.state]).toEqual(['open', 'open']);

    p.log.length = 0;
    p.run('client', p.client.send({ type: 'request', id: 1, op: 'get', args: { key: '/a' } }));
    p.run('server', p.server.send({ type: 'response', id: 1, ok: true, result: { rev: 2 } }));
    expect(p.delivered.server).toEqual([{ type: 'request', id: 1, op: 'get', args: { key: '/a' } }]);
    expect(p.delivered.client).toEqual([{ type: 'response', id: 1, ok: true, result: { rev: 2 } }]);

    // Silence for pingMs: the client pings, the server answers; no answer within pingTimeoutMs closes.
    expect(p.client.nextTickMs()).toBe(1_000);
    p.nowMs = 1_000;
    p.run('client', p.client.tick(p.nowMs));
    expect(p.log.slice(-2)).toEqual(['client → ping', 'server → pong']);
    expect(p.client.nextTickMs()).toBe(2_000);
    p.run('client', p.client.tick(1_999));
    expect(p.client.state).toBe('open');
    // The next ping at 2000 is lost on the way (its bytes are not carried): no pong.
    expect(p.client.tick(2_000).send).not.toEqual([]);
    expect(p.client.nextTickMs()).toBe(2_500);
    const step = p.client.tick(2_500);
    expect(step.closed?.code).toBe('timeout');
    expect(step.closed?.message).toMatch(/did not answer a ping within 500 ms/);
  });

  it('refuses a client with the wrong secret: auth-failed on both sides', () => {
    const p = new Pair(machine('client', { secret: Buffer.from('wrong') }), machine('server')).start();
    expect(p.log).toEqual(['server → hello', 'client → auth', 'server → goaway auth-failed', 'client closed auth-failed', 'server closed auth-failed']);
    expect(p.client.closedReason?.message).toMatch(/does not have this cluster secret/);
  });

  it('refuses a server that cannot prove it has the secret', () => {
    const p = new Pair(machine('client'), machine('server', { secret: Buffer.from('other') })).start();
    // The server refuses the client's MAC first; a server without the secret never opens.
    expect(p.log).toContain('client closed auth-failed');
    expect(p.server.state).toBe('closed');
  });

  it('refuses a server of another volume before proving anything (client side)', () => {
    const p = new Pair(machine('client', { expectVolumeId: 'vol-2' }), machine('server')).start();
    expect(p.log).toEqual(['server → hello', 'client → goaway wrong-volume', 'server closed wrong-volume', 'client closed wrong-volume']);
  });

  it('refuses a client expecting another volume (server side)', () => {
    const server = machine('server');
    const hello = new MessageDecoder().push(concat(server.connected(0).send))[0];
    if (hello?.type !== 'hello') throw new Error('expected hello');
    const enc = new MessageEncoder();
    const clientNonce = randomBytes(NONCE_BYTES);
    const step = server.receive(concat(enc.encode({ type: 'auth', v: 1, expectVolumeId: 'vol-2', clientNonce, mac: clientMac(SECRET, hello.nonce, clientNonce) })), 0);
    expect(step.closed?.code).toBe('wrong-volume');
    expect(step.closed?.message).toMatch(/serves volume vol-1, not vol-2/);
  });

  it('closes a handshake that does not finish in time, on either side', () => {
    const server = machine('server', { handshakeTimeoutMs: 300 }, 100);
    server.connected(100);
    expect(server.nextTickMs()).toBe(400);
    expect(server.tick(399).closed).toBeUndefined();
    const step = server.tick(400);
    expect(step.closed?.code).toBe('timeout');
    expect(new MessageDecoder({ messageBytesMax: handshakeMessageBytesMax }).push(concat(step.send)).map(describeMsg)).toEqual(['goaway timeout']);
    const client = machine('client', { handshakeTimeoutMs: 300 }, 0); // still connecting
    expect(client.tick(300).closed?.message).toMatch(/handshake did not finish within 300 ms/);
  });

  it('closes a connection that sends a request before the handshake', () => {
    const server = machine('server');
    server.connected(0);
    const step = server.receive(concat(new MessageEncoder().encode({ type: 'request', id: 1, op: 'get', args: {} })), 0);
    expect(step.closed?.code).toBe('protocol-error');
    expect(step.closed?.message).toMatch(/expected auth, got a request message/);
    expect(step.deliver).toEqual([]);
  });

  it('limits what a peer may send before the handshake is done', () => {
    const server = machine('server');
    server.connected(0);
    const step = server.receive(header(handshakeMessageBytesMax + 1, 0), 0);
    expect(step.closed?.message).toMatch(/over the 4096-byte message limit/);
  });

  it('closes an idle server connection, and refuses unexpected messages once open', () => {
    const p = new Pair(machine('client', { pingMs: 0 }), machine('server', { idleTimeoutMs: 700 })).start();
    expect(p.server.nextTickMs()).toBe(700);
    expect(p.server.tick(700).closed?.message).toMatch(/idle for 700 ms/);

    const q = new Pair(machine('client'), machine('server')).start();
    expect(() => q.server.send({ type: 'request', id: 1, op: 'get', args: {} })).toThrow(/does not send requests/);
    // A hello once open is a protocol error at the client.
    const step = q.client.receive(concat(new MessageEncoder().encode({ type: 'hello', v: 1, volumeId: VOLUME, nonce: randomBytes(NONCE_BYTES) })), 0);
    expect(step.closed?.code).toBe('protocol-error');
  });

  it('refuses another protocol version', () => {
    const client = machine('client');
    client.connected(0);
    const step = client.receive(concat(new MessageEncoder().encode({ type: 'hello', v: 2, volumeId: VOLUME, nonce: randomBytes(NONCE_BYTES) })), 0);
    expect(step.closed?.message).toMatch(/speaks protocol version 2; this client speaks 1/);
  });

  it('reports a transport that went away, once', () => {
    const p = new Pair(machine('client'), machine('server')).start();
    const step = p.client.transportClosed();
    expect(step.closed?.code).toBe('unavailable');
    expect(p.client.transportClosed().closed).toBeUndefined();
    expect(p.client.send({ type: 'request', id: 1, op: 'get', args: {} }).send).toEqual([]);
  });
});
