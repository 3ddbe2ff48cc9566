// Brick fops on the wire (DESIGN §4, §7): protocol/client ↔ protocol/server over loopback in
// front of a real brick (probe, lock, fetch and append answered by the brick's rules); strict
// checks of their args (each bad input answered invalid-argument on a connection that keeps
// serving); brick fops never wait for a connection nor go out twice; and the not-holder
// failover of client fops across servers, shown with fake masters whose graphs answer
// not-holder until told otherwise.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, text, type RemoteVolume } from '../../src/client/index.js';
import { coordError } from '../../src/common/errors.js';
import { asEpoch, asRev, type Epoch } from '../../src/common/ids.js';
import { startMaster, type Master } from '../../src/daemon/master.js';
import type { Entry } from '../../store/types.js';
import { createRegistry } from '../../translators/graph.js';
import {
  buildGraph, ProtocolClientTranslator, registry, systemClock, Translator,
  type FopContext, type FopName, type Graph, type ProtocolServerTranslator,
} from '../../translators/index.js';
import type { TranslatorClass, TranslatorSpec } from '../../translators/translator.js';
import { checkRequest } from '../../translators/protocol/requests.js';
import { decodeAppendResult, decodeFetchResult, decodeLockResult, decodeProbeResult } from '../../replication/validate-brick.js';
import { refusal, serverPort } from './helpers.js';
import { Proxy, RawClient } from './net-fixtures.js';

const sockets = new Set<Socket>();
const clients = new Set<ProtocolClientTranslator>();
const dirs: string[] = [];
const now = (): number => systemClock.nowMs();
const ctx = (ms = 5_000): FopContext => ({ deadlineMs: now() + ms });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A protocol/client translator of `servers`, initialised (it starts connecting at once). */
async function protocolClient(servers: readonly string[], secret: string, o: Record<string, number> = {}): Promise<ProtocolClientTranslator> {
  const c = new ProtocolClientTranslator({
    name: 'brick-client',
    type: 'protocol/client',
    options: {
      remote: servers.join(' '),
      tls: false,
      'handshake-timeout-ms': 2_000,
      'request-timeout-ms': 5_000,
      'ping-ms': 5_000,
      'ping-timeout-ms': 3_000,
      'reconnect-min-ms': 20,
      'reconnect-max-ms': 200,
      'resend-writes': true,
      ...o,
    },
    children: [],
    env: { clock: systemClock, baseDir: process.cwd() },
  }, { secret: Buffer.from(secret, 'utf8') });
  await c.init();
  clients.add(c);
  return c;
}

async function closeClient(c: ProtocolClientTranslator): Promise<void> {
  clients.delete(c);
  await c.fini();
}

