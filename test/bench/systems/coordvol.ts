// coordvol, two ways:
//  - `coordvol`: a master as a child process (`node dist/src/cli/main.js start --dir DIR --listen
//    127.0.0.1:PORT --no-http --json`, fsync on), reached over the network with the client
//    library's connect({ servers, secret }). Puts are put; gets are get with consistency
//    'serializable' or the default (linearizable).
//  - `coordvol-embedded`: openVolume() in this process, for reference (no network; the server's
//    CPU is counted as the load generator's).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EmbeddedVolume, Volume } from '../../../src/client/index.js';
import {
  assertRunning, freePort, logTail, removeDir, startServer, stopServer, tempDir, waitUntil, withTimeout, type Server,
} from './proc.js';
import type { Endpoint } from './coord.js';
import { forEachLimited, preloadWith, Unavailable, type DriverOptions, type KvClient, type ReadMode, type SystemDriver } from './types.js';

export type Connect = (o: { servers: string[]; secret: string | Uint8Array }) => Promise<Volume>;

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

export class CoordvolDriver implements SystemDriver {
  readonly name = 'coordvol';
  private dir: string | undefined;
  private server: Server | undefined;
  private ready: Ready | undefined;
  private connect: Connect | undefined;
  private readonly clients = new Set<Volume>();

  constructor(private readonly o: DriverOptions) {}

  async start(): Promise<void> {
    if (this.o.members !== 1) throw new Unavailable(`coordvol with ${this.o.members} masters is not available yet (replication across masters comes with a later issue); run it with --members 1`);
    this.connect = await loadConnect();
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

  async client(): Promise<KvClient> {
    if (!this.connect || !this.ready) throw new Error('coordvol: client() before start()');
    const secret = readFileSync(this.ready.secretFile, 'utf8').trim();
    const v = await withTimeout(this.connect({ servers: [this.ready.listen], secret }), 20_000, `coordvol connect to ${this.ready.listen}`);
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
    const secret = readFileSync(this.ready.secretFile, 'utf8').trim();
    const v = await withTimeout(this.connect({ servers: [this.ready.listen], secret }), 20_000, 'coordvol connect');
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
    if (this.dir) removeDir(this.dir);
    this.dir = undefined;
  }

  serverPids(): number[] {
    return this.server ? [this.server.pid] : [];
  }

  endpoint(): Endpoint {
    if (!this.ready) throw new Error('coordvol: endpoint() before start()');
    return { system: 'coordvol', servers: [this.ready.listen], secretFile: this.ready.secretFile };
  }

  async describe(): Promise<string> {
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
