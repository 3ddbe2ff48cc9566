// coordvol, two ways:
//  - `coordvol`: a master as a child process (`node dist/src/cli/main.js start --dir DIR --listen
//    127.0.0.1:PORT --no-http --json`, fsync on), reached over the network with the client
//    library's connect({ servers, secret }). Puts are put; gets are get with consistency
//    'serializable' or the default (linearizable).
//    With --members 3: three masters started by `coordvol cluster up --masters 3 --lease-ms 500
//    --json` (fsync on, data in a temp dir, six consecutive free ports), each client given all
//    three addresses (rotated per client, so several connections spread over the masters);
//    stopped by `coordvol cluster down`, then SIGKILL by PID of anything left.
//  - `coordvol-embedded`: openVolume() in this process, for reference (no network; the server's
//    CPU is counted as the load generator's).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EmbeddedVolume, Volume } from '../../../src/client/index.js';
import {
  adoptPids, assertRunning, freePort, freePortRange, killPid, logTail, pidAlive, pidsWithArg, releasePids, removeDir, run, sleep, startServer, stopServer,
  tempDir, waitUntil, withTimeout, type Server,
} from './proc.js';
import type { Endpoint } from './coord.js';
import {
  forEachLimited, preloadWith, Unavailable, type DriverOptions, type FailoverClient, type FailoverClientOptions, type KvClient, type Leader, type ReadMode,
  type SystemDriver,
} from './types.js';

export type Connect = (o: { servers: string[]; secret: string | Uint8Array; timeoutMs?: number; exactlyOnce?: boolean }) => Promise<Volume>;

/** The client library's connect(), or a clear error while the network client does not exist yet. */
export async function loadConnect(): Promise<Connect> {
  const lib = (await import('../../../src/client/index.js')) as unknown as Record<string, unknown>;
  const connect = lib['connect'];
  if (typeof connect !== 'function') {
    throw new Unavailable('coordvol over the network is not available: src/client/index.ts does not export connect() yet (use --systems coordvol-embedded for the in-process volume)');
  }
  return connect as Connect;
}

function volumeClient(v: Volume, close: () => Promise<void>): KvClient {
  return {
    put: async (key, value) => {
      await v.put(key, value);
    },
    get: async (key: string, mode: ReadMode) => {
      await (mode === 'serializable' ? v.get(key, { consistency: 'serializable' }) : v.get(key));
    },
    close,
  };
}

function cliPath(): string {
  const candidates = [fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url)), join(process.cwd(), 'dist', 'src', 'cli', 'main.js')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`coordvol CLI not built (looked for ${candidates.join(', ')}): run \`npm run build\``);
  return found;
}

interface Ready {
  readonly listen: string;
  readonly secretFile: string;
}

/** A master of `coordvol cluster up --json`'s summary line. */
interface ClusterMaster {
  readonly name: string;
  readonly pid: number;
  readonly listen: string;
}

/** The volume lock's lease `cluster up` is given (its default too, stated so the report is true either way). */
export const CLUSTER_LEASE_MS = 500;

export class CoordvolDriver implements SystemDriver {
  readonly name: string;
  private dir: string | undefined;
  private server: Server | undefined;
  private ready: Ready | undefined;
  private connect: Connect | undefined;
  private readonly clients = new Set<Volume>();
  /** --members 3: the masters `cluster up` started, and its directory. */
  private masters: ClusterMaster[] = [];
  private clusterDir: string | undefined;
  private nextRotation = 0;

  /**
   * @param exactlyOnce the library's default (DESIGN §3: writes carry origins, a client session
   *   per connection); false for `coordvol-at-most-once`, writes as etcd's and ZooKeeper's
   *   clients make them (one in flight at a break fails indeterminate).
   */
  constructor(
    private readonly o: DriverOptions,
    private readonly exactlyOnce = true,
  ) {
    this.name = exactlyOnce ? 'coordvol' : 'coordvol-at-most-once';
  }

  /** Every master's listen address (the one master's with --members 1). */
  private servers(): string[] {
    if (this.masters.length > 0) return this.masters.map((m) => m.listen);
    return this.ready ? [this.ready.listen] : [];
  }

