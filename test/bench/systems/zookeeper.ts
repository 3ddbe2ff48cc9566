// ZooKeeper 3.8 from Debian's zookeeper package (installed on first use; it pulls a JRE), one
// or three servers on 127.0.0.1 started with java directly (not the Debian service), one zoo.cfg
// and myid each in a temp dir, as ANCHORS.md describes. Clients are npm `node-zookeeper-client`
// (pure JS). Puts are setData (create if missing); gets are getData (serializable: served by the
// server the session is on) or sync + getData (linearizable). The library has no sync(), so
// `sync()` below sends OpCode.sync through its connection manager; sync and getData go out
// back to back, which ZooKeeper answers in order (FIFO per session), so the read follows the sync.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import {
  aptInstall, assertRunning, debVersion, freePort, logTail, onPath, removeDir, run, startServer, stopServer, tempDir, waitUntil, withTimeout, type Server,
} from './proc.js';
import type { Endpoint } from './coord.js';
import {
  forEachLimited, type DriverOptions, type FailoverClient, type FailoverClientOptions, type KvClient, type Leader, type ReadMode, type SystemDriver,
} from './types.js';

const JAVA_DIR = '/usr/share/java';
/** The shortest session the servers grant (zoo.cfg minSessionTimeout; the default is 2 × tickTime). */
export const MIN_SESSION_TIMEOUT_MS = 2_000;
const ZK_JAR = join(JAVA_DIR, 'zookeeper.jar'); // its manifest's Class-Path names its dependencies
const LOG_JAR = join(JAVA_DIR, 'slf4j-simple.jar'); // a logger binding, so the server log says why it failed

interface ZkServer {
  readonly id: number;
  readonly clientPort: number;
  readonly quorumPort: number;
  readonly electionPort: number;
  readonly dir: string;
}

/** Sends a four-letter-word command and returns the reply (bounded). */
export function fourLetter(port: number, cmd: string, timeoutMs = 5_000): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      const sock = tcpConnect({ host: '127.0.0.1', port });
      let out = '';
      sock.setEncoding('utf8');
      sock.on('connect', () => sock.write(cmd));
      sock.on('data', (d: string) => (out += d));
      sock.on('error', reject);
      sock.on('close', () => resolve(out));
    }),
    timeoutMs,
    `zookeeper ${cmd} on port ${port}`,
  );
}

// The few internals of node-zookeeper-client that sync() needs.
interface JuteRecord {
  byteLength(): number;
  serialize(buffer: Buffer, offset: number): number;
  setChrootPath(path: string): void;
}
interface JuteModule {
  OP_CODES: { SYNC: number; DELETE: number };
  protocol: { RequestHeader: new () => { type: number; xid: number } & JuteRecord };
  Request: new (header: unknown, payload: unknown) => { header: { type: number }; toBuffer(): Buffer };
}
interface ConnectionManager {
  queue(request: unknown, callback: (error: Error | null) => void): void;
}
const jute = createRequire(import.meta.url)('node-zookeeper-client/lib/jute/index.js') as JuteModule;

/** A SyncRequest payload: one ustring (int32 length + UTF-8). */
function syncPayload(path: string): JuteRecord {
  let p = path;
  return {
    byteLength: () => 4 + Buffer.byteLength(p),
    serialize: (buf, offset) => {
      const n = buf.write(p, offset + 4, 'utf8');
      buf.writeInt32BE(n, offset);
      return 4 + n;
    },
    setChrootPath: (chroot) => {
      p = chroot + p;
    },
  };
}

/** OpCode.sync through the library's queue. Its reply carries the path, which we do not need:
 *  once the request is on the wire its type is switched to DELETE, whose reply the library
 *  decodes as empty (the rest of the frame is dropped), so the callback fires in order. */
function sync(client: zookeeper.Client, path: string): Promise<void> {
  const header = new jute.protocol.RequestHeader();
  header.type = jute.OP_CODES.SYNC;
  const request = new jute.Request(header, syncPayload(path));
  const toBuffer = request.toBuffer.bind(request);
  request.toBuffer = (): Buffer => {
    const b = toBuffer();
    request.header.type = jute.OP_CODES.DELETE;
    return b;
  };
  const cm = (client as unknown as { connectionManager: ConnectionManager }).connectionManager;
  return new Promise((resolve, reject) => cm.queue(request, (err) => (err ? reject(err) : resolve())));
}

export const isCode = (e: unknown, code: number): boolean => typeof (e as { getCode?: () => number })?.getCode === 'function' && (e as { getCode: () => number }).getCode() === code;

