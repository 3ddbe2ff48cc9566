// The CLI as a user runs it: `coordvol start` in a child process on loopback (ports chosen by
// the OS), then `coordvol kv|status|statedump|profile` as child processes with --json, parsed and
// checked, and the HTTP API the same master serves.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

interface Summary {
  volumeId: string;
  listen: string;
  http: string;
  secretFile: string;
}

let dir: string;
let master: ChildProcess | undefined;
let summary: Summary;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-cli-'));
  master = spawn(process.execPath, ['--import', 'tsx', MAIN, 'start', '--dir', dir, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--no-fsync', '--json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  master.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  summary = await new Promise<Summary>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`master not ready in 20 s: ${err}`)), 20_000);
    master?.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(JSON.parse(out.split('\n')[0] as string) as Summary);
      }
    });
    master?.on('exit', (code) => reject(new Error(`master exited ${code}: ${err}`)));
  });
}, 30_000);

afterAll(async () => {
  if (master && master.exitCode === null) {
    const exited = new Promise((r) => master?.on('exit', r));
    master.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (master.exitCode === null) master.kill('SIGKILL');
  }
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI against the master; returns exit status, stdout and stderr. */
function cli(args: readonly string[], input?: string, extraEnv: Record<string, string> = {}): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    input: input ?? '',
    env: { ...process.env, COORDVOL_SERVER: summary.listen, COORDVOL_SECRET_FILE: summary.secretFile, ...extraEnv },
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function json(args: readonly string[], input?: string): Record<string, unknown> {
  const r = cli([...args, '--json'], input);
  expect(r.status, r.err).toBe(0);
  return JSON.parse(r.out) as Record<string, unknown>;
}

describe('coordvol CLI against a started master', () => {
  it('start reports where it serves, and its secret file', () => {
    expect(summary.listen).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(summary.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(summary.secretFile).toBe(join(dir, 'secret'));
  });

  it('kv put, get (table and --json), ls, del', () => {
    const put = json(['kv', 'put', '/a', '1']);
    expect(put).toMatchObject({ key: '/a' });
    expect(typeof put['rev']).toBe('number');

    const got = json(['kv', 'get', '/a']);
    expect(got).toMatchObject({ rev: put['rev'], kv: { key: '/a', value: '1', valueBase64: 'MQ==', version: 1, createRev: put['rev'], modRev: put['rev'] } });

    const human = cli(['kv', 'get', '/a']);
    expect(human.status).toBe(0);
    expect(human.out).toMatch(/^key\s+\/a$/m);
    expect(human.out).toMatch(/^value\s+1$/m);

    json(['kv', 'put', '/dir/x', 'X']);
    json(['kv', 'put', '/dir/y/z', 'Z']);
    const ls = json(['kv', 'ls', '/dir/']) as { count: number; kvs: { key: string }[] };
    expect(ls.count).toBe(2);
    expect(ls.kvs.map((k) => k.key)).toEqual(['/dir/x', '/dir/y/z']);
    expect(json(['kv', 'ls', '/dir', '--children'])).toMatchObject({ children: ['x', 'y'] });
    const table = cli(['kv', 'ls', '/dir/']);
    expect(table.out).toMatch(/^KEY\s+VALUE\s+MOD-REV\s+VERSION$/m);
    expect(table.out).toMatch(/2 keys at rev \d+/);

    expect(json(['kv', 'del', '/dir/', '--prefix'])).toMatchObject({ deleted: 2 });
    expect(json(['kv', 'ls', '/dir/'])).toMatchObject({ count: 0 });
  }, 60_000);

  it('kv put reads the value from stdin with -, and get --raw prints the bytes', () => {
    json(['kv', 'put', '/blob', '-'], 'line one\nline two\n');
    const raw = cli(['kv', 'get', '/blob', '--raw']);
    expect(raw.status).toBe(0);
    expect(raw.out).toBe('line one\nline two\n');
  }, 30_000);

  it('kv txn from stdin, both branches', () => {
    const spec = (expectExists: boolean): string =>
      JSON.stringify({
        compare: [{ key: '/leader', target: 'exists', op: '=', value: expectExists }],
        success: [{ op: 'put', key: '/leader', value: 'node-1' }],
        failure: [{ op: 'get', key: '/leader' }],
      });
    const first = json(['kv', 'txn', '-'], spec(false));
    expect(first).toMatchObject({ succeeded: true, results: [{ op: 'put', key: '/leader' }] });
    const second = json(['kv', 'txn', '-'], spec(false));
    expect(second).toMatchObject({ succeeded: false, results: [{ op: 'get', kv: { key: '/leader', value: 'node-1' } }] });
    const human = cli(['kv', 'txn', '-'], spec(false));
    expect(human.out).toMatch(/^FAILED/);
  }, 30_000);

  it('status, statedump and profile', () => {
    const status = json(['status']) as { volume: { volumeId: string; bricks: unknown[] } };
    expect(status.volume.volumeId).toBe(summary.volumeId);
    expect(status.volume.bricks).toHaveLength(1);
    expect(cli(['status']).out).toMatch(/^BRICK\s+ROLE\s+PATH/m);
    const dump = json(['statedump']) as unknown as { type: string }[];
    expect(dump.map((d) => d.type)).toContain('protocol/server');
    expect(dump.map((d) => d.type)).toContain('storage/lmdb');
    const profile = json(['profile']) as unknown as { name: string; fops: Record<string, { count: number }> }[];
    expect(profile.find((p) => p.name === 'coordvol')?.fops['put']?.count).toBeGreaterThan(0);
    expect(cli(['profile']).out).toMatch(/^TRANSLATOR\s+FOP\s+COUNT\s+ERRORS/m);
  }, 30_000);

  it('errors: one line, typed, non-zero exit', () => {
    const missing = cli(['kv', 'get', '/nope']);
    expect(missing.status).toBe(1);
    expect(missing.err).toMatch(/^coordvol: not-found: key \/nope does not exist/);
    const missingJson = cli(['kv', 'get', '/nope', '--json']);
    expect(JSON.parse(missingJson.err)).toMatchObject({ error: { code: 'not-found' } });
    const reserved = cli(['kv', 'put', '/_coordvol/x', '1']);
    expect(reserved.status).toBe(1);
    expect(reserved.err).toMatch(/^coordvol: reserved-key: /);
    expect(reserved.err.trim().split('\n')).toHaveLength(1);
    // A single-brick volume: its only voter cannot go, and a quorum-count of 2 has too few voters.
    const last = cli(['volume', 'reconfigure', 'quorum-count', '2']);
    expect(last.status).toBe(1);
    expect(last.err).toMatch(/^coordvol: invalid-argument: quorum-count 2 must be an integer from a majority \(1\) to the number of voters \(1\)/);
    const unknown = cli(['volume', 'reconfigure', 'grow', 'x']);
    expect(unknown.err).toMatch(/^coordvol: invalid-argument: the change is one of add-learner, promote, remove, quorum-count/);
  }, 30_000);

  it('a wrong secret is refused with auth-failed; no server gives unavailable', async () => {
    const bad = join(dir, 'wrong-secret');
    await writeFile(bad, 'not the secret\n');
    const wrong = cli(['kv', 'get', '/a'], undefined, { COORDVOL_SECRET_FILE: bad });
    expect(wrong.status).toBe(1);
    expect(wrong.err).toMatch(/^coordvol: auth-failed: /);
    const none = cli(['kv', 'get', '/a', '--timeout', '1500'], undefined, { COORDVOL_SERVER: '127.0.0.1:1' });
    expect(none.status).toBe(1);
    expect(none.err).toMatch(/^coordvol: (unavailable|timeout): /);
  }, 30_000);

  it('the HTTP API of the same master serves the same keys', async () => {
    json(['kv', 'put', '/http', 'via cli']);
    const res = await fetch(`${summary.http}/v1/kv/http`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ kv: { key: '/http', value: 'via cli' } });
    const metrics = await (await fetch(`${summary.http}/metrics`)).text();
    expect(metrics).toMatch(/^coordvol_connections\{listener="[^"]+"\} \d+$/m);
  }, 30_000);
});