  /** The servers rotated by one more place per call, so connections spread over the masters. */
  private rotated(): string[] {
    const s = this.servers();
    const k = this.nextRotation++ % Math.max(1, s.length);
    return [...s.slice(k), ...s.slice(0, k)];
  }

  async start(): Promise<void> {
    if (this.o.members !== 1 && this.o.members !== 3) throw new Unavailable(`coordvol runs here with 1 master or 3 (\`coordvol cluster up --masters 3\`), not ${this.o.members}`);
    this.connect = await loadConnect();
    if (this.o.members === 3) return this.startCluster();
    const main = cliPath();
    this.dir = tempDir('coordvol');
    const port = await freePort();
    const args = [main, 'start', '--dir', join(this.dir, 'data'), '--listen', `127.0.0.1:${port}`, '--no-http', '--json'];
    const logFile = join(this.dir, 'master.log');
    const s = startServer('coordvol master', process.execPath, args, { cwd: this.dir, logFile, stdout: 'pipe' });
    this.server = s;
    this.o.progress(`coordvol: started a master, pid ${s.pid}, data in ${this.dir}`);
    let out = '';
    let ready: Ready | undefined;
    s.child.stdout?.setEncoding('utf8');
    s.child.stdout?.on('data', (d: string) => {
      if (ready) return appendFileSync(logFile, d);
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      try {
        const j = JSON.parse(out.slice(0, nl)) as Partial<Ready>;
        if (typeof j.listen === 'string' && j.listen && typeof j.secretFile === 'string' && j.secretFile) ready = { listen: j.listen, secretFile: j.secretFile };
        else appendFileSync(logFile, `bench: ready line lacks listen/secretFile: ${out.slice(0, nl)}\n`);
      } catch {
        appendFileSync(logFile, `bench: not a JSON line: ${out.slice(0, nl)}\n`);
      }
      appendFileSync(logFile, out);
      out = '';
    });
    try {
      await waitUntil('the coordvol master to print its ready line', 60_000, async () => {
        assertRunning(s);
        return ready !== undefined;
      }, 50);
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- ${logFile}\n${logTail(s)}`);
    }
    this.ready = ready;
  }

  /** --members 3: `coordvol cluster up --masters 3` in a temp dir, on six consecutive free ports. */
  private async startCluster(): Promise<void> {
    const main = cliPath();
    this.dir = tempDir('coordvol3');
    this.clusterDir = join(this.dir, 'cluster');
    const base = await freePortRange(6); // master i: base + 2i (protocol), base + 2i + 1 (HTTP)
    const args = [main, 'cluster', 'up', '--masters', '3', '--dir', this.clusterDir, '--base-port', String(base), '--lease-ms', String(CLUSTER_LEASE_MS), '--json'];
    let out: string;
    try {
      out = await run(process.execPath, args, { timeoutMs: 90_000 });
    } catch (e) {
      // `cluster up` stops what it started when it fails; if it was killed instead, its masters are left: find them by the temp dir.
      const left = pidsWithArg(this.clusterDir);
      for (const p of left) killPid(p);
      throw new Error(`coordvol cluster up failed: ${e instanceof Error ? e.message : String(e)}${left.length ? ` (killed ${left.length} master(s) it left)` : ''}\n${this.clusterLogs()}`);
    }
    const line = out.split('\n').find((l) => l.trim().startsWith('{'));
    let j: { masters?: { name?: unknown; pid?: unknown; listen?: unknown }[]; holder?: unknown; secretFile?: unknown };
    try {
      j = JSON.parse(line ?? '') as typeof j;
    } catch {
      for (const p of pidsWithArg(this.clusterDir)) killPid(p);
      throw new Error(`coordvol cluster up printed no JSON summary: ${out.slice(0, 500)}`);
    }
    this.masters = (j.masters ?? []).map((m) => ({ name: String(m.name), pid: Number(m.pid), listen: String(m.listen) }));
    adoptPids(this.masters.map((m) => m.pid));
    if (this.masters.length !== 3 || this.masters.some((m) => !(m.pid > 1) || !m.listen) || typeof j.secretFile !== 'string') {
      throw new Error(`coordvol cluster up: unexpected summary ${line ?? ''}`);
    }
    this.ready = { listen: this.masters[0]?.listen ?? '', secretFile: j.secretFile };
    this.o.progress(
      `coordvol: cluster up, 3 masters, pids ${this.masters.map((m) => m.pid).join(' ')}, holder ${typeof j.holder === 'string' && j.holder ? j.holder : '(none yet)'}, data in ${this.clusterDir}`,
    );
    // Serving means a holder that commits: wait for a put to go through (any master forwards it).
    const v = await this.open(this.servers(), 5_000);
    try {
      await waitUntil('the coordvol cluster to accept a write', 60_000, async () => {
        await v.put('/bench/ping', 'ping');
        return true;
      });
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${this.clusterLogs()}`);
    } finally {
      await withTimeout(v.close(), 10_000, 'coordvol client close').catch(() => undefined);
    }
  }

  /** The last lines of every master's log, for error messages. */
  private clusterLogs(): string {
    if (!this.clusterDir) return '';
    return [0, 1, 2]
      .map((i) => {
        const f = join(this.clusterDir as string, `m${i}`, 'master.log');
        try {
          return `--- ${f}\n${readFileSync(f, 'utf8').trimEnd().split('\n').slice(-8).join('\n')}`;
        } catch {
          return `--- ${f}: (no log)`;
        }
      })
      .join('\n');
  }

  private async open(servers: string[], timeoutMs?: number): Promise<Volume> {
    if (!this.connect || !this.ready) throw new Error('coordvol: client() before start()');
    const secret = readFileSync(this.ready.secretFile, 'utf8').trim();
    return withTimeout(this.connect({ servers, secret, exactlyOnce: this.exactlyOnce, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }), 20_000, `coordvol connect to ${servers.join(',')}`);
  }

  async client(): Promise<KvClient> {
    const v = await this.open(this.rotated());
    this.clients.add(v);
    return volumeClient(v, async () => {
      this.clients.delete(v);
      await withTimeout(v.close(), 10_000, 'coordvol client close');
    });
  }

  preload(keys: readonly string[], value: Uint8Array, inFlight: number): Promise<void> {
    return preloadWith(() => this.client(), keys, value, inFlight);
  }

  /** Compacts at the latest rev, as etcd is compacted, so history does not grow across runs. */
  async beforeWriteRun(): Promise<void> {
    if (!this.connect || !this.ready) return;
    const v = await this.open(this.servers());
    try {
      const st = await v.status();
      const rev = Number(st.volume?.commitRev ?? 0);
      if (rev > 2) await v.compact(rev);
    } finally {
      await withTimeout(v.close(), 10_000, 'coordvol client close');
    }
  }

  async stop(): Promise<void> {
    for (const v of this.clients) await withTimeout(v.close(), 10_000, 'coordvol client close').catch(() => undefined);
    this.clients.clear();
    if (this.server) await stopServer(this.server, 10_000);
    this.server = undefined;
    if (this.clusterDir) {
      const dir = this.clusterDir;
      await run(process.execPath, [cliPath(), 'cluster', 'down', '--dir', dir, '--json'], { timeoutMs: 30_000 }).catch((e: unknown) =>
        this.o.progress(`coordvol: cluster down: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`),
      );
      // Whatever is left (a master cluster down missed, or one `cluster up` left behind): SIGKILL by PID.
      const left = [...new Set([...this.masters.map((m) => m.pid).filter(pidAlive), ...pidsWithArg(dir)])];
      for (const p of left) killPid(p);
      if (left.length > 0) {
        this.o.progress(`coordvol: SIGKILLed ${left.length} process(es) left after cluster down: ${left.join(' ')}`);
        for (let i = 0; i < 50 && left.some(pidAlive); i++) await sleep(100);
      }
      releasePids(this.masters.map((m) => m.pid));
      this.masters = [];
      this.clusterDir = undefined;
    }
    if (this.dir) removeDir(this.dir);
    this.dir = undefined;
    this.ready = undefined;
  }

  serverPids(): number[] {
    if (this.masters.length > 0) return this.masters.map((m) => m.pid);
    return this.server ? [this.server.pid] : [];
  }

  endpoint(): Endpoint {
    if (!this.ready) throw new Error('coordvol: endpoint() before start()');
    return { system: 'coordvol', servers: this.servers(), secretFile: this.ready.secretFile };
  }

  /** The master holding the volume lock, as any master reports it. */
  async leader(): Promise<Leader> {
    if (this.masters.length === 0) throw new Error('coordvol: leader() needs --members 3');
    const v = await this.open(this.servers(), 2_000);
    try {
      const holder = (await v.status()).volume?.holder;
      const m = this.masters.find((x) => x.listen === holder);
      if (!m) throw new Error(`coordvol: status names holder ${holder ?? '(none)'}, not one of ${this.servers().join(', ')}`);
      return { name: `${m.name} (${m.listen})`, pid: m.pid };
    } finally {
      await withTimeout(v.close(), 10_000, 'coordvol client close').catch(() => undefined);
    }
  }

  async failoverClient(o: FailoverClientOptions): Promise<FailoverClient> {
    const v = await this.open(this.rotated(), o.callTimeoutMs);
    return {
      put: async (key, value) => {
        await v.put(key, value);
      },
      get: async (key) => {
        const r = await v.get(key);
        return r.kv ? (r.kv.value ?? new Uint8Array(0)) : undefined;
      },
      close: () => withTimeout(v.close(), 10_000, 'coordvol client close'),
    };
  }

  async describe(): Promise<string> {
    if (this.o.members === 3) {
      return (
        `coordvol (this tree), 3 masters (\`coordvol cluster up --masters 3\`: replicated volume, volume-lock lease ${CLUSTER_LEASE_MS} ms, fsync on), ` +
        'over its network protocol, client connect() given all three addresses (any master takes writes and linearizable reads; non-holders forward to the holder)'
      );
    }
    return `coordvol (this tree), 1 master (\`coordvol start\`, default single-brick graph, fsync on) over its network protocol, client connect()`;
  }
}

