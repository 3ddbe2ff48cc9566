// Process plumbing shared by the system drivers: installing Debian packages, free loopback ports,
// starting servers in their own process group with their output in a log file, stopping them by
// PID, bounded waits, and a registry that kills every server and removes every temp dir if the
// run dies (error, SIGINT, SIGTERM, exit). Nothing here waits without a timeout.
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { pidAlive } from '../../../src/common/pid.js';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, delimiter } from 'node:path';

export type Progress = (line: string) => void;

// ---- bounded waits -------------------------------------------------------------------------

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves or rejects like `p`, or rejects with `what` after `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every `everyMs` until it returns true; throws with the last error after `ms`. */
export async function waitUntil(what: string, ms: number, check: () => Promise<boolean>, everyMs = 200): Promise<void> {
  const deadline = performance.now() + ms;
  let last = '';
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last: ${last})` : ''}`);
    try {
      if (await withTimeout(check(), Math.max(1, Math.min(left, 5_000)), what)) return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await sleep(everyMs);
  }
}

/** Runs a command to completion (bounded); resolves with stdout (and stderr if asked), rejects with stderr. */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; withStderr?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 2 ** 20, env: opts.env ?? process.env, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message.split('\n')[0]}${stderr ? `\n${stderr.trim()}` : ''}`));
        else resolve(opts.withStderr ? stdout + stderr : stdout);
      },
    );
  });
}

// ---- installing ----------------------------------------------------------------------------

export function onPath(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

let aptUpdated = false;

/** `apt-get install -y pkgs` (after one `apt-get update` per invocation), echoing progress lines. */
export async function aptInstall(pkgs: readonly string[], progress: Progress): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error(`installing ${pkgs.join(' ')} needs root: run \`apt-get install -y ${pkgs.join(' ')}\` first`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const step = async (args: string[], timeoutMs: number): Promise<void> => {
    progress(`$ apt-get ${args.join(' ')}`);
    await new Promise<void>((resolve, reject) => {
      const child = spawn('apt-get', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      let tail = '';
      const onData = (b: Buffer): void => {
        for (const line of b.toString('utf8').split('\n')) {
          if (!line.trim()) continue;
          tail = (tail + '\n' + line).slice(-2000);
          if (/^(Get:|Setting up|Unpacking|Hit:|Fetched|E:|W:)/.test(line)) progress(`  ${line.slice(0, 120)}`);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`apt-get ${args.join(' ')} failed (${sig ?? `exit ${code}`}):${tail}`));
      });
    });
  };
  if (!aptUpdated) {
    await step(['update'], 5 * 60_000);
    aptUpdated = true;
  }
  await step(['install', '-y', '--no-install-recommends', ...pkgs], 15 * 60_000);
}

/** The installed version of a Debian package, or undefined. */
export async function debVersion(pkg: string): Promise<string | undefined> {
  try {
    return (await run('dpkg-query', ['-W', '-f', '${Version}', pkg], { timeoutMs: 10_000 })).trim() || undefined;
  } catch {
    return undefined;
  }
}

// ---- ports and dirs ------------------------------------------------------------------------

const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that was free a moment ago and that this run has not handed out. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const a = srv.address();
        const p = typeof a === 'object' && a ? a.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port');
}

/**
 * A base port with `n` consecutive loopback ports free a moment ago, none handed out by this run,
 * below the kernel's ephemeral range (so outgoing connections of the run do not take them later).
 */
export async function freePortRange(n: number): Promise<number> {
  const low = ((): number => {
    try {
      const v = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
      return Number.isFinite(v) && v > 2_000 ? v : 32_768;
    } catch {
      return 32_768;
    }
  })();
  const lo = Math.min(15_000, low - 1_000);
  const canBind = (port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = lo + Math.floor(Math.random() * (low - n - lo));
    const ports = Array.from({ length: n }, (_, i) => base + i);
    if (ports.some((p) => handedOut.has(p))) continue;
    let ok = true;
    for (const p of ports) if (!(ok = await canBind(p))) break;
    if (!ok) continue;
    for (const p of ports) handedOut.add(p);
    return base;
  }
  throw new Error(`no ${n} consecutive free loopback ports below ${low}`);
}

const tempDirs = new Set<string>();

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `coordvol-bench-${prefix}-`));
  tempDirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

// ---- servers -------------------------------------------------------------------------------

