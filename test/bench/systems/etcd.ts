// etcd 3.4 from Debian's etcd-server/etcd-client packages (installed on first use), one or three
// members on 127.0.0.1 with distinct client and peer ports, defaults otherwise (fsync on,
// heartbeat 100 ms, election 1 s), data in a temp dir. Clients are the npm `etcd3` library
// (@grpc/grpc-js, pure JS): puts are Put, gets are Range with serializable=true or the default
// linearizable read (ReadIndex through the leader).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';
import {
  aptInstall, assertRunning, debVersion, freePort, logTail, onPath, removeDir, run, startServer, stopServer, tempDir, waitUntil, type Server,
} from './proc.js';
import type { Endpoint } from './coord.js';
import {
  forEachLimited, preloadWith, type DriverOptions, type FailoverClient, type FailoverClientOptions, type KvClient, type Leader, type ReadMode, type SystemDriver,
} from './types.js';

interface Member {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
}

const CALL_TIMEOUT_MS = 10_000;

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/**
 * cockatiel's no-op policy, from the copy etcd3 itself loads (a dependency of etcd3, not of this
 * project): as a host policy it turns off the per-host circuit breaker etcd3 puts on every host by
 * default (3 consecutive failures open it for 5 s), which ANCHORS.md found to stretch etcd's
 * failover from ~1.5 s to ~6 s. The client's global retry (3 attempts over shuffled hosts) stays.
 */
function noopPolicy(): HostPolicy {
  const req = createRequire(createRequire(import.meta.url).resolve('etcd3'));
  return (req('cockatiel') as { noop: HostPolicy }).noop;
}

/** etcdctl's JSON holds uint64 ids as bare numbers: quote them before JSON.parse rounds them. */
const quoteIds = (json: string): string => json.replace(/"(member_id|leader|cluster_id|raft_term)":(\d+)/g, '"$1":"$2"');

export class EtcdDriver implements SystemDriver {
  readonly name = 'etcd';
  private dir: string | undefined;
  private members: Member[] = [];
  private servers: Server[] = [];
  private admin: Etcd3 | undefined;

  constructor(private readonly o: DriverOptions) {}

  private endpoints(): string {
    return this.members.map((m) => m.clientUrl).join(',');
  }

  private etcdctl(args: readonly string[], timeoutMs = 30_000): Promise<string> {
    return run('etcdctl', [`--endpoints=${this.endpoints()}`, ...args], { timeoutMs, env: { ...process.env, ETCDCTL_API: '3' } });
  }