function zkClient(c: zookeeper.Client): KvClient {
  const setData = (path: string, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) => c.setData(path, data, -1, (err) => (err ? reject(err) : resolve())));
  const create = (path: string, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) => c.create(path, data, (err) => (err && !isCode(err, zookeeper.Exception.NODE_EXISTS) ? reject(err) : resolve())));
  const getData = (path: string): Promise<void> => new Promise((resolve, reject) => c.getData(path, (err) => (err ? reject(err) : resolve())));
  return {
    put: async (key, value) => {
      const data = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      try {
        await setData(key, data);
      } catch (e) {
        if (!isCode(e, zookeeper.Exception.NO_NODE)) throw e;
        await create(key, data);
        await setData(key, data);
      }
    },
    get: async (key: string, mode: ReadMode) => {
      if (mode === 'serializable') return getData(key);
      await Promise.all([sync(c, key), getData(key)]);
    },
    close: async () => {
      const closed = new Promise<void>((r) => c.once('disconnected', () => r()));
      c.close();
      await withTimeout(closed, 5_000, 'zookeeper client to close').catch(() => undefined);
    },
  };
}

/** A connected node-zookeeper-client (its session asks for `sessionTimeoutMs`), or an error within 20 s. */
export async function connectZk(connectString: string, sessionTimeoutMs: number): Promise<zookeeper.Client> {
  const c = zookeeper.createClient(connectString, { sessionTimeout: sessionTimeoutMs, spinDelay: 100, retries: 0 });
  const connected = new Promise<void>((r) => c.once('connected', () => r()));
  c.connect();
  try {
    await withTimeout(connected, 20_000, `zookeeper client to connect to ${connectString}`);
  } catch (e) {
    c.close();
    throw e;
  }
  return c;
}

export class ZooKeeperDriver implements SystemDriver {
  readonly name = 'zookeeper';
  private dir: string | undefined;
  private zks: ZkServer[] = [];
  private servers: Server[] = [];
  private version = '?';

  constructor(private readonly o: DriverOptions) {}

  private connectString(): string {
    return this.zks.map((z) => `127.0.0.1:${z.clientPort}`).join(',');
  }

