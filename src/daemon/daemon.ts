// The daemon `coordvol start` runs (DESIGN §8): a master serving a brick of the coordination
// volume, or a plain peer serving the volume through its masters. It owns what outlives a graph:
// the management ops a probe sends (peerInfo, peerJoin), the liveness key in the cluster map,
// the volfile rewrite after a membership change commits, and the switch from a fresh single-brick
// master to a member of another volume when a probe makes it join.
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { ReplicateTranslator } from '../../translators/cluster/replicate.js';
import type { FopArgs, FopContext, FopName, FopResult, PeerInfo, PeerJoinArgs, PeerJoinResult } from '../../translators/fops.js';
import { ProtocolClientTranslator } from '../../translators/protocol/client.js';
import type { Management } from '../../translators/protocol/mgmt.js';
import { ProtocolServerTranslator } from '../../translators/protocol/server.js';
import { StorageTranslator } from '../../translators/storage/brick.js';
import { LmdbStorage } from '../../translators/storage/lmdb.js';
import type { VolumeConfig } from '../../store/types.js';
import type { Graph, Translator } from '../../translators/index.js';
import { coordError } from '../common/errors.js';
import { formatAddress } from '../wire/address.js';
import { FopVolume, type Volume } from '../client/volume.js';
import { daemonUuid } from '../mgmt/daemon-uuid.js';
import { DEFAULT_LIVENESS_TTL_MS, keepAlive, type LivenessEvent, type LivenessKeeper } from '../mgmt/liveness.js';
import { startMaster, VOLFILE_NAME, type Master, type MasterOptions } from './master.js';
import { CLIENT_VOLFILE_NAME, writeAtomically, writeJoinFiles, type JoinPlan } from './join.js';
import { peerInfoOf } from './peer-info.js';
import { withRemote } from './volfiles.js';
import { withMembership } from './volfile-members.js';
import { watchVolfile, type VolfileWatcher } from './volfile-watch.js';

export type DaemonEvent =
  | { readonly kind: 'volfile-rewritten'; readonly file: string; readonly rev: number }
  | { readonly kind: 'joined'; readonly role: 'master' | 'peer'; readonly volumeId: string }
  /** An edit of the volfile switched the graph (DESIGN §8). */
  | { readonly kind: 'graph-switched'; readonly file: string }
  | { readonly kind: 'liveness'; readonly event: LivenessEvent }
  | { readonly kind: 'error'; readonly what: string; readonly error: unknown };

export interface DaemonOptions extends MasterOptions {
  /** Keep a liveness key in the cluster map (default on; its session ttl in ms). */
  readonly livenessTtlMs?: number | false;
  /** How often the committed membership is compared with the volfile (default 500 ms). */
  readonly rewriteEveryMs?: number;
  /** Watch the volfile and switch the graph on an edit (default on). */
  readonly watchVolfile?: boolean;
  readonly onEvent?: (e: DaemonEvent) => void;
}

export class Daemon implements Management {
  private master: Master | undefined;
  private keeper: LivenessKeeper | undefined;
  private rewriteTimer: NodeJS.Timeout | undefined;
  /** The committed config last written into the volfile (and pushed to clients). */
  private lastRewritten: VolumeConfig | undefined;
  private joining: Promise<void> | undefined;
  private offMembers: (() => void) | undefined;
  private watcher: VolfileWatcher | undefined;
  private closed = false;
  readonly uuid: string;
  readonly dir: string;
  private readonly startedAt = new Date().toISOString();
  /** A Volume over whichever graph serves now (a join replaces it). */
  readonly volume: Volume;

  /** --listen: applied in memory over the volfile's listener (the file is not rewritten). */
  private listen: string | undefined;

  private constructor(private readonly o: DaemonOptions) {
    this.listen = o.listen;
    this.dir = resolve(o.dir);
    this.uuid = daemonUuid(this.dir);
    this.volume = new FopVolume((fop, ctx, args) => this.call(fop, ctx, args), async () => undefined);
  }

  static async start(o: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(o);
    await d.startGraph();
    return d;
  }

