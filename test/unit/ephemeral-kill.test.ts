// Issue 4's ephemeral test: a client child process with a 2 s session and ephemeral keys is
// SIGKILLed; a watcher sees the keys deleted within ttl + ttl/3, all at one rev, and never
// earlier while keepalives flow; a put naming the dead session fails. Also: a session's
// keepalives survive a server restart (the library reconnects and keeps it alive).
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RemoteVolume, type WatchMessage } from '../../src/client/index.js';
import { startMaster } from '../../src/daemon/master.js';
import { firstJsonLine, refusal, serverPort, startNetMaster, type NetMaster } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLIENT = join(ROOT, 'test/unit/fixtures/session-client.ts');
const TTL = 2_000;

let net: NetMaster;
let dir: string;
let server: string;
let vol: RemoteVolume;

beforeAll(async () => {
  net = await startNetMaster('coordvol-ephemeral-');
  ({ dir, server, vol } = net);
});

afterAll(() => net?.close());

/** Starts the child and resolves with its session once its keys are in. */
function startClient(prefix: string, count: number): Promise<{ child: ChildProcess; session: number; rev: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENT, server, join(dir, 'secret'), prefix, String(TTL), String(count)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  net.children.push(child);
  return firstJsonLine<{ session: number; rev: number }>(child, 'session client', 20_000).then(({ session, rev }) => ({ child, session, rev }));
}

describe('ephemeral keys of a killed client', () => {
  it('go at one rev within ttl + ttl/3 of the kill, not before while keepalives flow', async () => {
    const { child, session, rev } = await startClient('/cluster/alive/', 3);
    const seen: { at: number; msg: WatchMessage }[] = [];
    const watcher = vol.watch('/cluster/alive/', { fromRev: rev + 1 });
    const collecting = (async () => {
      for await (const msg of watcher) {
        seen.push({ at: performance.now(), msg });
        if (msg.kind === 'events' && msg.events.some((e) => e.type === 'delete')) return;
      }
    })();
    // Keepalives flow for 2 ttl: nothing is deleted.
    await new Promise((r) => setTimeout(r, 2 * TTL));
    expect(seen.filter((s) => s.msg.kind === 'events')).toHaveLength(0);
    const killedAt = performance.now();
    child.kill('SIGKILL');
    await Promise.race([collecting, new Promise((_, reject) => setTimeout(() => reject(new Error('no delete seen')), 3 * TTL))]);
    await watcher.cancel();
    const events = seen.filter((s) => s.msg.kind === 'events');
    expect(events).toHaveLength(1); // one rev
    const first = events[0] as { at: number; msg: Extract<WatchMessage, { kind: 'events' }> };
    expect(first.msg.events.map((e) => e.type)).toEqual(['delete', 'delete', 'delete']);
    expect(first.msg.events.map((e) => e.kv.key).sort()).toEqual(['/cluster/alive/0', '/cluster/alive/1', '/cluster/alive/2']);
    const tookMs = first.at - killedAt;
    expect(tookMs).toBeLessThanOrEqual(TTL + TTL / 3);
    expect(tookMs).toBeGreaterThan(TTL / 3); // the last keepalive was at most ttl/3 before the kill
    expect((await refusal(vol.put('/cluster/alive/late', 'x', { session }))).code).toBe('session-not-found');
    expect((await vol.get('/cluster/alive/late')).kv).toBeUndefined();
  }, 30_000);
});

describe('a session across a server restart', () => {
  it('keeps its keys: the library reconnects and its keepalives resume', async () => {
    const s = await vol.openSession({ ttlMs: 3_000 });
    await vol.put('/restart/k', 'v', { session: s });
    const port = serverPort(net.master);
    await net.master.close();
    await new Promise((r) => setTimeout(r, 500));
    net.master = await startMaster({ dir, fsync: false, leaseMs: 10, listen: `127.0.0.1:${port}` });
    await new Promise((r) => setTimeout(r, 4_000)); // past the ttl, counted from the restart
    expect(s.isLost).toBe(false);
    expect((await vol.get('/restart/k')).kv?.session).toBe(s.id);
    await s.close();
    expect((await vol.get('/restart/k')).kv).toBeUndefined();
  }, 30_000);
});
