// The bootstrap in one process (DESIGN §8): daemons as `coordvol start` runs them, grown from one
// master to two by `peer probe --as-master` (src/mgmt/probe.ts), one more made a plain peer, and
// the refusals that change nothing: a daemon holding data, the same daemon twice, a wrong
// secret, malformed peerJoin arguments off the wire. The real-process scenario with kills and
// restarts is test/cluster/bootstrap.test.ts.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type RemoteVolume } from '../../src/client/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { listPeers } from '../../src/mgmt/cluster-map.js';
import { detach, probe } from '../../src/mgmt/probe.js';
import { checkPeerJoinArgs } from '../../translators/protocol/mgmt.js';
import { freePort, until, type Cleanup } from './fixtures/local-volume.js';
import { firstJsonLine, refusal } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'src/cli/main.ts');

const cleanup: Cleanup = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

interface Node {
  readonly daemon: Daemon;
  readonly dir: string;
  readonly address: string;
  readonly secret: string;
}

async function startNode(root: string, name: string): Promise<Node> {
  const dir = join(root, name);
  const address = `127.0.0.1:${await freePort()}`;
  const daemon = await Daemon.start({ dir, fsync: false, leaseMs: 50, listen: address, livenessTtlMs: 2_000 });
  cleanup.push(() => daemon.close());
  return { daemon, dir, address, secret: readFileSync(join(dir, 'secret'), 'utf8') };
}

async function client(n: Node, secret = readFileSync(join(n.dir, 'secret'), 'utf8')): Promise<RemoteVolume> {
  const v = await connect({ servers: [n.address], secret, timeoutMs: 5_000, exactlyOnce: false });
  cleanup.push(() => v.close());
  return v;
}

function probeDeps(cluster: RemoteVolume, clusterSecret: string, target: Node, peerSecret = target.secret): Parameters<typeof probe>[2] {
  return {
    cluster,
    clusterSecret,
    untilMs: Date.now() + 30_000,
    connectPeer: (which, expectVolumeId) =>
      connect({ servers: [target.address], secret: which === 'peer' ? peerSecret : clusterSecret, timeoutMs: 3_000, exactlyOnce: false, ...(expectVolumeId ? { expectVolumeId } : {}) }),
  };
}