afterAll(async () => {
  for (const c of clients) await c.fini().catch(() => undefined);
  for (const s of sockets) s.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('brick fops against a real brick', () => {
  let master: Master;
  let port: number;
  let secret: string;
  let vol: RemoteVolume;
  let c: ProtocolClientTranslator;

  beforeAll(async () => {
    const dir = await tempDir('coordvol-brick-wire-');
    // A lease long enough that the running holder's heartbeats (every lease/3) keep it live
    // through any pause of a busy test machine: lock and probe must see it held.
    master = await startMaster({ dir, fsync: false, leaseMs: 1_000, listen: '127.0.0.1:0' });
    port = serverPort(master);
    secret = readFileSync(join(dir, 'secret'), 'utf8').trim();
    vol = await connect({ servers: [`127.0.0.1:${port}`], secret, timeoutMs: 5_000 });
    c = await protocolClient([`127.0.0.1:${port}`], secret);
    await c.whenOpen(now() + 5_000);
  }, 20_000);

  afterAll(async () => {
    await vol?.close();
    await master?.close();
  });

  /** The brick's promise and the holder's id, as status reports them. */
  async function brickState(): Promise<{ promised: Epoch; holder: string; lastRev: number }> {
    const st = await c.call('status', ctx(), {});
    const brick = st.brick ?? st.volume?.bricks[0];
    if (!brick || !st.volume) throw new Error('status has no brick');
    return { promised: brick.promisedEpoch, holder: st.volume.holder, lastRev: brick.lastRev };
  }

  it('probe and lock are refused while the holder\'s lease holds; at the promised epoch, by epoch', async () => {
    const { promised } = await brickState();
    expect(promised).toBeGreaterThanOrEqual(1);
    const probe = await c.call('probe', ctx(), { epoch: asEpoch(promised + 1), candidate: 'candidate-x' });
    expect(probe).toEqual({ wouldGrant: false, promisedEpoch: promised, last: { epoch: expect.any(Number), rev: expect.any(Number) } });
    expect(probe.last.epoch).toBe(promised);

    const lease = await c.call('lock', ctx(), { epoch: asEpoch(promised + 1), candidate: 'candidate-x' });
    expect(lease).toEqual({ granted: false, promisedEpoch: promised, reason: 'lease' });
    const epoch = await c.call('lock', ctx(), { epoch: promised, candidate: 'candidate-x' });
    expect(epoch).toEqual({ granted: false, promisedEpoch: promised, reason: 'epoch' });
    // Nothing changed: the volume still takes writes.
    await vol.put('/brick-wire/after-lock', 'ok');
    expect((await brickState()).promised).toBe(promised);
  });

  it('fetch at the promised epoch returns the log, bytes and all; at another epoch it is fenced', async () => {
    const put = await vol.put('/brick-wire/a', 'hello');
    const { promised } = await brickState();
    const res = await c.call('fetch', ctx(), { epoch: promised, from: asRev(1), maxEntries: 10_000 });
    if (!res.ok) throw new Error(`fetch refused: ${JSON.stringify(res)}`);
    expect(res.prevEpoch).toBe(0);
    expect(res.last.rev).toBeGreaterThanOrEqual(put.rev);
    expect(res.commitRev).toBeGreaterThanOrEqual(put.rev);
    expect(res.entries.map((e) => e.rev)).toEqual(Array.from({ length: res.entries.length }, (_, i) => i + 1));
    // Rev 1 is the volume's initial config, epoch 0.
    const first = res.entries[0] as Entry;
    expect(first).toMatchObject({ epoch: 0, rev: 1 });
    expect(first.effects[0]).toMatchObject({ t: 'config', config: { volumeName: 'coordvol', quorumCount: 1 } });
    expect(res.entries.some((e) => e.effects.some((f) => f.t === 'epoch-start'))).toBe(true);
    const entry = res.entries.find((e) => e.rev === put.rev) as Entry;
    const effect = entry.effects.find((f) => f.t === 'put' && f.key === '/brick-wire/a');
    if (effect?.t !== 'put') throw new Error('no put effect for /brick-wire/a');
    expect(effect.value).toBeInstanceOf(Uint8Array);
    expect(text.decode(effect.value)).toBe('hello');
    expect(Object.keys(effect).sort()).toEqual(['createRev', 'key', 'session', 't', 'value', 'version']);

    const one = await c.call('fetch', ctx(), { epoch: promised, from: put.rev, maxEntries: 1 });
    expect(one.ok && one.entries.map((e) => e.rev)).toEqual([put.rev]);
    expect(one.ok && one.prevEpoch).toBe(promised);

    expect(await c.call('fetch', ctx(), { epoch: asEpoch(promised + 1), from: asRev(1), maxEntries: 10 })).toEqual({ ok: false, reason: 'fenced', promisedEpoch: promised });
    if (promised > 0) {
      expect(await c.call('fetch', ctx(), { epoch: asEpoch(promised - 1), from: asRev(1), maxEntries: 10 })).toEqual({ ok: false, reason: 'fenced', promisedEpoch: promised });
    }
  });

  it('append at a stale epoch is fenced; a heartbeat at an unknown prev gets a mismatch', async () => {
    const { promised, holder, lastRev } = await brickState();
    expect(await c.call('append', ctx(), {
      epoch: asEpoch(promised - 1), prevEpoch: asEpoch(0), prevRev: asRev(0), entries: [], commitRev: asRev(0), sender: 'stale-holder',
    })).toEqual({ ok: false, reason: 'fenced', promisedEpoch: promised });
    // A heartbeat as the running holder (it only renews that holder's lease), at a prev the
    // brick does not hold: refused with a hint, whose absent fields arrive as undefined.
    const far = asRev(lastRev + 1_000_000);
    const res = await c.call('append', ctx(), { epoch: promised, prevEpoch: promised, prevRev: far, entries: [], commitRev: asRev(0), sender: holder });
    expect(res).toMatchObject({ ok: false, reason: 'mismatch', hintEpoch: undefined, hintFirstRev: undefined });
    expect(res.ok === false && res.reason === 'mismatch' && res.lastRev).toBeGreaterThanOrEqual(lastRev);
    expect(Object.keys(res).sort()).toEqual(['hintEpoch', 'hintFirstRev', 'lastRev', 'ok', 'reason']);
    await vol.put('/brick-wire/after-append', 'ok');
  });

  it('refuses malformed brick args with invalid-argument naming the field; the connection and brick keep serving', async () => {
    const raw = await RawClient.open(port, secret, sockets);
    const before = await brickState();
    const put = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ t: 'put', key: '/k', value: Buffer.from('v'), createRev: 1, version: 1, session: 0, ...over });
    const entry = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ epoch: 0, rev: 1, effects: [{ t: 'epoch-start' }], ...over });
    // Stale epochs throughout: even an append let through by mistake would be fenced, not taken.
    const append = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ epoch: 0, prevEpoch: 0, prevRev: 0, entries: [entry()], commitRev: 0, sender: 'intruder', ...over });
    const cases: [op: string, args: unknown, field: string][] = [
      ['probe', null, 'probe args'],
      ['probe', [1, 'x'], 'probe args'],
      ['probe', { epoch: -1, candidate: 'x' }, 'epoch'],
      ['probe', { epoch: 1.5, candidate: 'x' }, 'epoch'],
      ['probe', { epoch: '1', candidate: 'x' }, 'epoch'],
      ['probe', { epoch: 2 ** 53, candidate: 'x' }, 'epoch'],
      ['probe', { epoch: 1 }, 'candidate'],
      ['probe', { epoch: 1, candidate: '' }, 'candidate'],
      ['lock', { epoch: 1, candidate: 'x'.repeat(257) }, 'candidate'],
      ['lock', { epoch: Number.NaN, candidate: 'x' }, 'epoch'],
      ['lock', { epoch: 1, candidate: 7 }, 'candidate'],
      ['fetch', { epoch: 0, from: 0, maxEntries: 1 }, 'from'],
      ['fetch', { epoch: 0, from: 1, maxEntries: 0 }, 'maxEntries'],
      ['fetch', { epoch: 0, from: 1, maxEntries: 100_001 }, 'maxEntries'],
      ['fetch', { epoch: 0, from: 1, maxEntries: 2.5 }, 'maxEntries'],
      ['fetch', { epoch: 0, from: 1 }, 'maxEntries'],
      ['append', append({ sender: undefined }), 'sender'],
      ['append', append({ commitRev: -1 }), 'commitRev'],
      ['append', append({ prevEpoch: 1 }), 'prevEpoch'],
      ['append', append({ entries: 'x' }), 'entries'],
      ['append', append({ entries: [7] }), 'entries[0]'],
      ['append', append({ entries: [entry(), entry({ rev: 3 })] }), 'entries[1].rev'],
      ['append', append({ prevRev: 5, entries: [entry({ rev: 5 })] }), 'entries[0].rev'],
      ['append', append({ entries: [entry({ epoch: 1 })] }), 'entries[0].epoch'],
      ['append', append({ epoch: 2, prevEpoch: 1, entries: [entry({ epoch: 0 })] }), 'entries[0].epoch'],
      ['append', append({ entries: [entry({ effects: 'x' })] }), 'entries[0].effects'],
      ['append', append({ entries: [entry({ sclock: Number.POSITIVE_INFINITY })] }), 'entries[0].sclock'],
      ['append', append({ entries: [entry({ sclock: '1' })] }), 'entries[0].sclock'],
      ['append', append({ entries: [entry({ effects: [{ t: 'frobnicate' }] })] }), 'entries[0].effects[0].t'],
      ['append', append({ entries: [entry({ effects: [{}] })] }), 'entries[0].effects[0].t'],
      ['append', append({ entries: [entry({ effects: [null] })] }), 'entries[0].effects[0]'],
      ['append', append({ entries: [entry({ effects: [put({ value: 'v' })] })] }), 'entries[0].effects[0].value'],
      ['append', append({ entries: [entry({ effects: [put({ key: '' })] })] }), 'entries[0].effects[0].key'],
      ['append', append({ entries: [entry({ effects: [put({ key: 'a\u0000b' })] })] }), 'entries[0].effects[0].key'],
      ['append', append({ entries: [entry({ effects: [put({ key: 'k'.repeat(5000) })] })] }), 'entries[0].effects[0].key'],
      ['append', append({ entries: [entry({ effects: [put({ createRev: -1 })] })] }), 'entries[0].effects[0].createRev'],
      ['append', append({ entries: [entry({ effects: [put({ version: 1.5 })] })] }), 'entries[0].effects[0].version'],
      ['append', append({ entries: [entry({ effects: [put({ session: '0' })] })] }), 'entries[0].effects[0].session'],
      ['append', append({ entries: [entry({ effects: [{ t: 'del', key: 5 }] })] }), 'entries[0].effects[0].key'],
      ['append', append({ entries: [entry({ effects: [{ t: 'compact', rev: -2 }] })] }), 'entries[0].effects[0].rev'],
      ['append', append({ entries: [entry({ effects: [{ t: 'config', config: 'x' }] })] }), 'entries[0].effects[0].config'],
      ['append', append({ entries: [entry({ effects: [{ t: 'config', config: { volumeName: 'v', bricks: 'a', quorumCount: 1 } }] })] }), 'entries[0].effects[0].config.bricks'],
      ['append', append({ entries: [entry({ effects: [{ t: 'config', config: { volumeName: 'v', bricks: ['a', 3], quorumCount: 1 } }] })] }), 'entries[0].effects[0].config.bricks[1]'],
      ['append', append({ entries: [entry({ effects: [{ t: 'config', config: { volumeName: 'v', bricks: ['a'], quorumCount: 0 } }] })] }), 'entries[0].effects[0].config.quorumCount'],
      ['append', append({ entries: [entry({ effects: [{ t: 'config', config: { volumeName: 7, bricks: ['a'], quorumCount: 1 } }] })] }), 'entries[0].effects[0].config.volumeName'],
      ['append', append({ entries: Array.from({ length: 100_001 }, (_, i) => entry({ rev: i + 1 })) }), 'entries'],
    ];
    for (const [op, args, field] of cases) {
      const r = await raw.request(op, args);
      expect(r.ok, `${op} ${field}`).toBe(false);
      if (r.ok) continue;
      expect(r.error.code, `${op} ${field}: ${r.error.message}`).toBe('invalid-argument');
      expect(r.error.message.startsWith(`${field} `), `${op} ${field}: ${r.error.message}`).toBe(true);
      expect(r.error.details['field']).toBe(field);
    }
    // The same connection still serves, and the brick took nothing.
    const ok = await raw.request('probe', { epoch: before.promised + 1, candidate: 'x' });
    expect(ok).toMatchObject({ ok: true, result: { wouldGrant: false, promisedEpoch: before.promised } });
    const after = await brickState();
    expect(after.promised).toBe(before.promised);
    await vol.put('/brick-wire/after-bad-input', 'ok');
    expect(text.decode((await vol.get('/brick-wire/after-bad-input')).kv?.value ?? new Uint8Array())).toBe('ok');
  });
});