  /** Calls a fop on the graph serving now. */
  call<F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
    const m = this.master;
    if (!m) return Promise.reject(coordError('closed', this.joining ? 'the daemon is joining another volume: retry' : 'the daemon is not running'));
    return m.top.call(fop, ctx, args);
  }

  get graph(): Graph {
    if (!this.master) throw coordError('closed', 'the daemon is not running');
    return this.master.graph;
  }

  get volfilePath(): string {
    return this.master?.volfilePath ?? this.o.volfile ?? join(this.dir, VOLFILE_NAME);
  }

  get role(): 'master' | 'peer' {
    return this.find(StorageTranslator) ? 'master' : 'peer';
  }

  private find<T extends Translator>(cls: abstract new (...a: never[]) => T): T | undefined {
    return this.master?.graph.translators.find((t): t is T => t instanceof cls);
  }

  private get clientVolfilePath(): string {
    return join(this.dir, CLIENT_VOLFILE_NAME);
  }

  /** A plain peer runs from its client volfile; a master from its volfile (the embedded default if none). */
  private async startGraph(): Promise<void> {
    const asPeer = this.o.volfile === undefined && existsSync(this.clientVolfilePath);
    const { listen: _listen, ...rest } = this.o;
    const o = this.listen === undefined ? rest : { ...rest, listen: this.listen };
    this.master = await startMaster(asPeer ? { ...o, volfile: this.clientVolfilePath } : o);
    const server = this.find(ProtocolServerTranslator);
    server?.setManagement(this);
    // --listen with port 0: the port it got, so a join (which restarts the graph) keeps it.
    if (server && this.listen !== undefined) this.listen = formatAddress(server.address);
    const client = this.find(ProtocolClientTranslator);
    if (this.role === 'peer' && client) this.offMembers = client.onMembers((m) => this.followMembers(m.masters));
    if (this.o.watchVolfile !== false) this.watchEdits(this.master);
    if (this.role === 'master') {
      this.lastRewritten = undefined;
      const every = this.o.rewriteEveryMs ?? 500;
      this.rewriteTimer = setInterval(() => this.rewriteVolfile(), every);
      this.rewriteTimer.unref();
    }
    this.startLiveness();
  }

  /**
   * An operator's edit of the volfile switches the graph; one that does not parse or validate, or
   * edits the membership, is reported (an `error` event naming the line, or `peer probe` /
   * `peer detach`) and the running graph keeps serving. The daemon's own rewrites switch nothing.
   */
  private watchEdits(m: Master): void {
    let initialText: string | undefined;
    try {
      initialText = readFileSync(m.volfilePath, 'utf8');
    } catch {
      initialText = undefined;
    }
    this.watcher = watchVolfile({
      path: m.volfilePath,
      ...(initialText !== undefined ? { initialText } : {}),
      isOwnWrite: (t) => m.takeOwnWrite(t),
      onText: async (t) => {
        const r = await m.switchTo(t);
        if (r.switched) this.o.onEvent?.({ kind: 'graph-switched', file: m.volfilePath });
      },
      onError: (error) => this.o.onEvent?.({ kind: 'error', what: `volfile edit of ${m.volfilePath} not applied`, error }),
    });
  }

  /** Resolves once the volfile watcher is watching (tests wait for it before editing). */
  async whenWatching(): Promise<void> {
    await this.watcher?.ready;
  }

  private startLiveness(): void {
    const ttl = this.o.livenessTtlMs ?? DEFAULT_LIVENESS_TTL_MS;
    const server = this.find(ProtocolServerTranslator);
    if (ttl === false || !server) return;
    const address = formatAddress(server.address);
    const storage = this.find(StorageTranslator);
    const selfRecord = { uuid: this.uuid, hostname: hostname(), address, role: this.role, ...(storage ? { brick: storage.brickName } : {}), probedAt: this.startedAt };
    try {
      this.keeper = keepAlive(this.volume, { uuid: this.uuid, address, pid: process.pid, startedAt: this.startedAt }, {
        ttlMs: ttl,
        selfRecord,
        onEvent: (event) => this.o.onEvent?.({ kind: 'liveness', event }),
      });
    } catch (error) {
      this.o.onEvent?.({ kind: 'error', what: 'liveness', error });
    }
  }

  /** Writes the committed membership into the volfile when it changed (DESIGN §8). */
  private rewriteVolfile(): void {
    const replicate = this.find(ReplicateTranslator);
    const storage = this.find(StorageTranslator);
    const m = this.master;
    if (!replicate || !storage || !m || this.joining) return;
    try {
      const { config, masters } = replicate.memberMasters();
      if (config === this.lastRewritten) return;
      const server = this.find(ProtocolServerTranslator);
      if (server) {
        // Clients follow the members (no static host list): this master is where it listens.
        const self = formatAddress(server.address);
        const addresses = masters.flatMap((x) => (x.brick === storage.brickName ? [self] : x.address === undefined ? [] : [x.address]));
        server.pushMembers({ volumeId: storage.store.identity.volumeId, rev: storage.store.commitRev, masters: addresses });
      }
      const text = readFileSync(m.volfilePath, 'utf8');
      const next = withMembership(text, m.volfilePath, { config, rev: storage.store.commitRev, self: storage.brickName, masters });
      if (next !== text) {
        m.noteOwnWrite(next);
        writeAtomically(m.volfilePath, next, 0o644);
        this.o.onEvent?.({ kind: 'volfile-rewritten', file: m.volfilePath, rev: storage.store.commitRev });
      }
      this.lastRewritten = config;
    } catch (error) {
      this.o.onEvent?.({ kind: 'error', what: 'volfile rewrite', error });
    }
  }

  /** A plain peer writes the masters a master pushed into its client volfile (DESIGN §8). */
  private followMembers(masters: readonly string[]): void {
    const m = this.master;
    if (!m || this.joining) return;
    try {
      const text = readFileSync(m.volfilePath, 'utf8');
      const next = withRemote(text, m.volfilePath, masters.join(' '));
      if (next === text) return;
      m.noteOwnWrite(next);
      writeAtomically(m.volfilePath, next, 0o644);
      this.o.onEvent?.({ kind: 'volfile-rewritten', file: m.volfilePath, rev: 0 });
    } catch (error) {
      this.o.onEvent?.({ kind: 'error', what: 'client volfile rewrite', error });
    }
  }

  async peerInfo(): Promise<PeerInfo> {
    const server = this.find(ProtocolServerTranslator);
    if (!server || !this.master) throw coordError('closed', 'the daemon is not serving');
    return peerInfoOf(this.master.graph, { uuid: this.uuid, hostname: hostname(), address: formatAddress(server.address) });
  }

  /**
   * Joins another volume (a probe): refused unless this daemon is fresh. Answers first, then
   * switches: the reply travels on the listener the switch closes.
   */
  async peerJoin(args: PeerJoinArgs): Promise<PeerJoinResult> {
    if (this.joining) throw coordError('already-configured', 'this daemon is joining a volume already');
    const info = await this.peerInfo();
    if (info.volumeId === args.volumeId) throw coordError('already-member', `this daemon (${info.address}) already belongs to volume ${args.volumeId}`);
    if (info.configured) throw coordError('already-configured', `this daemon (${info.address}) will not discard its volume ${info.volumeId}: ${info.why ?? 'it is configured'}`);
    const storage = this.find(LmdbStorage);
    const server = this.find(ProtocolServerTranslator);
    if (!storage || !server) throw coordError('already-configured', 'this daemon serves no fresh brick on disk');
    const plan: JoinPlan = {
      args,
      address: info.address,
      brick: storage.brickName,
      brickDir: storage.brickDirectory,
      secretFile: server.secretFile,
      fsync: storage.fsyncOn,
      volfile: this.o.volfile ?? join(this.dir, VOLFILE_NAME),
      clientVolfile: this.clientVolfilePath,
    };
    this.joining = new Promise<void>((resolve) => setTimeout(resolve, 50)).then(() =>
      this.rejoin(plan).catch((error: unknown) => this.o.onEvent?.({ kind: 'error', what: 'join', error })),
    );
    return { uuid: this.uuid, address: info.address, ...(args.role === 'master' ? { brick: plan.brick } : {}) };
  }

  private async rejoin(p: JoinPlan): Promise<void> {
    await this.stopGraph();
    try {
      writeJoinFiles(p);
      await this.startGraph();
      this.o.onEvent?.({ kind: 'joined', role: p.args.role, volumeId: p.args.volumeId });
    } finally {
      this.joining = undefined;
    }
  }

  private async stopGraph(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.close().catch(() => undefined);
    this.offMembers?.();
    this.offMembers = undefined;
    if (this.rewriteTimer) clearInterval(this.rewriteTimer);
    this.rewriteTimer = undefined;
    const keeper = this.keeper;
    this.keeper = undefined;
    await keeper?.stop().catch(() => undefined);
    const m = this.master;
    this.master = undefined;
    await m?.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.joining;
    await this.stopGraph();
  }
}
