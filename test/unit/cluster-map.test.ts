// The cluster map with liveness (issue 6, point 2): a master registers itself and keeps its
// liveness key; a plain peer's daemon in a child process shows Disconnected within ttl + ttl/3
// of a SIGKILL while its record stays; stop() removes the key at once; a keeper whose session is
// ended from outside (or whose key is deleted) puts the key back; `peer status` and `pool list`
// as tables and JSON, and GET /v1/peers; malformed records never break a listing; daemonUuid.
// One single-brick master on loopback (fsync off, 10 ms lease, so a 2 s session ttl is allowed).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/app.js';
import { sessionFops } from '../../src/api/routes-sessions.js';
import { FopVolume, type FopCaller } from '../../src/client/volume.js';
import { asSessionId, type SessionId } from '../../src/common/ids.js';
import {
  ALIVE_PREFIX, PEERS_PREFIX, aliveKey, deletePeer, findPeerByAddress, getPeer, listPeers, peerKey, putPeer, readClusterMap,
  type AliveRecord, type PeerRecord,
} from '../../src/mgmt/cluster-map.js';
import { daemonUuid } from '../../src/mgmt/daemon-uuid.js';
import { keepAlive, type LivenessEvent, type LivenessKeeper } from '../../src/mgmt/liveness.js';
import { cliAgainst, firstJsonLine, refusal, startNetMaster, type NetMaster } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TTL = 2_000;
/** Polling and scheduling slack on top of DESIGN §5's bound. */
const SLACK_MS = 300;

const MASTER_UUID = '11111111-1111-4111-8111-111111111111';
const PEER_UUID = '22222222-2222-4222-8222-222222222222';
const KEEPER_UUID = '33333333-3333-4333-8333-333333333333';
const STRAY_UUID = '44444444-4444-4444-8444-444444444444';
const BAD_UUID = '55555555-5555-4555-8555-555555555555';

let net: NetMaster;
let vol: FopVolume; // in-process, over the master's graph: as a master's own daemon would use it
let scratch: string;
const keepers: LivenessKeeper[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  net = await startNetMaster('coordvol-cluster-map-');
  const top = net.master.top;
  const caller: FopCaller = (fop, ctx, args) => top.call(fop, ctx, args);
  vol = new FopVolume(caller, async () => undefined);
  scratch = await mkdtemp(join(tmpdir(), 'coordvol-cluster-map-scratch-'));
});