describe('checkRequest copies brick args to their exact fields', () => {
  it('drops fields a peer adds, at every level, and keeps bytes as given', () => {
    const value = Buffer.from('v');
    const args = {
      epoch: 3, prevEpoch: 2, prevRev: 9, commitRev: 8, sender: 'm1', extra: 'x',
      entries: [
        { epoch: 2, rev: 10, junk: 1, effects: [{ t: 'put', key: '/a', value, createRev: 10, version: 1, session: 0, evil: true }, { t: 'del', key: '/b', more: 1 }] },
        { epoch: 3, rev: 11, sclock: 42, effects: [{ t: 'epoch-start', x: 1 }, { t: 'compact', rev: 4, y: 2 }, { t: 'config', config: { volumeName: 'v', bricks: ['h:/b'], quorumCount: 1, z: 3 } }] },
      ],
    };
    expect(checkRequest('append', args)).toStrictEqual({
      op: 'append',
      args: {
        epoch: 3, prevEpoch: 2, prevRev: 9, commitRev: 8, sender: 'm1',
        entries: [
          { epoch: 2, rev: 10, effects: [{ t: 'put', key: '/a', value, createRev: 10, version: 1, session: 0 }, { t: 'del', key: '/b' }] },
          { epoch: 3, rev: 11, sclock: 42, effects: [{ t: 'epoch-start' }, { t: 'compact', rev: 4 }, { t: 'config', config: { volumeName: 'v', bricks: ['h:/b'], quorumCount: 1 } }] },
        ],
      },
    });
    expect(checkRequest('probe', { epoch: 1, candidate: 'c', x: 1 })).toStrictEqual({ op: 'probe', args: { epoch: 1, candidate: 'c' } });
    expect(checkRequest('lock', { epoch: 1, candidate: 'c', x: 1 })).toStrictEqual({ op: 'lock', args: { epoch: 1, candidate: 'c' } });
    expect(checkRequest('fetch', { epoch: 1, from: 1, maxEntries: 100_000, x: 1 })).toStrictEqual({ op: 'fetch', args: { epoch: 1, from: 1, maxEntries: 100_000 } });
  });
});