export interface Server {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Set once the process has exited. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

const servers = new Set<Server>();

/** Starts a server as the leader of its own process group, stdout and stderr to `logFile`. */
export function startServer(name: string, cmd: string, args: readonly string[], o: { cwd: string; logFile: string; env?: NodeJS.ProcessEnv; stdout?: 'pipe' }): Server {
  const fd = openSync(o.logFile, 'a');
  try {
    const child = spawn(cmd, args, {
      cwd: o.cwd,
      env: o.env ?? process.env,
      detached: true,
      stdio: ['ignore', o.stdout === 'pipe' ? 'pipe' : fd, fd],
    });
    if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
    const s: Server = { name, pid: child.pid, child, logFile: o.logFile, exited: undefined };
    child.on('exit', (code, signal) => {
      s.exited = { code, signal };
    });
    child.on('error', () => {
      s.exited ??= { code: null, signal: null };
    });
    servers.add(s);
    return s;
  } finally {
    closeSync(fd);
  }
}

/** The last lines of a server's log, for error messages. */
export function logTail(s: Server, lines = 15): string {
  try {
    return readFileSync(s.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function assertRunning(s: Server): void {
  if (s.exited) throw new Error(`${s.name} (pid ${s.pid}) exited (${s.exited.signal ?? `code ${s.exited.code}`}); log ${s.logFile}:\n${logTail(s)}`);
}

/** SIGTERM by PID, SIGKILL after `graceMs`; resolves once it has exited (bounded). */
export async function stopServer(s: Server, graceMs = 5_000): Promise<void> {
  if (!s.exited) {
    const gone = new Promise<void>((r) => s.child.once('exit', () => r()));
    try {
      process.kill(s.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    try {
      await withTimeout(gone, graceMs, `${s.name} to exit on SIGTERM`);
    } catch {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await withTimeout(gone, 5_000, `${s.name} to exit on SIGKILL`).catch(() => undefined);
    }
  }
  servers.delete(s);
}

// ---- servers started by another program (coordvol cluster up) ------------------------------

/** PIDs of servers this run had another program start (not its children): killed like the others if the run dies. */
const adopted = new Set<number>();

export function adoptPids(pids: readonly number[]): void {
  for (const p of pids) if (Number.isInteger(p) && p > 1) adopted.add(p);
}

export { pidAlive };

export function releasePids(pids: readonly number[]): void {
  for (const p of pids) adopted.delete(p);
}


/**
 * PIDs of the live processes whose command line contains `needle` as one argument or part of one
 * (a run's own temp dir: nothing else names it), from /proc, this process excluded.
 */
export function pidsWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a.includes(needle)) && pidAlive(Number(e))) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** SIGKILL by PID, ignoring a process already gone. */
export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

// ---- last-resort cleanup -------------------------------------------------------------------

/** Kills every server still registered (SIGKILL, by PID) and removes every temp dir. Synchronous. */
export function killEverything(): void {
  for (const s of servers) {
    if (!s.exited) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  servers.clear();
  for (const p of adopted) if (pidAlive(p)) killPid(p);
  adopted.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

let installed = false;

/** On SIGINT/SIGTERM run `graceful` (bounded), then kill what is left and exit; on exit kill what is left. */
export function installCleanup(graceful: () => Promise<void>): void {
  if (installed) return;
  installed = true;
  process.on('exit', killEverything);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping servers…\n`);
      withTimeout(graceful(), 15_000, 'graceful stop')
        .catch((e: unknown) => process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`))
        .finally(() => {
          killEverything();
          process.exit(130);
        });
    });
  }
}

// ---- CPU accounting ------------------------------------------------------------------------

/** Linux's USER_HZ (the unit of /proc/PID/stat times): 100 on every common kernel, but ask. */
const clockTicks = ((): number => {
  try {
    const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim());
    return Number.isFinite(v) && v > 0 ? v : 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process (all its threads) in seconds, or undefined if it is gone. */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return (utime + stime) / clockTicks;
  } catch {
    return undefined;
  }
}

/** The PIDs of `pids` and all their descendants, from /proc. */
export function withDescendants(pids: readonly number[]): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(e), Number(rest[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const out = new Set(pids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!out.has(pid) && out.has(ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out];
}

/** Busy and total jiffies of the whole machine (all cores), and the number of cores, from /proc/stat. */
export function machineCpu(): { busy: number; total: number; cores: number } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const f = (lines[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total, cores: Math.max(1, lines.filter((l) => /^cpu\d+ /.test(l)).length) };
}

/** Resident memory of a process in bytes (VmRSS of /proc/PID/status), or undefined if it is gone. */
export function procRssBytes(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Resident memory of `pids` and their descendants, summed, in bytes (NaN when there are none). */
export function serverRssBytes(pids: readonly number[]): number {
  if (pids.length === 0) return NaN;
  return withDescendants(pids).reduce((sum, pid) => sum + (procRssBytes(pid) ?? 0), 0);
}