afterAll(async () => {
  await Promise.all(keepers.map((k) => k.stop().catch(() => undefined)));
  await net?.close(); // kills the child processes first
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 5_000): Promise<void> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function alive(uuid: string, port: number): AliveRecord {
  return { uuid, address: `127.0.0.1:${port}`, pid: process.pid, startedAt: new Date().toISOString() };
}

/** A keeper whose events are recorded; resolves once its key is first in. */
async function startKeeper(a: AliveRecord, selfRecord?: PeerRecord): Promise<{ keeper: LivenessKeeper; events: LivenessEvent[] }> {
  const events: LivenessEvent[] = [];
  const keeper = keepAlive(vol, a, { ttlMs: TTL, ...(selfRecord ? { selfRecord } : {}), onEvent: (e) => events.push(e) });
  keepers.push(keeper);
  await until(() => events.some((e) => e.kind === 'registered'), 'the first registration');
  return { keeper, events };
}

const stateOf = async (uuid: string): Promise<string | undefined> => (await listPeers(vol)).find((p) => p.uuid === uuid)?.state;

describe('keepAlive and listPeers', () => {
  let master: LivenessKeeper;
  const masterAlive = alive(MASTER_UUID, 7420);
  const masterRecord: PeerRecord = { uuid: MASTER_UUID, hostname: 'm1', address: '127.0.0.1:7420', role: 'master', brick: '127.0.0.1:/data/brick', probedAt: new Date().toISOString() };

  it('(a) puts the alive key under its session; a master registers itself and lists as Connected', async () => {
    const { keeper, events } = await startKeeper(masterAlive, masterRecord);
    master = keeper;
    expect(events[0]).toMatchObject({ kind: 'registered', peerCreated: true, session: keeper.sessionId });
    const kv = (await vol.get(aliveKey(MASTER_UUID))).kv;
    expect(kv?.session).toBe(keeper.sessionId);
    expect(JSON.parse(Buffer.from(kv?.value ?? []).toString())).toEqual(masterAlive);
    expect((await vol.get(peerKey(MASTER_UUID))).kv?.session).toBe(0); // the record is persistent
    const peers = await listPeers(vol);
    expect(peers).toEqual([{ ...masterRecord, state: 'Connected', alive: masterAlive }]);
    expect(await getPeer(vol, MASTER_UUID)).toEqual(masterRecord);
    expect(await findPeerByAddress(vol, '127.0.0.1:7420')).toEqual(masterRecord);
    expect(await findPeerByAddress(vol, '127.0.0.1:1')).toBeUndefined();
  });

  it('never overwrites an existing record with its selfRecord', async () => {
    const a = alive(STRAY_UUID, 7500);
    const probed: PeerRecord = { uuid: STRAY_UUID, hostname: 'probed-name', address: '127.0.0.1:7500', role: 'peer', probedAt: new Date().toISOString() };
    await putPeer(vol, probed);
    const { keeper, events } = await startKeeper(a, { ...probed, hostname: 'self-name', role: 'master' });
    expect(events[0]).toMatchObject({ kind: 'registered', peerCreated: false });
    expect(await getPeer(vol, STRAY_UUID)).toEqual(probed);
    await keeper.stop();
    expect(await deletePeer(vol, STRAY_UUID)).toBe(true);
    expect(await deletePeer(vol, STRAY_UUID)).toBe(false);
  });

  it('(b) a plain peer whose daemon is SIGKILLed shows Disconnected within ttl + ttl/3; its record stays', async () => {
    const record: PeerRecord = { uuid: PEER_UUID, hostname: 'p1', address: '127.0.0.1:10000', role: 'peer', probedAt: new Date().toISOString() };
    await putPeer(vol, record); // what `peer probe HOST:PORT` writes
    expect(await stateOf(PEER_UUID)).toBe('Disconnected');
    const { child, session } = await startChildKeeper({ uuid: PEER_UUID, address: record.address, pid: 0, startedAt: new Date().toISOString() });
    const view = (await listPeers(vol)).find((p) => p.uuid === PEER_UUID);
    expect(view).toMatchObject({ ...record, state: 'Connected', alive: { uuid: PEER_UUID, pid: child.pid } });
    expect((await vol.get(aliveKey(PEER_UUID))).kv?.session).toBe(session);
    // Sorted by address, the port as a number: :7420 before :10000.
    expect((await listPeers(vol)).map((p) => p.uuid)).toEqual([MASTER_UUID, PEER_UUID]);

    const killedAt = performance.now();
    child.kill('SIGKILL');
    await until(async () => (await stateOf(PEER_UUID)) === 'Disconnected', 'the killed peer to show Disconnected', 3 * TTL);
    const tookMs = performance.now() - killedAt;
    expect(tookMs).toBeLessThanOrEqual(TTL + TTL / 3 + SLACK_MS);
    expect(await getPeer(vol, PEER_UUID)).toEqual(record);
    expect((await listPeers(vol)).find((p) => p.uuid === PEER_UUID)).toEqual({ ...record, state: 'Disconnected' });
  }, 20_000);

  it('(c) stop() removes the alive key at once; the record stays, Disconnected', async () => {
    const id = master.sessionId;
    await master.stop();
    expect((await vol.get(aliveKey(MASTER_UUID))).kv).toBeUndefined();
    expect((await vol.sessions()).sessions.map((s) => s.id)).not.toContain(id);
    expect(master.sessionId).toBeUndefined();
    expect(await stateOf(MASTER_UUID)).toBe('Disconnected');
    await master.stop(); // idempotent
  });

  it('(d) puts the key back under a new session when its session is ended from outside', async () => {
    const { keeper, events } = await startKeeper(alive(KEEPER_UUID, 7600));
    const first = keeper.sessionId as SessionId;
    await sessionFops((fop, ctx, args) => net.master.top.call(fop, ctx, args)).close(asSessionId(first));
    await until(async () => {
      const kv = (await vol.get(aliveKey(KEEPER_UUID))).kv;
      return kv !== undefined && kv.session !== first && kv.session === keeper.sessionId;
    }, 'the key back under a new session');
    expect(events.some((e) => e.kind === 'lost' && e.session === first)).toBe(true);
    expect(events.filter((e) => e.kind === 'registered')).toHaveLength(2);

    // Deleted from outside while the session lives: put back under the same session.
    const second = keeper.sessionId;
    await vol.delete(aliveKey(KEEPER_UUID));
    await until(async () => (await vol.get(aliveKey(KEEPER_UUID))).kv?.session === second, 'the deleted key back');
    expect(events.some((e) => e.kind === 'deleted' && e.session === second)).toBe(true);
    // No peer record: a running daemon not in the pool is listed apart, not as a peer.
    const m = await readClusterMap(vol);
    expect(m.peers.map((p) => p.uuid)).not.toContain(KEEPER_UUID);
    expect(m.unprobed.map((a) => a.uuid)).toContain(KEEPER_UUID);
  });

  it('refuses a bad record or ttl up front', () => {
    expect(() => keepAlive(vol, { ...alive(KEEPER_UUID, 1), uuid: 'nope' }, { ttlMs: TTL })).toThrow(/uuid/);
    expect(() => keepAlive(vol, alive(KEEPER_UUID, 1), { ttlMs: 500 })).toThrow(/ttlMs/);
    expect(() => keepAlive(vol, alive(KEEPER_UUID, 1), { ttlMs: TTL, selfRecord: { uuid: PEER_UUID, hostname: 'x', address: '127.0.0.1:1', role: 'peer', probedAt: new Date().toISOString() } })).toThrow(/selfRecord/);
  });
});

describe('malformed records', () => {
  it('(f) are skipped and reported, never thrown at a listing', async () => {
    await vol.put(PEERS_PREFIX + 'not-a-uuid', 'x');
    await vol.put(peerKey(BAD_UUID), 'not json');
    await vol.put(peerKey(STRAY_UUID), JSON.stringify({ uuid: PEER_UUID, hostname: 'h', address: '127.0.0.1:1', role: 'peer', probedAt: new Date().toISOString() }));
    await vol.put(aliveKey(BAD_UUID), JSON.stringify({ uuid: BAD_UUID, address: 'nowhere', pid: -1, startedAt: 'x' }));
    const m = await readClusterMap(vol);
    expect(m.peers.map((p) => p.uuid)).toEqual([MASTER_UUID, PEER_UUID]);
    expect(m.skipped).toEqual([
      { key: aliveKey(BAD_UUID), reason: 'address is not host:port' },
      { key: peerKey(STRAY_UUID), reason: `uuid ${PEER_UUID} does not match its key` },
      { key: peerKey(BAD_UUID), reason: 'not JSON' },
      { key: PEERS_PREFIX + 'not-a-uuid', reason: 'the key does not end in a lowercase UUID' },
    ]);
    expect((await listPeers(vol)).map((p) => p.uuid)).toEqual([MASTER_UUID, PEER_UUID]);
    expect((await refusal(getPeer(vol, BAD_UUID))).code).toBe('store-invalid');
    expect((await refusal(putPeer(vol, { uuid: PEER_UUID, hostname: '', address: '127.0.0.1:1', role: 'peer', probedAt: new Date().toISOString() }))).code).toBe('invalid-argument');
    expect((await refusal(putPeer(vol, { uuid: PEER_UUID, hostname: 'h', address: 'h', role: 'peer', probedAt: new Date().toISOString() }))).code).toBe('invalid-argument');
  });
});

describe('peer status, pool list, GET /v1/peers', () => {
  it('(e) print the map as tables and as JSON', async () => {
    const [status, statusJson, pool, poolJson] = await Promise.all([cli(['peer', 'status']), cli(['peer', 'status', '--json']), cli(['pool', 'list']), cli(['pool', 'list', '--json'])]);
    const peers = await listPeers(vol);
    for (const r of [status, statusJson, pool, poolJson]) expect(r.status, r.err).toBe(0);

    const lines = status.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^UUID\s+HOSTNAME\s+ADDRESS\s+ROLE\s+STATE$/);
    expect(lines[1]).toMatch(new RegExp(`^${MASTER_UUID}\\s+m1\\s+127\\.0\\.0\\.1:7420\\s+master\\s+Disconnected$`));
    expect(lines[2]).toMatch(new RegExp(`^${PEER_UUID}\\s+p1\\s+127\\.0\\.0\\.1:10000\\s+peer\\s+Disconnected$`));
    expect(lines[3]).toMatch(/^2 peers \(0 connected\) at rev \d+$/);
    expect(status.out).toContain(`running but not probed: ${KEEPER_UUID} at 127.0.0.1:7600`);
    expect(status.out).toContain(`skipped ${peerKey(BAD_UUID)}: not JSON`);
    // Columns line up: every row's STATE starts where the header's does.
    const at = (lines[0] as string).indexOf('STATE');
    for (const l of lines.slice(1, 3)) expect(l.slice(at)).toMatch(/^(Connected|Disconnected)$/);

    expect(JSON.parse(statusJson.out)).toEqual(peers);
    expect(statusJson.err.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toContainEqual({ warning: { code: 'store-invalid', key: peerKey(BAD_UUID), message: 'not JSON' } });

    const poolLines = pool.out.trimEnd().split('\n');
    expect(poolLines[0]).toMatch(/^UUID\s+Hostname\s+State$/);
    expect(poolLines[1]).toMatch(new RegExp(`^${MASTER_UUID}\\s+m1\\s+Disconnected$`));
    expect(poolLines[2]).toMatch(new RegExp(`^${PEER_UUID}\\s+p1\\s+Disconnected$`));
    expect(JSON.parse(poolJson.out)).toEqual(peers);
  }, 20_000);

  it('fails with a one-line reason and exit 1 when no server answers', async () => {
    const r = await cli(['peer', 'status', '--server', '127.0.0.1:1', '--timeout', '500']);
    expect(r.status).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^coordvol: [a-z-]+: [^\n]+\n$/);
  }, 20_000);

  it('GET /v1/peers answers { rev, peers, unprobed, skipped }', async () => {
    const { keeper } = await startKeeper(alive(MASTER_UUID, 7420));
    const app = buildApi({ volume: vol });
    try {
      const r = await app.inject({ method: 'GET', url: '/v1/peers' });
      expect(r.statusCode).toBe(200);
      const body = r.json() as Record<string, unknown>;
      const m = await readClusterMap(vol);
      expect(body).toEqual({ rev: expect.any(Number), peers: m.peers, unprobed: m.unprobed, skipped: m.skipped });
      expect((body['peers'] as { state: string; alive?: unknown }[])[0]).toMatchObject({ state: 'Connected', brick: '127.0.0.1:/data/brick', alive: { uuid: MASTER_UUID } });
      expect((await app.inject({ method: 'GET', url: '/v1/peers?x=1' })).statusCode).toBe(400);
    } finally {
      await app.close();
      await keeper.stop();
    }
  });
});