  async start(): Promise<void> {
    if (!onPath('etcd') || !onPath('etcdctl')) {
      this.o.progress('etcd: not on PATH, installing etcd-server and etcd-client from Debian');
      await aptInstall(['etcd-server', 'etcd-client'], this.o.progress);
    }
    this.dir = tempDir('etcd');
    for (let i = 1; i <= this.o.members; i++) {
      this.members.push({
        name: `m${i}`,
        clientUrl: `http://127.0.0.1:${await freePort()}`,
        peerUrl: `http://127.0.0.1:${await freePort()}`,
        dataDir: join(this.dir, `m${i}`),
      });
    }
    const cluster = this.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    for (const m of this.members) {
      const args = [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${m.clientUrl}`,
        `--advertise-client-urls=${m.clientUrl}`,
        `--listen-peer-urls=${m.peerUrl}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`,
        `--initial-cluster=${cluster}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=coordvol-bench',
        '--logger=zap',
        '--log-outputs=stderr',
      ];
      this.servers.push(startServer(`etcd ${m.name}`, 'etcd', args, { cwd: this.dir, logFile: join(this.dir, `${m.name}.log`) }));
    }
    this.o.progress(`etcd: started ${this.members.length} member(s), pids ${this.servers.map((s) => s.pid).join(' ')}, data in ${this.dir}`);
    try {
      await waitUntil('etcd members healthy', 60_000, async () => {
        for (const s of this.servers) assertRunning(s);
        await this.etcdctl(['endpoint', 'health'], 10_000);
        return true;
      });
    } catch (e) {
      const logs = this.servers.map((s) => `--- ${s.name} (${s.logFile})\n${logTail(s, 8)}`).join('\n');
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${logs}`);
    }
    this.admin = this.newClient();
  }

  private newClient(): Etcd3 {
    return new Etcd3({
      hosts: this.members.map((m) => m.clientUrl),
      dialTimeout: 10_000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    });
  }

  async client(): Promise<KvClient> {
    const c = this.newClient();
    await c.get('/bench/ping').serializable(true).string(); // dials the connection before the clock starts
    return {
      put: async (key: string, value: Uint8Array): Promise<void> => {
        await c.put(key).value(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      },
      get: async (key: string, mode: ReadMode): Promise<void> => {
        await c.get(key).serializable(mode === 'serializable').buffer();
      },
      close: async (): Promise<void> => {
        c.close();
      },
    };
  }

  preload(keys: readonly string[], value: Uint8Array, inFlight: number): Promise<void> {
    return preloadWith(() => this.client(), keys, value, inFlight);
  }

  /** Compact at the current revision and defragment every member, so the db does not grow across runs. */
  async beforeWriteRun(): Promise<void> {
    const status = JSON.parse(await this.etcdctl(['endpoint', 'status', '-w', 'json'])) as { Status?: { header?: { revision?: number } } }[];
    const rev = Math.max(...status.map((s) => Number(s.Status?.header?.revision ?? 0)));
    if (rev > 1) await this.etcdctl(['compact', String(rev), '--physical'], 120_000);
    await this.etcdctl(['defrag', '--command-timeout=120s'], 180_000);
  }

  async stop(): Promise<void> {
    this.admin?.close();
    this.admin = undefined;
    await Promise.all(this.servers.map((s) => stopServer(s)));
    this.servers = [];
    if (this.dir) removeDir(this.dir);
    this.dir = undefined;
    this.members = [];
  }

  serverPids(): number[] {
    return this.servers.map((s) => s.pid);
  }

  /**
   * The member the live endpoints' status names as leader (`etcdctl endpoint status`, asked of each
   * member alone: etcdctl fails the whole command when one endpoint is down), and its PID.
   */
  async leader(): Promise<Leader> {
    type Status = { Endpoint?: string; Status?: { header?: { member_id?: string }; leader?: string } };
    const replies = await Promise.all(
      this.members.map((m) =>
        run('etcdctl', [`--endpoints=${m.clientUrl}`, 'endpoint', 'status', '-w', 'json', '--command-timeout=2s'], { timeoutMs: 5_000, env: { ...process.env, ETCDCTL_API: '3' } }).then(
          (out) => JSON.parse(quoteIds(out)) as Status[],
          () => [] as Status[],
        ),
      ),
    );
    const status = replies.flat();
    const leaders = new Set(status.map((x) => x.Status?.leader).filter((l): l is string => !!l && l !== '0'));
    if (leaders.size !== 1) throw new Error(`etcd: the live endpoints (${status.length}) do not agree on one leader (${[...leaders].join(', ') || 'none'})`);
    const id = [...leaders][0];
    const ep = status.find((x) => x.Status?.header?.member_id === id)?.Endpoint;
    const i = this.members.findIndex((m) => m.clientUrl === ep);
    const server = this.servers[i];
    const member = this.members[i];
    if (!server || !member) throw new Error(`etcd: leader ${id} is at ${ep ?? '?'}, not one of ${this.endpoints()}`);
    return { name: `${member.name} (${member.clientUrl.replace('http://', '')})`, pid: server.pid };
  }

  async failoverClient(o: FailoverClientOptions): Promise<FailoverClient> {
    const c = new Etcd3({
      hosts: this.members.map((m) => m.clientUrl),
      dialTimeout: 10_000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + o.callTimeoutMs }),
      ...(o.circuitBreaker ? {} : { faultHandling: { host: () => noopPolicy() } }),
    });
    await c.get('/bench/ping').serializable(true).string(); // dials before the clock starts
    return {
      put: async (key, value) => {
        await c.put(key).value(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      },
      get: async (key) => {
        const b = await c.get(key).buffer();
        return b === null ? undefined : new Uint8Array(b);
      },
      close: async () => {
        c.close();
      },
    };
  }

  endpoint(): Endpoint {
    return { system: 'etcd', hosts: this.members.map((m) => m.clientUrl) };
  }

  async describe(): Promise<string> {
    const v = (await run('etcd', ['--version'], { timeoutMs: 10_000 })).split('\n')[0]?.replace('etcd Version: ', '') ?? '?';
    return `etcd ${v} (Debian etcd-server ${(await debVersion('etcd-server')) ?? '?'}), ${this.o.members} member(s), defaults (fsync on, heartbeat 100 ms, election 1 s)`;
  }
}