  async start(): Promise<void> {
    if (!existsSync(ZK_JAR) || !onPath('java')) {
      this.o.progress('zookeeper: not installed, installing the zookeeper package from Debian (pulls a JRE)');
      await aptInstall(['zookeeper'], this.o.progress);
    }
    this.dir = tempDir('zookeeper');
    for (let id = 1; id <= this.o.members; id++) {
      this.zks.push({ id, clientPort: await freePort(), quorumPort: await freePort(), electionPort: await freePort(), dir: join(this.dir, `zk${id}`) });
    }
    const classpath = [ZK_JAR, ...(existsSync(LOG_JAR) ? [LOG_JAR] : [])].join(':');
    for (const z of this.zks) {
      mkdirSync(join(z.dir, 'data'), { recursive: true });
      writeFileSync(join(z.dir, 'data', 'myid'), `${z.id}\n`);
      const cfg = [
        'tickTime=2000',
        // W5 asks for a 2 s session: without this ZooKeeper raises it to 2 × tickTime = 4 s
        // (ANCHORS.md). Sessions of the other workloads ask for 30 s, within either bound.
        `minSessionTimeout=${MIN_SESSION_TIMEOUT_MS}`,
        'initLimit=10',
        'syncLimit=5',
        `dataDir=${join(z.dir, 'data')}`,
        `clientPort=${z.clientPort}`,
        'clientPortAddress=127.0.0.1',
        'maxClientCnxns=0',
        'admin.enableServer=false',
        '4lw.commands.whitelist=srvr,mntr,ruok,stat,cons',
        ...(this.zks.length > 1 ? this.zks.map((p) => `server.${p.id}=127.0.0.1:${p.quorumPort}:${p.electionPort}`) : []),
      ];
      writeFileSync(join(z.dir, 'zoo.cfg'), cfg.join('\n') + '\n');
      const args = [
        '-Xmx1000m',
        '-Djava.net.preferIPv4Stack=true',
        '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
        '-cp',
        classpath,
        'org.apache.zookeeper.server.quorum.QuorumPeerMain',
        join(z.dir, 'zoo.cfg'),
      ];
      this.servers.push(startServer(`zookeeper ${z.id}`, 'java', args, { cwd: z.dir, logFile: join(z.dir, 'server.log') }));
    }
    this.o.progress(`zookeeper: started ${this.zks.length} server(s), pids ${this.servers.map((s) => s.pid).join(' ')}, data in ${this.dir}`);
    try {
      await waitUntil('zookeeper servers serving', 90_000, async () => {
        const modes: string[] = [];
        for (const [i, z] of this.zks.entries()) {
          assertRunning(this.servers[i] as Server);
          if ((await fourLetter(z.clientPort, 'ruok')) !== 'imok') return false;
          const srvr = await fourLetter(z.clientPort, 'srvr');
          const mode = /Mode: (\w+)/.exec(srvr)?.[1];
          if (!mode) return false;
          modes.push(mode);
          this.version = /Zookeeper version: ([^\s,-]+)/.exec(srvr)?.[1] ?? this.version;
        }
        return modes.length === 1 ? modes[0] === 'standalone' : modes.filter((m) => m === 'leader').length === 1;
      });
    } catch (e) {
      const logs = this.servers.map((s) => `--- ${s.name} (${s.logFile})\n${logTail(s, 8)}`).join('\n');
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${logs}`);
    }
  }

  async client(): Promise<KvClient> {
    return zkClient(await connectZk(this.connectString(), 30_000));
  }

  async preload(keys: readonly string[], value: Uint8Array, inFlight: number): Promise<void> {
    const c = await this.client();
    try {
      const parents = [...new Set(keys.map((k) => k.slice(0, k.lastIndexOf('/'))).filter((p) => p !== ''))];
      for (const p of parents) await c.put(p, new Uint8Array(0));
      await forEachLimited(keys, inFlight, (k) => c.put(k, value));
    } finally {
      await c.close();
    }
  }

  async beforeWriteRun(): Promise<void> {
    // Nothing to do: ZooKeeper keeps no history of old values (snapshots and log rolls are its own).
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => stopServer(s)));
    this.servers = [];
    if (this.dir) removeDir(this.dir);
    this.dir = undefined;
    this.zks = [];
  }

  serverPids(): number[] {
    return this.servers.map((s) => s.pid);
  }

  /** The server whose `srvr` says Mode: leader, and its PID. */
  async leader(): Promise<Leader> {
    const modes = await Promise.all(this.zks.map((z) => fourLetter(z.clientPort, 'srvr', 2_000).then((r) => /Mode: (\w+)/.exec(r)?.[1] ?? '?', () => 'down')));
    const i = modes.indexOf('leader');
    const z = this.zks[i];
    const server = this.servers[i];
    if (i < 0 || !z || !server) throw new Error(`zookeeper: no server says Mode: leader (${modes.join(', ')})`);
    return { name: `server ${z.id} (127.0.0.1:${z.clientPort})`, pid: server.pid };
  }

  /**
   * One session over the whole connect string (30 s session timeout, so it survives the election).
   * The library has no per-call timeout: the harness bounds each call. A put is create (its
   * parent made on NO_NODE); NODE_EXISTS counts as done, since the keys are unique.
   */
  async failoverClient(_o: FailoverClientOptions): Promise<FailoverClient> {
    const c = await connectZk(this.connectString(), 30_000);
    const create = (path: string, data: Buffer): Promise<void> =>
      new Promise((resolve, reject) => c.create(path, data, (err) => (err && !isCode(err, zookeeper.Exception.NODE_EXISTS) ? reject(err) : resolve())));
    const getData = (path: string): Promise<Buffer | undefined> =>
      new Promise((resolve, reject) =>
        c.getData(path, (err, data) => (err ? (isCode(err, zookeeper.Exception.NO_NODE) ? resolve(undefined) : reject(err)) : resolve(data ?? Buffer.alloc(0)))),
      );
    return {
      put: async (key, value) => {
        const data = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
        try {
          await create(key, data);
        } catch (e) {
          if (!isCode(e, zookeeper.Exception.NO_NODE)) throw e;
          await create(key.slice(0, key.lastIndexOf('/')), Buffer.alloc(0));
          await create(key, data);
        }
      },
      get: async (key) => {
        const [, data] = await Promise.all([sync(c, key), getData(key)]);
        return data === undefined ? undefined : new Uint8Array(data);
      },
      close: async () => {
        const closed = new Promise<void>((r) => c.once('disconnected', () => r()));
        c.close();
        await withTimeout(closed, 5_000, 'zookeeper client to close').catch(() => undefined);
      },
    };
  }

  endpoint(): Endpoint {
    return { system: 'zookeeper', connectString: this.connectString() };
  }

  async describe(): Promise<string> {
    const deb = await debVersion('zookeeper');
    const java = /version "([^"]+)"/.exec(await run('java', ['-version'], { timeoutMs: 10_000, withStderr: true }).catch(() => ''))?.[1] ?? '?';
    return `ZooKeeper ${this.version} (Debian zookeeper ${deb ?? '?'}, OpenJDK ${java}, -Xmx1000m), ${this.o.members} server(s), defaults (forceSync=yes, tickTime 2000) but minSessionTimeout=${MIN_SESSION_TIMEOUT_MS}`;
  }
}
