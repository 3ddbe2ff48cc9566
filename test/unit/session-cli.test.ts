// The session surfaces of the CLI as a user runs them, as child processes against a master on
// loopback: `kv put --ephemeral` (SIGTERM removes the key at once, SIGKILL within ttl + ttl/3,
// a lost session exits 1), `kv put --sequential`, `session ls`, and `lock NAME -- COMMAND`
// (its environment, exit status, release, a lost lock killing the command, a waiter giving up).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lock, type RemoteVolume } from '../../src/client/index.js';
import { asSessionId } from '../../src/common/ids.js';
import { keySessions, startNetMaster, type NetMaster } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'src/cli/main.ts');
const TTL = 2_000;

let net: NetMaster;
let dir: string;
let server: string;
let vol: RemoteVolume;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  net = await startNetMaster('coordvol-session-cli-');
  ({ dir, server, vol } = net);
});

afterAll(() => net?.close());

interface Running {
  readonly proc: ChildProcess;
  out: string;
  err: string;
  readonly done: Promise<{ status: number | null; signal: NodeJS.Signals | null; out: string; err: string }>;
  /** The first line of stdout, parsed as JSON. */
  firstLine(): Promise<Record<string, unknown>>;
}

/** Starts the CLI against the master (never spawnSync: the master runs in this process). */
function start(args: readonly string[]): Running {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, COORDVOL_SERVER: server, COORDVOL_SECRET_FILE: join(dir, 'secret') },
  });
  net.children.push(proc);
  const r: Running = {
    proc,
    out: '',
    err: '',
    done: new Promise((res) => proc.on('exit', (status, signal) => res({ status, signal, out: r.out, err: r.err }))),
    firstLine: () =>
      new Promise((res, rej) => {
        const check = (): boolean => {
          const nl = r.out.indexOf('\n');
          if (nl < 0) return false;
          res(JSON.parse(r.out.slice(0, nl)) as Record<string, unknown>);
          return true;
        };
        if (check()) return;
        proc.stdout?.on('data', check);
        void r.done.then(() => check() || rej(new Error(`exited before a line: ${r.err}`)));
      }),
  };
  proc.stdout?.on('data', (d: Buffer) => (r.out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (r.err += d.toString()));
  return r;
}

const cli = (args: readonly string[]): Running['done'] => start(args).done;