describe('brick results as protocol/client decodes them', () => {
  it('rebuilds the declared shapes; a malformed result is a protocol-error', () => {
    expect(decodeAppendResult({ ok: false, reason: 'mismatch', lastRev: 4, extra: 1 })).toStrictEqual({ ok: false, reason: 'mismatch', hintEpoch: undefined, hintFirstRev: undefined, lastRev: 4 });
    expect(decodeFetchResult({ ok: true, entries: [{ epoch: 1, rev: 2, sclock: undefined, effects: [{ t: 'del', key: '/a', x: 1 }] }], last: { epoch: 1, rev: 2 }, commitRev: 2 }))
      .toStrictEqual({ ok: true, prevEpoch: undefined, entries: [{ epoch: 1, rev: 2, effects: [{ t: 'del', key: '/a' }] }], last: { epoch: 1, rev: 2 }, commitRev: 2 });
    expect(decodeLockResult({ granted: false, promisedEpoch: 3, reason: 'lease' })).toStrictEqual({ granted: false, promisedEpoch: 3, reason: 'lease' });
    expect(decodeProbeResult({ wouldGrant: true, promisedEpoch: 3, last: { epoch: 3, rev: 9 } })).toStrictEqual({ wouldGrant: true, promisedEpoch: 3, last: { epoch: 3, rev: 9 } });
    const malformed: [string, () => unknown][] = [
      ['not an object', () => decodeProbeResult('x')],
      ['a missing field', () => decodeProbeResult({ wouldGrant: true, promisedEpoch: 3 })],
      ['an unknown reason', () => decodeLockResult({ granted: false, promisedEpoch: 3, reason: 'whim' })],
      ['an unknown effect', () => decodeFetchResult({ ok: true, entries: [{ epoch: 1, rev: 2, effects: [{ t: 'nope' }] }], last: { epoch: 1, rev: 2 }, commitRev: 2 })],
      ['entries not an array', () => decodeFetchResult({ ok: true, entries: {}, last: { epoch: 1, rev: 2 }, commitRev: 2 })],
      ['a string count', () => decodeAppendResult({ ok: true, lastRev: '4', commitRev: 4 })],
    ];
    for (const [what, f] of malformed) {
      let code: string | undefined;
      try {
        f();
      } catch (e) {
        code = (e as { code?: string }).code;
      }
      expect(code, what).toBe('protocol-error');
    }
  });
});

