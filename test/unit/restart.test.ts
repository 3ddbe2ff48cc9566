// The embedded volume and the master `coordvol start` runs keep their data across a restart,
// and a volfile that describes another volume is refused against an existing brick.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isCoordError, openVolume, text } from '../../src/client/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
const children = new Set<number>();

afterAll(async () => {
  for (const pid of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'coordvol-restart-'));
  dirs.push(d);
  return d;
}

interface StartSummary {
  volume: string;
  volumeId: string;
  epoch: number;
  rev: number;
  keys: number;
  volfile: string;
}

/** Runs `coordvol start --json` in a child, reads its summary, stops it with SIGTERM. */
async function startAndStop(dir: string): Promise<{ summary: StartSummary; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'start', '--dir', dir, '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child.pid as number);
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const summary = await new Promise<StartSummary>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no summary in 20 s; stderr: ${err}`)), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as StartSummary);
      }
    });
    child.on('exit', (code) => reject(new Error(`exited ${code} before its summary; stderr: ${err}`)));
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('did not stop within 10 s of SIGTERM')), 10_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
    child.kill('SIGTERM');
  });
  children.delete(child.pid as number);
  return { summary, code };
}

describe('restarts', () => {
  it('openVolume keeps keys, revs and history across close and reopen', async () => {
    const dir = await tempDir();
    const a = await openVolume({ dir, leaseMs: 10 });
    const p1 = await a.put('/cfg/mode', 'active');
    const p2 = await a.put('/cfg/mode', 'standby');
    await a.txn({ success: [{ op: 'put', key: '/cfg/x', value: text.encode('1') }, { op: 'put', key: '/cfg/y', value: text.encode('2') }] });
    const id = (await a.status()).volume?.volumeId;
    await a.close();

    const b = await openVolume({ dir, leaseMs: 10 });
    const now = await b.get('/cfg/mode');
    expect(text.decode(now.kv?.value ?? new Uint8Array())).toBe('standby');
    expect(now.kv).toMatchObject({ createRev: p1.rev, modRev: p2.rev, version: 2 });
    expect(text.decode((await b.get('/cfg/mode', { rev: p1.rev })).kv?.value ?? new Uint8Array())).toBe('active');
    expect((await b.range({ prefix: '/cfg/' })).count).toBe(3);
    expect((await b.status()).volume?.volumeId).toBe(id);
    // The new holder's epoch-start entry comes after everything written before.
    expect((await b.put('/cfg/z', '3')).rev).toBeGreaterThan(p2.rev + 1);
    await b.close();
  });

  it('the master `coordvol start` runs keeps its data across a restart', async () => {
    const dir = await tempDir();
    const first = await startAndStop(dir);
    expect(first.code).toBe(0);
    expect(first.summary).toMatchObject({ volume: 'coordvol', keys: 0 });
    expect(await readFile(first.summary.volfile, 'utf8')).toContain('type storage/lmdb');

    const v = await openVolume({ dir });
    await v.put('/cluster/peers/1', 'peer one');
    await v.close();

    const second = await startAndStop(dir);
    expect(second.code).toBe(0);
    expect(second.summary.volumeId).toBe(first.summary.volumeId);
    expect(second.summary.keys).toBe(1);
    expect(second.summary.rev).toBeGreaterThan(first.summary.rev);
    expect(second.summary.epoch).toBeGreaterThan(first.summary.epoch);
  }, 60_000);

  it('a volfile whose brick list changed is refused against the existing brick, naming the field', async () => {
    const dir = await tempDir();
    const v = await openVolume({ dir, leaseMs: 10 });
    await v.put('/a', '1');
    await v.close();
    const volfile = join(dir, 'coordvol.vol');
    const original = await readFile(volfile, 'utf8');
    await writeFile(volfile, original.replace('option volume-name coordvol', 'option volume-name other'));
    const err = await openVolume({ dir, leaseMs: 10 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCoordError(err) && err.code).toBe('store-invalid');
    expect((err as Error).message).toMatch(/volume name "coordvol" ≠ "other"/);
    await writeFile(volfile, original);
    const again = await openVolume({ dir, leaseMs: 10 });
    expect(text.decode((await again.get('/a')).kv?.value ?? new Uint8Array())).toBe('1');
    await again.close();
  });
});
