// `coordvol kv watch` as a child process against a master served on loopback: JSON lines with
// --json and --count, history then live, the human format, and a typed error for bad input.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FopVolume } from '../../src/client/volume.js';
import { startMaster, type Master } from '../../src/daemon/master.js';
import { serverPort } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

let dir: string;
let master: Master;
let vol: FopVolume;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-watch-cli-'));
  master = await startMaster({ dir, fsync: false, leaseMs: 10, listen: '127.0.0.1:0' });
  const top = master.top;
  vol = new FopVolume((f, c, a) => top.call(f, c, a), async () => undefined);
  env = { COORDVOL_SERVER: `127.0.0.1:${serverPort(master)}`, COORDVOL_SECRET_FILE: join(dir, 'secret') };
}, 30_000);

afterAll(async () => {
  await master?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI without blocking this process (the master it talks to runs here). */
function cli(args: readonly string[], signalOnOutput?: NodeJS.Signals): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`coordvol ${args.join(' ')} did not exit: ${out} ${err}`))), 30_000);
    let signalled = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // Once: a second Ctrl-C, with the first still being handled, kills outright (as in a shell).
      if (signalOnOutput && !signalled) {
        signalled = true;
        child.kill(signalOnOutput);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, out, err });
    });
  });
}

describe('coordvol kv watch', () => {
  it('--json --count N prints N events as JSON lines, history then live, and exits 0', async () => {
    const a = await vol.put('/w/a', 'one');
    await vol.put('/elsewhere', 'x');
    const b = await vol.put('/w/b', 'two', {});
    const done = cli(['kv', 'watch', '/w/', '--from-rev', String(a.rev), '--prev-kv', '--count', '4', '--json']);
    await new Promise((r) => setTimeout(r, 300));
    const c = await vol.put('/w/a', 'three');
    const d = await vol.delete('/w/b');
    const r = await done;
    expect(r.status, r.err).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(4);
    expect(lines.map((l) => [l['rev'], l['type'], (l['kv'] as { key: string }).key])).toEqual([
      [a.rev, 'put', '/w/a'], [b.rev, 'put', '/w/b'], [c.rev, 'put', '/w/a'], [d.rev, 'delete', '/w/b'],
    ]);
    expect(lines[2]).toMatchObject({ kv: { value: 'three', modRev: c.rev, version: 2 }, prevKv: { value: 'one', modRev: a.rev } });
    expect(lines[3]).toMatchObject({ kv: { key: '/w/b', modRev: d.rev }, prevKv: { value: 'two' } });
  }, 40_000);

  it('prints REV  PUT|DELETE  KEY  VALUE lines; bad input is a one-line typed error', async () => {
    const p = await vol.put('/hw/k', 'hello world');
    const q = await vol.delete('/hw/k');
    const r = await cli(['kv', 'watch', '/hw/', '--from-rev', String(p.rev), '--count', '2']);
    expect(r.status, r.err).toBe(0);
    expect(r.out).toBe(`${p.rev}  PUT  /hw/k  hello world\n${q.rev}  DELETE  /hw/k\n`);
    // Ctrl-C ends a watch cleanly.
    const interrupted = await cli(['kv', 'watch', '/hw/', '--from-rev', String(p.rev)], 'SIGINT');
    expect(interrupted.status, interrupted.err).toBe(0);
    expect(interrupted.out.split('\n')[0]).toBe(`${p.rev}  PUT  /hw/k  hello world`);
    const bad = await cli(['kv', 'watch', '/hw/', '--from-rev', 'soon']);
    expect(bad.status).toBe(1);
    expect(bad.err).toMatch(/^coordvol: invalid-argument: --from-rev/);
    const compacted = await vol.compact(q.rev);
    const gone = await cli(['kv', 'watch', '/hw/', '--from-rev', '1', '--json']);
    expect(gone.status).toBe(1);
    expect(JSON.parse(gone.err)).toMatchObject({ error: { code: 'compacted' } });
    expect(compacted.compactRev).toBe(q.rev);
  }, 60_000);
});
