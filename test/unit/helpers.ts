// Shared test helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type RemoteVolume, type Watcher, type WatchEvent } from '../../src/client/index.js';
import type { SessionInfo } from '../../translators/fops.js';
import { isCoordError } from '../../src/common/errors.js';
import { startMaster, type Master } from '../../src/daemon/master.js';
import { ProtocolServerTranslator } from '../../translators/protocol/server.js';

/** The typed error a promise is refused with; fails the test if it resolves or throws anything else. */
export async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isCoordError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal, got success');
}

/** The port a master's protocol/server listens on. */
/** The volume's sessions that own keys by request: client libraries' own sessions (exactly-once) left out. */
export async function keySessions(vol: RemoteVolume): Promise<readonly SessionInfo[]> {
  return (await vol.sessions()).sessions.filter((s) => !s.client);
}

export function serverPort(m: Master): number {
  const srv = m.graph.translators.find((t) => t instanceof ProtocolServerTranslator);
  if (!(srv instanceof ProtocolServerTranslator)) throw new Error('no protocol/server in the master graph');
  return srv.address.port;
}

/**
 * A master listening on loopback (fsync off, 10 ms lease) in a temp dir, a connect() client of
 * it, and the child processes a test starts against it: close() kills those, then stops both.
 * `master` may be replaced by a test that restarts it.
 */
export interface NetMaster {
  readonly dir: string;
  master: Master;
  /** host:port of the master's protocol/server. */
  readonly server: string;
  readonly vol: RemoteVolume;
  readonly children: ChildProcess[];
  close(): Promise<void>;
}

export async function startNetMaster(tmpPrefix: string): Promise<NetMaster> {
  const dir = await mkdtemp(join(tmpdir(), tmpPrefix));
  const master = await startMaster({ dir, fsync: false, leaseMs: 10, listen: '127.0.0.1:0' });
  const server = `127.0.0.1:${serverPort(master)}`;
  const vol = await connect({ servers: [server], secret: readFileSync(join(dir, 'secret'), 'utf8').trim() });
  const net: NetMaster = {
    dir,
    master,
    server,
    vol,
    children: [],
    async close() {
      for (const c of net.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await net.vol.close();
      await net.master.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return net;
}

/** What a watch delivered so far: one line per event, the revs of its event messages, its error. */
export interface Consumed {
  readonly lines: string[];
  readonly revs: number[];
  error: unknown;
}

/** Consumes a watcher in the background into `line(rev, event)` lines; ending the volume ends it. */
export function consumeWatch(w: Watcher, line: (rev: number, e: WatchEvent) => string): Consumed {
  const out: Consumed = { lines: [], revs: [], error: undefined };
  void (async () => {
    for await (const m of w) {
      if (m.kind !== 'events') continue;
      out.revs.push(m.rev);
      for (const e of m.events) out.lines.push(line(m.rev, e));
    }
  })().catch((e: unknown) => (out.error = e));
  return out;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'src/cli/main.ts');

/**
 * Runs the CLI against a NetMaster (spawned, never spawnSync: the master runs in this process),
 * its child registered for the master's close() to kill.
 */
export function cliAgainst(net: NetMaster, args: readonly string[]): Promise<{ status: number | null; out: string; err: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, COORDVOL_SERVER: net.server, COORDVOL_SECRET_FILE: join(net.dir, 'secret') },
  });
  net.children.push(proc);
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((ok) => proc.on('exit', (status) => ok({ status, out, err })));
}

/** Resolves with a child's first line of stdout as JSON; rejects if it exits or stays silent for `timeoutMs`. */
export function firstJsonLine<T>(child: ChildProcess, what: string, timeoutMs: number): Promise<T> {
  return new Promise((ok, fail) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`${what} did not start: ${err}`)), timeoutMs);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      ok(JSON.parse(out.slice(0, nl)) as T);
    });
    child.on('exit', (code) => fail(new Error(`${what} exited ${code}: ${err}`)));
  });
}