describe('kv put --ephemeral', () => {
  it('holds the key while running, lists its session, and removes the key at once on SIGTERM', async () => {
    const p = start(['kv', 'put', '--ephemeral', '--ttl', String(TTL), '/alive/term', 'up', '--json']);
    const line = await p.firstLine();
    expect(line).toEqual({ rev: expect.any(Number), key: '/alive/term', session: expect.any(Number), ttlMs: TTL });
    const kv = (await vol.get('/alive/term')).kv;
    expect(kv?.session).toBe(line['session']);
    expect(Buffer.from(kv?.value ?? []).toString()).toBe('up');

    const [ls, human] = await Promise.all([cli(['session', 'ls', '--json']), cli(['session', 'ls'])]);
    expect(ls.status, ls.err).toBe(0);
    const listed = (JSON.parse(ls.out) as { sessions: Record<string, unknown>[] }).sessions.find((s) => s['id'] === line['session']);
    expect(listed).toMatchObject({ ttlMs: TTL, keys: 1, state: 'active', owner: expect.stringMatching(/^coordvol kv put .+:\d+$/) });
    expect(human.status, human.err).toBe(0);
    expect(human.out.split('\n')[0]).toMatch(/^ID\s+KIND\s+TTL\s+REMAINING\s+STATE\s+KEYS\s+OWNER$/);
    expect(human.out).toMatch(new RegExp(`^\\s*${line['session']}\\s+keys\\s+2s\\s+[\\d.]+s\\s+active\\s+1\\s+coordvol kv put`, 'm'));

    p.proc.kill('SIGTERM');
    const end = await p.done;
    expect(end.status, end.err).toBe(0);
    // At once: the session was closed before the process exited.
    expect((await vol.get('/alive/term')).kv).toBeUndefined();
    expect((await vol.sessions()).sessions.map((s) => s.id)).not.toContain(line['session']);
    expect(JSON.parse(end.out.trim().split('\n').at(-1) ?? '')).toEqual({ closed: true, session: line['session'], signal: 'SIGTERM' });
  }, 30_000);

  it('lets the session expire when SIGKILLed: the key goes within ttl + ttl/3', async () => {
    const p = start(['kv', 'put', '--ephemeral', '--ttl', String(TTL), '/alive/kill', 'up', '--json']);
    const line = await p.firstLine();
    const watcher = vol.watch('/alive/kill', { fromRev: (line['rev'] as number) + 1 });
    const killedAt = performance.now();
    p.proc.kill('SIGKILL');
    let goneAt = 0;
    for await (const m of watcher) {
      if (m.kind === 'events' && m.events.some((e) => e.type === 'delete')) {
        goneAt = performance.now();
        break;
      }
    }
    expect(goneAt - killedAt).toBeLessThanOrEqual(TTL + TTL / 3);
    expect((await p.done).signal).toBe('SIGKILL');
  }, 30_000);

  it('prints a one-line reason and exits 1 when its session is lost', async () => {
    const p = start(['kv', 'put', '--ephemeral', '--ttl', String(TTL), '/alive/lost', 'up', '--json']);
    const line = await p.firstLine();
    // Another client ends the session, as an expiry would: the next keepalive hears of it.
    await net.master.top.call('sessionClose', {}, { id: asSessionId(line['session'] as number) });
    const end = await p.done;
    expect(end.status).toBe(1);
    const err = JSON.parse(end.err.trim()) as { error: { code: string; message: string } };
    expect(err.error.code).toBe('session-expired');
    expect(err.error.message).toContain('/alive/lost is gone');
    expect(end.err.trim().split('\n')).toHaveLength(1);
  }, 30_000);

  it('refuses a bad ttl, and --ttl without --ephemeral, writing nothing', async () => {
    const [low, stray] = await Promise.all([
      cli(['kv', 'put', '--ephemeral', '--ttl', '100', '/alive/bad', 'x']),
      cli(['kv', 'put', '--ttl', '3000', '/alive/bad', 'x']),
    ]);
    expect(low.status).toBe(1);
    expect(low.err).toMatch(/^coordvol: invalid-argument: ttlMs must be an integer in \[2000,/);
    expect(stray.status).toBe(1);
    expect(stray.err).toBe('coordvol: invalid-argument: --ttl goes with --ephemeral\n');
    expect((await vol.get('/alive/bad')).kv).toBeUndefined();
    expect(await keySessions(vol)).toHaveLength(0);
  }, 30_000);
});

describe('kv put --sequential', () => {
  it('prints the final key, with its 20-digit counter', async () => {
    const [human, json] = [await cli(['kv', 'put', '--sequential', '/queue/job-', 'a']), await cli(['kv', 'put', '--sequential', '/queue/job-', 'b', '--json'])];
    expect(human.status, human.err).toBe(0);
    const first = /^OK (\/queue\/job-(\d{20})) at rev (\d+)\n$/.exec(human.out);
    expect(first, human.out).not.toBeNull();
    const second = JSON.parse(json.out) as { rev: number; key: string };
    expect(second.key).toMatch(/^\/queue\/job-\d{20}$/);
    expect(second.key > (first?.[1] as string)).toBe(true);
    expect((await vol.range('/queue/')).kvs.map((k) => [k.key, Buffer.from(k.value ?? []).toString()])).toEqual([
      [first?.[1], 'a'],
      [second.key, 'b'],
    ]);
  }, 30_000);
});

describe('lock NAME -- COMMAND', () => {
  it('runs the command with the token and key, releases the lock, and exits with its status', async () => {
    const first = await cli(['lock', 'cli', '--', 'sh', '-c', 'echo "$COORDVOL_LOCK_TOKEN $COORDVOL_LOCK_KEY"; exit 7']);
    expect(first.status, first.err).toBe(7);
    const [token, key] = first.out.trim().split(' ') as [string, string];
    expect(key).toMatch(/^\/_locks\/cli\/\d+-[0-9a-f]{8}$/);
    // The token is the lock key's createRev.
    expect((await vol.get(key, { rev: Number(token) })).kv?.createRev).toBe(Number(token));
    expect((await vol.range('/_locks/cli/')).count).toBe(0);

    const second = await cli(['lock', 'cli', '--json', '--', 'sh', '-c', 'kill -TERM $$']);
    expect(second.status, second.err).toBe(128 + 15);
    const r = JSON.parse(second.out) as { name: string; key: string; fencingToken: number; status: number };
    expect(r).toEqual({ name: 'cli', key: expect.stringMatching(/^\/_locks\/cli\//), fencingToken: expect.any(Number), status: 143 });
    expect(r.fencingToken).toBeGreaterThan(Number(token));

    const missing = await cli(['lock', 'cli', '--', 'no-such-command-coordvol']);
    expect(missing.status).toBe(1);
    expect(missing.err).toMatch(/^coordvol: invalid-argument: cannot run no-such-command-coordvol: ENOENT\n$/);
    const bad = await cli(['lock', 'a/b', '--', 'true']);
    expect(bad.status).toBe(1);
    expect(bad.err).toMatch(/^coordvol: invalid-argument: a lock name must not contain '\/'/);
    expect((await vol.range('/_locks/')).count).toBe(0);
    expect(await keySessions(vol)).toHaveLength(0);
  }, 40_000);

  it('waits for the holder, and gives up on SIGTERM leaving nothing behind', async () => {
    const held = await lock(vol, 'busy', { ttlMs: TTL });
    const p = start(['lock', 'busy', '--', 'true']);
    while ((await vol.range('/_locks/busy/')).count < 2) await sleep(50);
    p.proc.kill('SIGTERM');
    const end = await p.done;
    expect(end.status).toBe(1);
    expect(end.err).toBe('coordvol: closed: SIGTERM while waiting for lock busy\n');
    expect((await vol.range('/_locks/busy/')).kvs.map((k) => k.key)).toEqual([held.key]);
    await held.unlock();
  }, 30_000);

  it('kills the command and exits 1 with the reason when the lock is lost', async () => {
    const marker = join(dir, 'terminated');
    const p = start(['lock', 'lost', '--', 'sh', '-c', `trap 'echo term > ${marker}; exit 0' TERM; while :; do sleep 0.05; done`]);
    while ((await vol.range('/_locks/lost/')).count < 1) await sleep(50);
    await sleep(300); // the command is running
    await vol.delete({ prefix: '/_locks/lost/' });
    const end = await p.done;
    expect(end.status).toBe(1);
    expect(end.err).toMatch(/^coordvol: not-found: lock lost lost while the command ran \(sent it SIGTERM\): \/_locks\/lost\/\S+ was deleted at rev \d+/);
    expect(end.err.trim().split('\n')).toHaveLength(1);
    expect((await readFile(marker, 'utf8')).trim()).toBe('term');
    expect(await keySessions(vol)).toHaveLength(0); // its own session closed
  }, 30_000);
});