describe('peer probe in one process', () => {
  it('grows a fresh master to two, adds a plain peer, and refuses what it must without changing anything', async () => {
    const root = await mkdtemp(join(tmpdir(), 'coordvol-bootstrap-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const [n1, n2, n3, n4] = [await startNode(root, 'n1'), await startNode(root, 'n2'), await startNode(root, 'n3'), await startNode(root, 'n4')];
    const c1 = await client(n1);
    await c1.put('/config/a', '1');

    // A daemon holding data is not discarded: already-configured, naming its volume.
    const c4 = await client(n4);
    await c4.put('/mine', 'kept');
    const info4 = await c4.peerInfo();
    const held = await refusal(probe(n4.address, true, probeDeps(c1, n1.secret, n4)));
    expect(held.code).toBe('already-configured');
    expect(held.message).toContain(info4.volumeId);
    expect(Buffer.from((await c4.get('/mine')).kv?.value ?? []).toString()).toBe('kept');

    // A wrong secret for the probed daemon: auth-failed, nothing sent.
    const wrong = await refusal(probe(n2.address, true, probeDeps(c1, n1.secret, n2, 'not its secret')));
    expect(wrong.code).toBe('auth-failed');
    expect((await (await client(n2)).peerInfo()).configured).toBe(false);

    // n2 joins as a master: healed as a learner, promoted; its volfile names n1.
    const r = await probe(n2.address, true, probeDeps(c1, n1.secret, n2));
    expect(r.role).toBe('master');
    expect(r.voters).toHaveLength(2);
    expect(r.learners).toEqual([]);
    expect(readFileSync(n2.daemon.volfilePath, 'utf8')).toContain(`option remote-masters ${n1.address}`);
    await until(() => readFileSync(n1.daemon.volfilePath, 'utf8').includes(`option remote-masters ${n2.address}`), () => 'n1 to rewrite its volfile', 5_000);
    // The joined master serves the volume with the cluster secret: its data arrived by the heal.
    const c2 = await client(n2, n1.secret);
    expect(Buffer.from((await c2.get('/config/a', { consistency: 'serializable' })).kv?.value ?? []).toString()).toBe('1');
    await c2.put('/config/b', '2');
    expect((await c1.get('/config/b')).kv).toBeDefined();

    // The same host twice: already-member, and the membership is as it was.
    const before = (await c1.status()).volume?.bricks.map((b) => `${b.path}:${b.role}`).sort();
    expect((await refusal(probe(n2.address, true, probeDeps(c1, n1.secret, n2)))).code).toBe('already-member');
    expect((await c1.status()).volume?.bricks.map((b) => `${b.path}:${b.role}`).sort()).toEqual(before);

    // n3 becomes a plain peer: a client volfile naming both masters, the cluster secret, a record.
    const p = await probe(n3.address, false, probeDeps(c1, n1.secret, n3));
    expect(p.role).toBe('peer');
    expect(n3.daemon.role).toBe('peer');
    const clientVolfile = readFileSync(join(n3.dir, 'coordvol-client.vol'), 'utf8');
    expect(clientVolfile).toContain(n1.address);
    expect(clientVolfile).toContain(n2.address);
    const c3 = await client(n3, n1.secret);
    expect(Buffer.from((await c3.get('/config/b')).kv?.value ?? []).toString()).toBe('2');
    await until(async () => {
      const peers = await listPeers(c1);
      return peers.length === 3 && peers.every((x) => x.state === 'Connected');
    }, () => 'three connected peers', 10_000, 50);
    const peers = await listPeers(c1);
    expect(peers.map((x) => x.role).sort()).toEqual(['master', 'master', 'peer']);

    // Detach the plain peer: its record goes; the masters are untouched.
    const d = await detach(c1, n3.address, { force: false, untilMs: Date.now() + 5_000 });
    expect(d.role).toBe('peer');
    expect((await listPeers(c1)).map((x) => x.address).sort()).toEqual([n1.address, n2.address].sort());
    expect((await refusal(detach(c1, '127.0.0.1:1', { force: false, untilMs: Date.now() + 1_000 }))).code).toBe('not-found');
  }, 60_000);

  it('starts a plain peer with `coordvol start --join`: it serves the volume and registers itself', async () => {
    const root = await mkdtemp(join(tmpdir(), 'coordvol-join-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const m = await startNode(root, 'm');
    const c = await client(m);
    const listen = `127.0.0.1:${await freePort()}`;
    const peerDir = join(root, 'p');
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'start', '--dir', peerDir, '--listen', listen, '--no-http', '--join', m.address, '--secret-file', join(m.dir, 'secret'), '--liveness-ttl', '2000', '--json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanup.push(async () => void child.kill('SIGKILL'));
    const summary = await firstJsonLine<{ role: string; listen: string; volumeId: string }>(child, 'the plain peer', 20_000);
    expect(summary.role).toBe('peer');
    expect(summary.listen).toBe(listen);
    expect(summary.volumeId).toBe((await c.peerInfo()).volumeId);
    expect(readFileSync(join(peerDir, 'coordvol-client.vol'), 'utf8')).toContain(`option remote ${m.address}`);
    // Through the peer with the cluster secret it was given; and it is in the map, Connected.
    const viaPeer = await connect({ servers: [listen], secret: m.secret, timeoutMs: 5_000, exactlyOnce: false });
    cleanup.push(() => viaPeer.close());
    await viaPeer.put('/via-peer', 'yes');
    expect(Buffer.from((await c.get('/via-peer')).kv?.value ?? []).toString()).toBe('yes');
    await until(async () => (await listPeers(c)).some((x) => x.address === listen && x.role === 'peer' && x.state === 'Connected'), () => 'the peer in the map', 10_000, 50);
    // Its client volfile is watched like a master's: an edit of the stack switches its graph. (Its
    // `remote` line is the masters' to keep: they push the list, the peer writes it back.)
    const clientVolfile = join(peerDir, 'coordvol-client.vol');
    const names = async (): Promise<string[]> => (await viaPeer.statedump()).map((d) => d.name);
    expect(await names()).not.toContain('coordvol-extra');
    await until(async () => {
      const text = readFileSync(clientVolfile, 'utf8');
      if (!text.includes('coordvol-extra')) {
        writeFileSync(
          clientVolfile,
          text
            .replace('volume coordvol-server\n', 'volume coordvol-extra\n    type debug/io-stats\n    subvolumes coordvol\nend-volume\n\nvolume coordvol-server\n')
            .replace(/(volume coordvol-server[\s\S]*?)subvolumes coordvol\n/, '$1subvolumes coordvol-extra\n'),
        );
      }
      return (await names()).includes('coordvol-extra');
    }, () => 'the plain peer to switch to its edited client volfile', 15_000, 500);
    await viaPeer.put('/via-peer', 'after the switch');
    expect(Buffer.from((await c.get('/via-peer')).kv?.value ?? []).toString()).toBe('after the switch');
    child.kill('SIGKILL');
  }, 40_000);

  it('refuses malformed peerJoin arguments with typed errors, off the wire too', async () => {
    const good = { role: 'master', secret: 's', volumeId: 'a'.repeat(32), initial: { volumeName: 'v', bricks: ['h:/b'], quorumCount: 1 }, masters: [{ brick: 'h:/b', address: 'h:1' }], leaseMs: 500 };
    expect(checkPeerJoinArgs(good).masters).toEqual(good.masters);
    const bad: unknown[] = [
      null,
      [],
      { ...good, role: 'boss' },
      { ...good, secret: '' },
      { ...good, volumeId: 'xyz' },
      { ...good, initial: { ...good.initial, bricks: [] } },
      { ...good, initial: { ...good.initial, quorumCount: 2 } },
      { ...good, initial: { ...good.initial, bricks: ['has space'] } },
      { ...good, masters: [] },
      { ...good, masters: [{ brick: 'h:/b', address: 'no-port' }] },
      { ...good, leaseMs: 0 },
    ];
    for (const a of bad) expect(() => checkPeerJoinArgs(a), JSON.stringify(a)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));

    const root = await mkdtemp(join(tmpdir(), 'coordvol-peerjoin-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const n = await startNode(root, 'n');
    const c = await client(n);
    const r = await refusal(c.peerJoin({ ...good, role: 'boss' } as never));
    expect(r.code).toBe('invalid-argument');
    expect((await c.peerInfo()).configured).toBe(false);
    expect(n.daemon.role).toBe('master');
  }, 30_000);
});