// ---- fake masters: a protocol/server over a translator that answers as told

class FakeMaster extends Translator {
  /** Answers puts (else refuses them not-holder). */
  holder = false;
  /** The holder a not-holder refusal names. */
  hint: string | undefined;
  putDelayMs = 0;
  /** Each put waits this much longer than the one before it (answers spread out). */
  putStaggerMs = 0;
  readonly puts: string[] = [];
  probes = 0;
  private readonly hung: (() => void)[] = [];
  private rev = 0;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.handlers.status = async () => ({
      volume: { volumeId: 'fake-volume', volumeName: 'fake', epoch: asEpoch(1), holder: '', commitRev: asRev(0), compactRev: asRev(0), quorum: 1, bricks: [] },
    });
    this.handlers.put = async (_ctx, a) => {
      this.puts.push(a.key);
      const delayMs = this.putDelayMs + this.putStaggerMs * (this.puts.length - 1);
      if (delayMs > 0) await sleep(delayMs);
      if (!this.holder) throw coordError('not-holder', `${this.name} does not hold the volume lock`, this.hint !== undefined ? { holder: this.hint } : {});
      return { rev: asRev(++this.rev), key: a.key };
    };
    // A probe is never answered until released: in flight for as long as a test needs.
    this.handlers.probe = () => {
      this.probes++;
      return new Promise((_, reject) => this.hung.push(() => reject(coordError('closed', 'released'))));
    };
  }

  release(): void {
    for (const r of this.hung.splice(0)) r();
  }
}