export class CoordvolEmbeddedDriver implements SystemDriver {
  readonly name = 'coordvol-embedded';
  private dir: string | undefined;
  private vol: EmbeddedVolume | undefined;

  constructor(private readonly o: DriverOptions) {}

  async start(): Promise<void> {
    if (this.o.members !== 1) throw new Unavailable('coordvol-embedded is one in-process brick; run it with --members 1');
    const { openVolume } = await import('../../../src/client/index.js');
    this.dir = tempDir('coordvol-embedded');
    this.vol = await withTimeout(openVolume({ dir: this.dir, fsync: true }), 30_000, 'openVolume');
    this.o.progress(`coordvol-embedded: opened a volume in-process, data in ${this.dir}`);
  }

  async client(): Promise<KvClient> {
    if (!this.vol) throw new Error('coordvol-embedded: client() before start()');
    return volumeClient(this.vol, async () => undefined); // every "connection" shares the one volume
  }

  async preload(keys: readonly string[], value: Uint8Array, inFlight: number): Promise<void> {
    const c = await this.client();
    await forEachLimited(keys, inFlight, (k) => c.put(k, value));
  }

  async beforeWriteRun(): Promise<void> {
    if (!this.vol) return;
    const rev = Number(this.vol.seenRev);
    if (rev > 2) await this.vol.compact(rev);
  }

  async stop(): Promise<void> {
    if (this.vol) await withTimeout(this.vol.close(), 30_000, 'volume close').catch(() => undefined);
    this.vol = undefined;
    if (this.dir) removeDir(this.dir);
    this.dir = undefined;
  }

  serverPids(): number[] {
    return [];
  }

  async describe(): Promise<string> {
    return 'coordvol-embedded: openVolume() in the load generator\'s process (default graph, fsync on); its CPU is in the client column';
  }
}
