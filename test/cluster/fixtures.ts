// What the real-process cluster tests share: the CLI run from the sources, a 3-master volume of
// `coordvol cluster up` in a temp dir on random ports, and process checks by PID.
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface UpMaster {
  readonly name: string;
  pid: number;
  readonly listen: string;
  readonly http: string;
  readonly dir: string;
}
export interface Up {
  readonly dir: string;
  readonly masters: UpMaster[];
  readonly holder: string;
  readonly secretFile: string;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { pidAlive as alive } from '../../src/common/pid.js';

/** Runs the CLI (from the TypeScript sources) to completion. */
export function cli(args: readonly string[], env: Readonly<Record<string, string>> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * `coordvol cluster up --masters 3 --no-fsync` in a new temp dir on a random base port in port
 * region 0 (20000–26005) or 1 (26006–32767): test files run in parallel, each in its own region,
 * and both lie below Linux's ephemeral range (32768–60999), where the tests' own client sockets
 * and the in-process volumes' free ports could take a master's port first.
 */
export async function clusterUp(prefix: string, leaseMs: number, region: 0 | 1 = 0): Promise<Up> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const base = (region === 0 ? 20_000 : 26_006) + Math.floor(Math.random() * 3_000) * 2;
  const r = cli(['cluster', 'up', '--masters', '3', '--dir', dir, '--base-port', String(base), '--lease-ms', String(leaseMs), '--no-fsync', '--json']);
  if (r.status !== 0) throw new Error(`cluster up failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Up;
}