const fakeClass: TranslatorClass = { type: 'test/fake-master', options: {}, subvolumes: { min: 0, max: 0 }, create: (spec) => new FakeMaster(spec) };
const fakeRegistry = createRegistry([...registry.values(), fakeClass]);

interface Fake {
  readonly graph: Graph;
  readonly fake: FakeMaster;
  readonly address: string;
  readonly port: number;
}

describe('protocol/client with fake masters', () => {
  let dir: string;
  let secret: string;
  const fakes: Fake[] = [];

  beforeAll(async () => {
    dir = await tempDir('coordvol-brick-wire-fake-');
  });

  afterEach(async () => {
    for (const c of [...clients]) await closeClient(c);
    for (const f of fakes.splice(0)) {
      f.fake.release();
      await f.graph.fini();
    }
  });

  /** Fake masters, each a protocol/server over a FakeMaster, sharing one secret (and volume id). */
  async function startFakes(n: number): Promise<Fake[]> {
    const out: Fake[] = [];
    for (let i = 0; i < n; i++) {
      const name = `fake${fakes.length}`;
      const volfile = [
        `volume ${name}`, '    type test/fake-master', 'end-volume', '',
        `volume ${name}-server`, '    type protocol/server', '    option listen 127.0.0.1:0', '    option handshake-timeout-ms 2s', `    subvolumes ${name}`, 'end-volume', '',
      ].join('\n');
      const graph = buildGraph(volfile, { file: join(dir, `${name}.vol`), registry: fakeRegistry, env: { clock: systemClock, baseDir: dir } });
      await graph.init();
      const server = graph.top as ProtocolServerTranslator;
      const fake = graph.translators.find((t) => t instanceof FakeMaster) as FakeMaster;
      const f: Fake = { graph, fake, port: server.address.port, address: `127.0.0.1:${server.address.port}` };
      fakes.push(f);
      out.push(f);
    }
    secret = readFileSync(join(dir, 'secret'), 'utf8').trim();
    return out;
  }

  const put = (c: ProtocolClientTranslator, key: string, ms = 5_000) => c.call('put', ctx(ms), { key, value: Buffer.from('v') });
  const state = (c: ProtocolClientTranslator): Record<string, unknown> => c.dump();

  it('a put refused not-holder by server A goes again to server B, and succeeds there', async () => {
    const [a, b] = (await startFakes(2)) as [Fake, Fake];
    b.fake.holder = true;
    const c = await protocolClient([a.address, b.address], secret);
    await c.whenOpen(now() + 5_000);
    expect(await put(c, '/x')).toEqual({ rev: 1, key: '/x' });
    expect(a.fake.puts).toEqual(['/x']);
    expect(b.fake.puts).toEqual(['/x']);
    expect(state(c)).toMatchObject({ server: expect.stringContaining(String(b.port)), notHolderMoves: 1, notHolderStreak: 0 });
    // It stays with the holder.
    await put(c, '/y');
    expect(a.fake.puts).toEqual(['/x']);
  });

  it('goes straight to the holder a not-holder refusal names', async () => {
    const [a, b, h] = (await startFakes(3)) as [Fake, Fake, Fake];
    h.fake.holder = true;
    a.fake.hint = h.address;
    const c = await protocolClient([a.address, b.address, h.address], secret);
    await c.whenOpen(now() + 5_000);
    expect(await put(c, '/x')).toEqual({ rev: 1, key: '/x' });
    expect([a.fake.puts.length, b.fake.puts.length, h.fake.puts.length]).toEqual([1, 0, 1]);
  });

  it('during an election (no holder anywhere) it keeps trying, pausing, and succeeds once a holder is elected', async () => {
    const [a, b] = (await startFakes(2)) as [Fake, Fake];
    const c = await protocolClient([a.address, b.address], secret);
    await c.whenOpen(now() + 5_000);
    const t0 = now();
    setTimeout(() => (b.fake.holder = true), 400);
    expect(await put(c, '/x')).toEqual({ rev: 1, key: '/x' });
    const took = now() - t0;
    expect(took).toBeGreaterThanOrEqual(390);
    expect(took).toBeLessThan(1_500);
    const tries = a.fake.puts.length + b.fake.puts.length;
    // Pauses of 50, 100, then 200 ms (jittered): a handful of tries, not a busy loop.
    expect(tries).toBeGreaterThanOrEqual(3);
    expect(tries).toBeLessThanOrEqual(10);
  });

  it('fails with not-holder at the deadline when no server holds the lock', async () => {
    const [a, b] = (await startFakes(2)) as [Fake, Fake];
    const c = await protocolClient([a.address, b.address], secret);
    await c.whenOpen(now() + 5_000);
    const t0 = now();
    expect((await refusal(put(c, '/x', 500))).code).toBe('not-holder');
    expect(now() - t0).toBeGreaterThanOrEqual(490);
    expect(a.fake.puts.length + b.fake.puts.length).toBeGreaterThanOrEqual(2);
  });

  it('writes in flight on the old server when the connection moves are answered there, then go again (none indeterminate)', async () => {
    const [a, b] = (await startFakes(2)) as [Fake, Fake];
    a.fake.putDelayMs = 20;
    a.fake.putStaggerMs = 10;
    b.fake.holder = true;
    const c = await protocolClient([a.address, b.address], secret);
    await c.whenOpen(now() + 5_000);
    const keys = Array.from({ length: 20 }, (_, i) => `/k${i}`);
    const all = Promise.allSettled(keys.map((k) => put(c, k)));
    // The first refusal moved the connection to B while A still had the others in flight.
    while (b.fake.puts.length < 1) await sleep(1);
    expect(state(c)).toMatchObject({ draining: 1, server: expect.stringContaining(String(b.port)) });
    const results = await all;
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(a.fake.puts.sort()).toEqual([...keys].sort());
    expect(b.fake.puts.sort()).toEqual([...keys].sort());
    expect(state(c)).toMatchObject({ notHolderMoves: 1, indeterminate: 0, draining: 0 });
  });

  it('with one server, not-holder is the caller\'s answer at once', async () => {
    const [a] = (await startFakes(1)) as [Fake];
    a.fake.hint = '127.0.0.1:1';
    const c = await protocolClient([a.address], secret);
    await c.whenOpen(now() + 5_000);
    const t0 = now();
    const r = await refusal(put(c, '/x'));
    expect(r.code).toBe('not-holder');
    expect(now() - t0).toBeLessThan(1_000);
    expect(a.fake.puts).toEqual(['/x']);
  });

  it('a brick fop with no open connection fails unavailable at once; a client fop waits for one', async () => {
    // A port nothing listens on.
    const probe = createServer();
    await new Promise<void>((ok) => probe.listen(0, '127.0.0.1', ok));
    const deadPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((ok) => probe.close(() => ok()));
    await startFakes(1);
    const c = await protocolClient([`127.0.0.1:${deadPort}`], secret);
    let t0 = now();
    const r = await refusal(c.call('probe', ctx(), { epoch: asEpoch(1), candidate: 'c' }));
    expect(r.code).toBe('unavailable');
    expect(now() - t0).toBeLessThan(50);
    for (const op of ['lock', 'append', 'fetch'] as const satisfies readonly FopName[]) {
      const args = op === 'fetch' ? { epoch: asEpoch(1), from: asRev(1), maxEntries: 1 }
        : op === 'append' ? { epoch: asEpoch(1), prevEpoch: asEpoch(0), prevRev: asRev(0), entries: [], commitRev: asRev(0), sender: 'm' }
          : { epoch: asEpoch(1), candidate: 'c' };
      expect((await refusal(c.call(op, ctx(), args as never))).code).toBe('unavailable');
    }
    t0 = now();
    expect((await refusal(c.call('get', ctx(300), { key: '/x' }))).code).toBe('unavailable');
    expect(now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('a brick fop in flight when the connection breaks fails unavailable and is not sent again; past its deadline, timeout', async () => {
    const [a] = (await startFakes(1)) as [Fake];
    const proxy = await Proxy.start(a.port, sockets);
    try {
      const c = await protocolClient([`127.0.0.1:${proxy.port}`], secret);
      await c.whenOpen(now() + 5_000);
      const p = refusal(c.call('probe', ctx(), { epoch: asEpoch(1), candidate: 'c' }));
      while (a.fake.probes < 1) await sleep(5);
      expect(proxy.cut()).toBe(1);
      expect((await p).code).toBe('unavailable');
      await c.whenOpen(now() + 5_000);
      await sleep(100);
      expect(a.fake.probes).toBe(1);

      const t0 = now();
      expect((await refusal(c.call('probe', ctx(150), { epoch: asEpoch(1), candidate: 'c' }))).code).toBe('timeout');
      expect(now() - t0).toBeGreaterThanOrEqual(140);
      expect(a.fake.probes).toBe(2);
      // Client fops on that client are as before.
      expect((await refusal(put(c, '/x'))).code).toBe('not-holder');
    } finally {
      await proxy.close();
    }
  });
});
