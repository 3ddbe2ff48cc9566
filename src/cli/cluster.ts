// `coordvol cluster up|down`: a local replicated volume for users and tests (issue 5): N master
// processes on loopback, each from its own hand-written volfile (DESIGN §8's static bootstrap),
// each also serving the HTTP API. `up` prints where they listen, their PIDs, the holder and the
// env line for the CLI; `down` stops them by PID.
import { spawn } from 'node:child_process';
import { pidAlive } from '../common/pid.js';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { connect } from '../client/index.js';
import { coordError } from '../common/errors.js';
import { replicatedVolfile } from '../daemon/volfiles.js';
import { loadSecretFile } from '../../translators/protocol/secret.js';
import { columns, fail } from './output.js';

const CLUSTER_FILE = 'cluster.json';
// The masters run this same CLI: the script being run, with the same Node flags (so a run from
// the TypeScript sources, under tsx, starts masters from them too).
const MAIN = process.argv[1] ?? fileURLToPath(new URL('./main.js', import.meta.url));

interface ClusterMaster {
  readonly name: string;
  readonly pid: number;
  readonly listen: string;
  readonly http: string;
  readonly dir: string;
}
interface ClusterFile {
  readonly masters: readonly ClusterMaster[];
  readonly secretFile: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readCluster(dir: string): ClusterFile | undefined {
  const f = join(dir, CLUSTER_FILE);
  if (!existsSync(f)) return undefined;
  return JSON.parse(readFileSync(f, 'utf8')) as ClusterFile;
}

/** Waits for a master's `start --json` summary line in its log; fails with the log's tail. */
async function waitReady(m: { name: string; pid: number; log: string }, deadlineMs: number): Promise<void> {
  for (;;) {
    const text = existsSync(m.log) ? readFileSync(m.log, 'utf8') : '';
    if (text.split('\n').some((l) => l.startsWith('{') && l.includes('"volumeId"'))) return;
    if (!pidAlive(m.pid)) throw coordError('unavailable', `${m.name} exited: ${text.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
    if (Date.now() > deadlineMs) throw coordError('timeout', `${m.name} did not start in time (log ${m.log})`);
    await sleep(100);
  }
}

async function stopAll(masters: readonly { pid: number }[], timeoutMs: number): Promise<void> {
  for (const m of masters) if (pidAlive(m.pid)) process.kill(m.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (masters.some((m) => pidAlive(m.pid)) && Date.now() < deadline) await sleep(100);
  for (const m of masters) if (pidAlive(m.pid)) process.kill(m.pid, 'SIGKILL');
}

/** Asks the masters who holds the lock, until one does or the deadline passes. */
async function findHolder(servers: readonly string[], secretFile: string, deadlineMs: number): Promise<string> {
  const vol = await connect({ servers: [...servers], secret: readFileSync(secretFile, 'utf8'), timeoutMs: 2_000, exactlyOnce: false });
  try {
    for (;;) {
      try {
        const s = await vol.status();
        if (s.volume?.holder) return s.volume.holder;
      } catch {
        // not up yet, or mid-election
      }
      if (Date.now() > deadlineMs) return '';
      await sleep(100);
    }
  } finally {
    await vol.close();
  }
}

interface UpOpts {
  masters: string;
  dir: string;
  basePort: string;
  leaseMs?: string;
  fsync: boolean;
}

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('a local replicated volume: N masters on loopback');
  cluster
    .command('up')
    .description('start N master processes on loopback, each with its brick, protocol and HTTP listeners')
    .option('--masters <n>', 'how many masters (1, 3 or 5)', '3')
    .option('--dir <dir>', 'where the masters keep their volfiles, bricks and logs', './coordvol-cluster')
    .option('--base-port <port>', 'master i listens on base + 2i (protocol) and base + 2i + 1 (HTTP)', '7430')
    .option('--lease-ms <ms>', 'the volume lock lease (default 500)')
    .option('--no-fsync', 'do not fsync commits (benchmarks only: voids durability)')
    .addHelpText('after', '\nExamples:\n  coordvol cluster up --masters 3\n  coordvol cluster up --dir /tmp/cv --base-port 9000 --json\n  coordvol cluster down')
    .action(async (o: UpOpts, cmd: Command) => {
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      try {
        const n = Number(o.masters);
        if (![1, 3, 5].includes(n)) throw coordError('invalid-argument', `--masters must be 1, 3 or 5, not ${o.masters}`);
        const base = Number(o.basePort);
        if (!Number.isInteger(base) || base < 1 || base + 2 * n > 65535) throw coordError('invalid-argument', `--base-port ${o.basePort} is not a usable port`);
        const leaseMs = o.leaseMs === undefined ? undefined : Number(o.leaseMs);
        if (leaseMs !== undefined && (!Number.isInteger(leaseMs) || leaseMs < 10)) throw coordError('invalid-argument', `--lease-ms ${o.leaseMs} must be an integer ≥ 10`);
        const dir = resolve(o.dir);
        const running = readCluster(dir);
        if (running?.masters.some((m) => pidAlive(m.pid))) throw coordError('invalid-argument', `a cluster is already up in ${dir}: run \`coordvol cluster down --dir ${o.dir}\` first`);
        mkdirSync(dir, { recursive: true });
        const secretFile = join(dir, 'secret');
        loadSecretFile(secretFile, true);
        const plan = Array.from({ length: n }, (_, i) => {
          const mdir = join(dir, `m${i}`);
          return { name: `m${i}`, dir: mdir, listen: `127.0.0.1:${base + 2 * i}`, http: `127.0.0.1:${base + 2 * i + 1}`, brick: `127.0.0.1:${join(mdir, 'brick')}` };
        });
        const started: { name: string; pid: number; log: string; listen: string; http: string; dir: string }[] = [];
        try {
          for (const [i, m] of plan.entries()) {
            mkdirSync(m.dir, { recursive: true });
            const volfile = join(m.dir, 'coordvol.vol');
            // An existing volfile is kept: `up` after `down` restarts the same volume.
            if (!existsSync(volfile)) {
              writeFileSync(volfile, replicatedVolfile({ volumeName: 'coordvol', masters: plan, self: i, brickDir: 'brick', secretFile, fsync: o.fsync, ...(leaseMs !== undefined ? { leaseMs } : {}) }));
            }
            const log = join(m.dir, 'master.log');
            const fd = openSync(log, 'w');
            const child = spawn(process.execPath, [...process.execArgv, MAIN, 'start', '--dir', m.dir, '--volfile', volfile, '--listen', m.listen, '--http', m.http, '--json'], {
              detached: true,
              stdio: ['ignore', fd, fd],
            });
            child.unref();
            if (child.pid === undefined) throw coordError('unavailable', `${m.name} could not be started`);
            started.push({ name: m.name, pid: child.pid, log, listen: m.listen, http: m.http, dir: m.dir });
          }
          const deadline = Date.now() + 30_000;
          for (const m of started) await waitReady(m, deadline);
        } catch (e) {
          await stopAll(started, 5_000);
          throw e;
        }
        const file: ClusterFile = { masters: started.map(({ name, pid, listen, http, dir: d }) => ({ name, pid, listen, http, dir: d })), secretFile };
        writeFileSync(join(dir, CLUSTER_FILE), JSON.stringify(file, null, 2));
        const servers = started.map((m) => m.listen);
        const holder = await findHolder(servers, secretFile, Date.now() + 15_000);
        const env = `export COORDVOL_SERVER=${servers.join(',')} COORDVOL_SECRET_FILE=${secretFile}`;
        if (json) {
          process.stdout.write(`${JSON.stringify({ dir, masters: file.masters, holder, secretFile, env })}\n`);
          return;
        }
        const rows = file.masters.map((m) => [m.name, m.listen, `http://${m.http}`, String(m.pid), m.listen === holder ? 'holder' : 'voter']);
        process.stdout.write(`coordvol cluster up: ${n} masters in ${dir}\n${columns(['MASTER', 'PROTOCOL', 'HTTP', 'PID', 'ROLE'], rows)}\n\nholder  ${holder || '(none elected yet)'}\n\nto use it from another shell:\n  ${env}\n`);
      } catch (e) {
        fail(e, json);
      }
    });
  cluster
    .command('down')
    .description('stop the masters `cluster up` started (SIGTERM, then SIGKILL after 10 s)')
    .option('--dir <dir>', 'the directory given to `cluster up`', './coordvol-cluster')
    .action(async (o: { dir: string }, cmd: Command) => {
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      try {
        const dir = resolve(o.dir);
        const c = readCluster(dir);
        if (!c) throw coordError('not-found', `no cluster in ${dir} (no ${CLUSTER_FILE})`);
        const wasUp = c.masters.filter((m) => pidAlive(m.pid)).map((m) => m.name);
        await stopAll(c.masters, 10_000);
        rmSync(join(dir, CLUSTER_FILE));
        if (json) process.stdout.write(`${JSON.stringify({ dir, stopped: wasUp })}\n`);
        else process.stdout.write(`coordvol cluster down: stopped ${wasUp.length ? wasUp.join(', ') : 'nothing (no master was running)'}\n`);
      } catch (e) {
        fail(e, json);
      }
    });
}