describe('daemonUuid', () => {
  it('(g) makes <dir>/uuid once, keeps it, and refuses a corrupted file', async () => {
    const dir = join(scratch, 'daemon');
    const a = daemonUuid(dir);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(daemonUuid(dir)).toBe(a);
    expect(await readdir(dir)).toEqual(['uuid']); // no temp file left behind
    expect((await stat(join(dir, 'uuid'))).mode & 0o133).toBe(0); // at most 0644

    await writeFile(join(dir, 'uuid'), a.toUpperCase() + '\n'); // a hand-edited file
    expect(daemonUuid(dir)).toBe(a);
    await writeFile(join(dir, 'uuid'), 'not-a-uuid\n');
    expect(() => daemonUuid(dir)).toThrow(expect.objectContaining({ code: 'store-invalid' }));
    await writeFile(join(dir, 'uuid'), '');
    expect(() => daemonUuid(dir)).toThrow(expect.objectContaining({ code: 'store-invalid' }));
    expect(daemonUuid(join(scratch, 'other'))).not.toBe(a);
  });
});

/**
 * A plain peer's daemon in a child process: connects over the wire and keeps its liveness key
 * (with its own pid). Resolves once the key is in.
 */
async function startChildKeeper(a: AliveRecord): Promise<{ child: ChildProcess; session: number }> {
  const script = join(scratch, 'peer-keeper.mjs');
  const url = (p: string): string => JSON.stringify(pathToFileURL(join(ROOT, p)).href);
  await writeFile(
    script,
    `import { readFileSync } from 'node:fs';
const { connect } = await import(${url('src/client/remote.ts')});
const { keepAlive } = await import(${url('src/mgmt/liveness.ts')});
const [server, secretFile, aliveJson, ttl] = process.argv.slice(2);
const vol = await connect({ servers: [server], secret: readFileSync(secretFile, 'utf8').trim(), exactlyOnce: false });
keepAlive(vol, { ...JSON.parse(aliveJson), pid: process.pid }, {
  ttlMs: Number(ttl),
  onEvent: (e) => { if (e.kind === 'registered') process.stdout.write(JSON.stringify({ session: e.session }) + '\\n'); },
});
setInterval(() => undefined, 60_000); // until killed
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script, net.server, join(net.dir, 'secret'), JSON.stringify(a), String(TTL)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  net.children.push(child);
  return firstJsonLine<{ session: number }>(child, 'peer keeper', 15_000).then(({ session }) => ({ child, session }));
}

/** The CLI against this file's master. */
const cli = (args: readonly string[]): ReturnType<typeof cliAgainst> => cliAgainst(net, args);
