// cluster/replicate: the thin adapter over replication/ (DESIGN §2, §4). It runs this master's
// replication engine (replication/master.ts: election, heal, holder) and carries out its
// outputs: brick requests wound to the local brick (its first subvolume) or to a remote brick
// (a protocol/client subvolume), replies to the callers waiting on writes and reads. A master
// that does not hold the volume lock forwards writes and linearizable reads to the master its
// brick's lease names; serializable reads and watches are served by the local brick.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { assert, unreachable } from '../../src/common/assert.js';
import { coordError, isCoordError, type CoordError } from '../../src/common/errors.js';
import { asEpoch, asRev, type Rev, type VolumeId } from '../../src/common/ids.js';
import { sessionTickMs } from '../../src/common/limits.js';
import type { Holder } from '../../replication/holder.js';
import { learnersOf, masterOf, membersOf } from '../../replication/config.js';
import { localBrickOver, Master, quorumOf, type MasterOutput } from '../../replication/master.js';
import type { BrickReply, BrickRequest } from '../../replication/messages.js';
import type { WriteOp, WriteResult } from '../../replication/ops.js';
import {
  checkCompactArgs, checkConfigChangeArgs, checkDeleteArgs, checkGetArgs, checkPutArgs, checkRangeArgs, checkSessionIdArgs, checkSessionOpenArgs, checkTxnArgs,
} from '../../replication/validate.js';
import { brickIdOf } from '../../store/identity.js';
import type { VolumeConfig } from '../../store/types.js';
import { LocksTranslator } from '../features/locks.js';
import { ProtocolClientTranslator } from '../protocol/client.js';
import type { BrickStatus, FopContext, FopName, GetArgs, RangeArgs, SnapshotProgress, VolumeStatus } from '../fops.js';
import type { OptionSchema, OptionValues, RawOptionValue } from '../options.js';
import { StorageTranslator } from '../storage/brick.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';
import { openPeerLink } from './peer-link.js';
import { SnapshotSender } from './snapshot-sender.js';

const options = {
  'holder-id': { type: 'string', description: "this master's id in lock grants and appends: its protocol address host:port, so other masters can forward to it (default: host:pid)" },
  'remote-bricks': { type: 'string', description: 'the bricks behind the 2nd, 3rd, … subvolumes (protocol/client), host:path separated by spaces, in subvolume order' },
  'remote-masters': { type: 'string', description: 'the holder-id of the master behind each protocol/client subvolume, separated by spaces, in subvolume order' },
  'drift-permille': { type: 'int', min: 0, max: 100, default: 10, description: 'ρ in ‰: the bound on clock drift rate the lease allows for (DESIGN §4.6)' },
  'request-timeout-ms': { type: 'time', min: 1, max: 3_600_000, default: 10_000, description: 'how long a request waits for a holder' },
  'secret-file': { type: 'path', default: 'secret', description: 'the cluster secret (relative to the volfile), for the links this master opens to bricks a config change added' },
} as const satisfies OptionSchema;
type Values = OptionValues<typeof options>;

interface Waiter<T> {
  resolve(r: T): void;
  reject(e: CoordError): void;
}

/** Settles the waiter of request `id`, if it still waits. */
function settleWaiter<T>(waiters: Map<number, Waiter<T>>, id: number, outcome: { ok: T } | CoordError): void {
  const w = waiters.get(id);
  if (!w) return;
  waiters.delete(id);
  if (isCoordError(outcome)) w.reject(outcome);
  else w.resolve(outcome.ok);
}

export class ReplicateTranslator extends Translator {
  private o: Values;
  private readonly holderId: string;
  private storage: StorageTranslator | undefined;
  private locks: LocksTranslator | undefined;
  private brickId = '';
  private master: Master | undefined;
  /** brickId → the subvolume that reaches it. */
  private readonly bricks = new Map<string, Translator>();
  /** brickId → host:path, for status. */
  private readonly brickPaths = new Map<string, string>();
  /** holder-id of another master → the subvolume connected to it (for forwarding). */
  private readonly masters = new Map<string, Translator>();
  /** brickId → the protocol address of the master serving it, where known (status, volfile rewrites, joins). */
  private readonly brickAddresses = new Map<string, string>();
  /** Links opened at run time to bricks a config change added (no volfile subvolume reaches them yet). */
  private readonly runLinks = new Map<string, Translator>();
  private readonly linksOpening = new Set<string>();
  /** The config whose new members were last linked. */
  private linkedConfig: VolumeConfig | undefined;
  private lastLinkError: string | undefined;
  private readonly waiters = new Map<number, Waiter<WriteResult>>();
  private readonly readWaiters = new Map<number, Waiter<Rev>>();
  private nextId = 1;
  private flushScheduled = false;
  private readyWaiters: (() => void)[] = [];
  private stopping = false;
  private lastStepDown: string | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private forwarded = 0;
  /** isMember()'s answer for the config object it was computed from. */
  private memberOf: { readonly config: VolumeConfig; readonly member: boolean } | undefined;
  /** Carries out the holder's snapshot heals (DESIGN §4.8) from the local brick. */
  private readonly snapshots: SnapshotSender;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.o = spec.options as unknown as Values;
    this.holderId = this.o['holder-id'] ?? `${hostname()}:${process.pid}`;
    this.handlers.put = async (ctx, a) => (checkPutArgs(a), this.writeOr(ctx, 'put', a, { type: 'put', args: a }));
    this.handlers.delete = async (ctx, a) => (checkDeleteArgs(a), this.writeOr(ctx, 'delete', a, { type: 'delete', args: a }));
    this.handlers.txn = async (ctx, a) => (checkTxnArgs(a), this.writeOr(ctx, 'txn', a, { type: 'txn', args: a }));
    this.handlers.compact = async (ctx, a) => (checkCompactArgs(a), this.writeOr(ctx, 'compact', a, { type: 'compact', args: a }));
    this.handlers.configChange = async (ctx, a) => (checkConfigChangeArgs(a), this.writeOr(ctx, 'configChange', a, { type: 'config-change', args: a }));
    this.handlers.sessionOpen = async (ctx, a) => (checkSessionOpenArgs(a), this.writeOr(ctx, 'sessionOpen', a, { type: 'session-open', args: a }));
    this.handlers.keepalive = async (ctx, a) => (checkSessionIdArgs(a, 'keepalive'), this.writeOr(ctx, 'keepalive', a, { type: 'keepalive', args: a }));
    this.handlers.sessionClose = async (ctx, a) => (checkSessionIdArgs(a, 'sessionClose'), this.writeOr(ctx, 'sessionClose', a, { type: 'session-close', args: a }));
    this.handlers.sessions = (ctx, a) =>
      this.viaHolder(ctx, 'sessions', a, async (h) => ({ rev: h.commitRev, sessions: h.sessionsInfo(this.env.clock.nowMs()) }));
    this.handlers.get = (ctx, a) => {
      checkGetArgs(a);
      if (a.consistency === 'serializable') return this.wind('get', ctx, a);
      // Fast path, no await: a ready holder whose lease holds reads at its commit point now.
      const h = this.master?.holder;
      if (a.rev === undefined && h?.isReady === true && h.leaseHolds(this.env.clock.nowMs())) {
        return this.wind('get', ctx, { key: a.key, rev: h.commitRev, minRev: h.commitRev });
      }
      return this.viaHolder(ctx, 'get', a, async () => (this.children[0] as Translator).call('get', ctx, await this.atReadRev(a)));
    };
    this.handlers.range = async (ctx, a) => {
      checkRangeArgs(a);
      if (a.consistency === 'serializable') return this.wind('range', ctx, a);
      return this.viaHolder(ctx, 'range', a, async () => (this.children[0] as Translator).call('range', ctx, await this.atReadRev(a)));
    };
    this.handlers.status = async (ctx) => {
      const below = await this.wind('status', ctx, {});
      return { ...below, volume: await this.volumeStatus(ctx, below.brick) };
    };
    // statedump and profile stop at this master: the other bricks' subvolumes are connections to
    // other masters, whose graphs reach back here (ask each master for its own).
    this.handlers.statedump = async (ctx) => {
      const local = await (this.children[0] as Translator).call('statedump', ctx, {});
      const peers = this.children.slice(1).map((c) => ({ name: c.name, type: c.type, state: c.dump() }));
      return [{ name: this.name, type: this.type, state: this.dump() }, ...local, ...peers];
    };
    this.handlers.profile = (ctx) => (this.children[0] as Translator).call('profile', ctx, {});
    // Brick fops from other masters' replicate translators go to the local brick.
    this.handlers.probe = (ctx, a) => this.wind('probe', ctx, a);
    this.handlers.lock = (ctx, a) => this.wind('lock', ctx, a);
    this.handlers.append = (ctx, a) => this.wind('append', ctx, a);
    this.handlers.fetch = (ctx, a) => this.wind('fetch', ctx, a);
    this.handlers.snapshotChunk = (ctx, a) => this.wind('snapshotChunk', ctx, a);
    this.snapshots = new SnapshotSender({ clock: this.env.clock, store: () => (this.storage as StorageTranslator).store, chunkTimeoutMs: this.o['request-timeout-ms'] });
  }

  override async init(): Promise<void> {
    const first = this.children[0];
    const storage = first?.find<StorageTranslator>('storage/lmdb') ?? first?.find<StorageTranslator>('storage/memory');
    if (!(storage instanceof StorageTranslator)) {
      throw coordError('volfile-invalid', `${this.name} (cluster/replicate) needs its local brick (a storage translator) below its first subvolume`);
    }
    const locks = first?.find<LocksTranslator>('features/locks');
    if (!(locks instanceof LocksTranslator)) throw coordError('volfile-invalid', `${this.name} (cluster/replicate) needs features/locks on its local brick`);
    await super.init();
    this.storage = storage;
    this.locks = locks;
    const store = storage.store;
    this.brickId = store.identity.brickId;
    this.bricks.set(this.brickId, first as Translator);
    this.brickAddresses.set(this.brickId, this.holderId);
    this.mapRemotes(store.identity.volumeId, store.config, store.logConfig);
    const local = localBrickOver(store, store.identity.brickId, () => storage.latestView(), (now) => locks.leaseLapsed(now), () => store.logConfig);
    this.master = new Master(
      { id: this.holderId, leaseMs: locks.leaseDurationMs, driftRho: this.o['drift-permille'] / 1000, roundTimeoutMs: locks.leaseDurationMs, random: Math.random, brickIdOf: (b) => brickIdOf(store.identity.volumeId, b) },
      local,
      this.env.clock.nowMs(),
    );
    const tickMs = Math.max(2, Math.min(sessionTickMs, Math.floor(locks.leaseDurationMs / 10)));
    this.ticker = setInterval(() => this.tick(), tickMs);
    this.ticker.unref();
    this.tick();
    // A single-brick volume is ready once its own lock is taken; a replicated one starts serving
    // at once (its holder may be elsewhere, or elected once the other masters are up).
    // (A brick joining a volume is not its config's voter: it waits for nothing.)
    const only = store.config.bricks.length === 1 ? store.config.bricks[0] : undefined;
    if (only !== undefined && brickIdOf(store.identity.volumeId, only) === this.brickId) await this.whenReady(this.env.clock.nowMs() + this.o['request-timeout-ms']);
  }

  /**
   * Maps each protocol/client subvolume to the brick behind it, from the volfile options. A
   * subvolume for a brick no longer a member is kept (a config change may have removed it since
   * the volfile was written); a member no subvolume reaches must have its master's address in the
   * config (peer probe), else the volfile is wrong.
   */
  private mapRemotes(volumeId: VolumeId, committed: VolumeConfig, newest: VolumeConfig): void {
    const remotes = (this.o['remote-bricks'] ?? '').split(/[\s,]+/).filter((s) => s.length > 0);
    const masters = (this.o['remote-masters'] ?? '').split(/[\s,]+/).filter((s) => s.length > 0);
    const subs = this.children.slice(1);
    if (remotes.length !== subs.length) {
      throw coordError('volfile-invalid', `${this.name}: remote-bricks names ${remotes.length} bricks for ${subs.length} remote subvolumes`);
    }
    if (masters.length !== 0 && masters.length !== subs.length) {
      throw coordError('volfile-invalid', `${this.name}: remote-masters names ${masters.length} masters for ${subs.length} remote subvolumes`);
    }
    for (const [i, b] of remotes.entries()) {
      const id = brickIdOf(volumeId, b);
      this.bricks.set(id, subs[i] as Translator);
      this.brickPaths.set(id, b);
      const m = masters[i];
      if (m !== undefined) {
        this.masters.set(m, subs[i] as Translator);
        this.brickAddresses.set(id, m);
      }
    }
    const members = new Set([...committed.bricks, ...membersOf(newest)]);
    const missing = [...members].filter((b) => !this.bricks.has(brickIdOf(volumeId, b)) && masterOf(committed, b) === undefined && masterOf(newest, b) === undefined);
    if (missing.length > 0) throw coordError('volfile-invalid', `${this.name}: no subvolume reaches brick(s) ${missing.join(', ')} of the volume (remote-bricks names ${remotes.join(' ') || 'none'})`);
  }

  /**
   * Opens a link to each member of `config` that no subvolume reaches and whose master's address
   * the config holds (a brick `peer probe --as-master` added): every master does, so that any of
   * them can heal it and, once it is a voter, count it. The volfile gains the link when the
   * daemon rewrites it after the change commits; until a restart the run-time link serves.
   */
  private linkMembers(config: VolumeConfig): void {
    const store = (this.storage as StorageTranslator).store;
    const volumeId = store.identity.volumeId;
    for (const brick of membersOf(config)) {
      const id = brickIdOf(volumeId, brick);
      const address = masterOf(config, brick);
      if (address === undefined || this.bricks.has(id) || this.linksOpening.has(id)) continue;
      this.linksOpening.add(id);
      openPeerLink(`${this.name}-link-${this.runLinks.size + this.linksOpening.size}`, address, resolve(this.env.baseDir, this.o['secret-file']), volumeId, this.env).then(
        (link) => {
          this.linksOpening.delete(id);
          if (this.stopping || this.bricks.has(id)) {
            void link.fini().catch(() => undefined);
            return;
          }
          this.bricks.set(id, link);
          this.brickPaths.set(id, brick);
          this.brickAddresses.set(id, address);
          this.masters.set(address, link);
          this.runLinks.set(id, link);
        },
        (e: unknown) => {
          this.linksOpening.delete(id);
          this.lastLinkError = `${brick} at ${address}: ${e instanceof Error ? e.message : String(e)}`;
        },
      );
    }
  }

  /**
   * The members of the committed config (or the newest in the log, with `newest`) with the
   * address of the master serving each, where known: what a volfile rewrite and a joining master
   * need (DESIGN §8).
   */
  memberMasters(newest = false): { readonly config: VolumeConfig; readonly masters: readonly { readonly brick: string; readonly address: string | undefined }[] } {
    const store = (this.storage as StorageTranslator).store;
    const config = newest ? store.logConfig : store.config;
    const volumeId = store.identity.volumeId;
    const masters = membersOf(config).map((brick) => ({ brick, address: masterOf(config, brick) ?? this.brickAddresses.get(brickIdOf(volumeId, brick)) }));
    return { config, masters };
  }

  /**
   * A graph switch hands this translator (with its engine, waiters and session deadlines) to the
   * new graph, below new subvolumes: the same local brick (carried too) and new links to the
   * other masters. The maps from bricks and holder-ids to subvolumes are made again from them;
   * a run-time link a volfile subvolume now covers is closed.
   */
  override relink(children: readonly Translator[]): void {
    const first = children[0];
    assert(first?.find<StorageTranslator>('storage/lmdb') === this.storage || first?.find<StorageTranslator>('storage/memory') === this.storage, 'a graph switch keeps the local brick below cluster/replicate');
    super.relink(children);
    if (!this.storage) return; // not initialised yet: init() maps them
    const store = this.storage.store;
    this.bricks.clear();
    this.masters.clear();
    this.bricks.set(this.brickId, first as Translator);
    this.mapRemotes(store.identity.volumeId, store.config, store.logConfig);
    for (const [id, link] of [...this.runLinks]) {
      if (this.bricks.has(id)) {
        this.runLinks.delete(id);
        void link.fini().catch(() => undefined);
        continue;
      }
      this.bricks.set(id, link);
      const address = this.brickAddresses.get(id);
      if (address !== undefined) this.masters.set(address, link);
    }
  }

  /**
   * Options a switch may change live: the links' bricks and masters (the master's own rewrite
   * after a config commit changes them; an operator's edit of them is refused before this, as a
   * membership edit), the links' secret file, the request timeout. The holder-id and the drift
   * bound are the engine's and need a restart.
   */
  override reconfigure(options: Readonly<Record<string, RawOptionValue>>): void {
    this.refuseOptions(options, ['remote-bricks', 'remote-masters', 'secret-file', 'request-timeout-ms']);
    this.adoptOptions(options);
    this.o = options as unknown as Values;
  }

  /** This master's id in grants: its protocol address. */
  get id(): string {
    return this.holderId;
  }

  private tick(): void {
    const m = this.master;
    if (!m || this.stopping) return;
    this.run(m.tick(this.env.clock.nowMs()));
    const newest = (this.storage as StorageTranslator).store.logConfig;
    if (newest !== this.linkedConfig) {
      this.linkedConfig = newest;
      this.linkMembers(newest);
    }
    // The holder's log keeps what its slowest voter still needs; elsewhere the window alone rules.
    this.storage?.store.retainFrom(m.holder?.neededFrom() ?? asRev(Number.MAX_SAFE_INTEGER));
  }

  /** Carries out the engine's outputs. */
  private run(outputs: readonly MasterOutput[]): void {
    for (const o of outputs) {
      switch (o.kind) {
        case 'send':
          this.send(o.to, o.reqId, o.req);
          break;
        case 'reply':
          settleWaiter(this.waiters, o.id, o.outcome.ok ? { ok: o.outcome.result } : o.outcome.error);
          break;
        case 'read':
          settleWaiter(this.readWaiters, o.id, o.outcome.ok ? { ok: o.outcome.readRev } : o.outcome.error);
          break;
        case 'ready':
          for (const r of this.readyWaiters.splice(0)) r();
          break;
        case 'stepped-down':
          this.lastStepDown = o.reason.message;
          // Its snapshot heals' answers would go to no holder: stop them before their next chunk.
          this.snapshots.stopAll(`this master stepped down (${o.reason.message})`, false);
          break;
        case 'role':
          break;
        default:
          unreachable(o, 'master output');
      }
    }
  }

  /** A brick request, to the local brick or over the wire; an answer goes back to the engine. */
  private send(to: string, reqId: number, req: BrickRequest): void {
    const child = this.bricks.get(to);
    // A brick a config entry added whose link is still opening (linkMembers), or whose master's
    // address the config does not hold: unreachable, like a dead brick.
    if (child === undefined) return;
    const ctx: FopContext = { deadlineMs: this.env.clock.nowMs() + (this.locks as LocksTranslator).leaseDurationMs };
    const answer = (reply: BrickReply): void => {
      const m = this.master;
      if (m && !this.stopping) this.run(m.onReply(to, reqId, reply, this.env.clock.nowMs()));
    };
    // A failed call is an unanswered request: the engine's timeouts decide what follows.
    const ignore = (): void => undefined;
    switch (req.t) {
      case 'probe':
        child.call('probe', ctx, req.args).then((res) => answer({ t: 'probe', res }), ignore);
        break;
      case 'lock':
        child.call('lock', ctx, req.args).then((res) => answer({ t: 'lock', res }), ignore);
        break;
      case 'append':
        child.call('append', ctx, req.args).then((res) => answer({ t: 'append', res }), ignore);
        break;
      case 'fetch':
        child.call('fetch', ctx, req.args).then((res) => answer({ t: 'fetch', res }), ignore);
        break;
      case 'snapshot':
        // The holder's log is its local brick's: the source, never a target.
        assert(to !== this.brickId, 'a snapshot heal targets a brick other than the holder\'s own');
        void this.snapshots.send(to, child, req.args).then((res) => answer({ t: 'snapshot', res }));
        break;
      default:
        unreachable(req, 'brick request');
    }
  }

  /**
   * Where a write or linearizable read goes: to this master's holder once it is ready, or to the
   * master the brick's live lease names. While neither is known (an election), wait.
   */
  private async route(ctx: FopContext): Promise<{ kind: 'local'; holder: Holder } | { kind: 'forward'; to: Translator }> {
    const deadline = ctx.deadlineMs ?? this.env.clock.nowMs() + this.o['request-timeout-ms'];
    for (;;) {
      if (this.stopping) throw coordError('closed', 'the volume is shutting down');
      const h = this.master?.holder;
      if (h?.isReady === true) return { kind: 'local', holder: h };
      const now = this.env.clock.nowMs();
      const to = h === undefined ? this.holderLink(now) : undefined;
      if (to) return { kind: 'forward', to };
      // A master whose brick a config entry removed hears from no holder again: it refuses at
      // once (nothing applied), so the client moves to another master rather than wait here.
      if (!this.isMember()) throw coordError('not-holder', "this master's brick is not a member of the volume (a config entry removed it): ask another master");
      if (now >= deadline) {
        throw coordError('not-holder', `no master holds the volume lock${this.lastStepDown ? ` (${this.lastStepDown})` : ''}`);
      }
      await this.whenReady(Math.min(deadline, now + 20));
    }
  }

  /** The local brick is a voter or learner of the newest config in its log. */
  private isMember(): boolean {
    const config = (this.storage as StorageTranslator).store.logConfig;
    if (config !== this.memberOf?.config) {
      const volumeId = (this.storage as StorageTranslator).store.identity.volumeId;
      this.memberOf = { config, member: membersOf(config).some((b) => brickIdOf(volumeId, b) === this.brickId) };
    }
    return this.memberOf.member;
  }

  /**
   * The subvolume to the master the brick's live lease names as holder, if it is another master
   * and the connection to it is open: a master that just died would hold a request for its
   * reconnect timeout, while its successor is elected within a lease.
   */
  private holderLink(nowMs: number): Translator | undefined {
    const named = this.locks?.leaseHolder(nowMs);
    const to = named !== undefined && named !== this.holderId ? this.masters.get(named) : undefined;
    return to && (!(to instanceof ProtocolClientTranslator) || to.connected) ? to : undefined;
  }

  /** A write: through this master's holder, or forwarded to the holder. */
  private async writeOr<F extends keyof typeof WRITE_TYPES>(
    ctx: FopContext,
    fop: F,
    args: Parameters<Translator['call']>[2] & object,
    op: WriteOp,
  ): Promise<ResultOf[WriteTypeOf<F>]> {
    return this.viaHolder(ctx, fop, args, async () => {
      const id = this.nextId++;
      const p = new Promise<WriteResult>((resolve, reject) => this.waiters.set(id, { resolve, reject }));
      this.run((this.master as Master).propose(id, op, this.env.clock.nowMs(), false, ctx.origin));
      this.scheduleFlush();
      return resultOf(WRITE_TYPES[fop] as WriteTypeOf<F>, await p);
    });
  }

  /**
   * Runs `local` on this master's holder, or forwards the fop to the master holding the lock. A
   * forward that never left (`unavailable`: no connection to that master, which may have just
   * died) or that found no holder there (`not-holder`) was not applied: route again, until the
   * caller's deadline. Each hop gets two leases, so a dead holder costs one election, not the deadline.
   * A forward with an origin may have been applied when its connection broke (`unavailable` too:
   * the links are `resend-writes off`): routed again with the same origin, the next holder answers
   * it from its stored result if it was (DESIGN §3).
   */
  private async viaHolder<T>(ctx: FopContext, fop: FopName, args: unknown, local: (h: Holder) => Promise<T>): Promise<T> {
    // The common case first, without routing: this master holds the lock and is ready.
    const ready = this.master?.holder;
    if (ready?.isReady === true) return local(ready);
    const deadline = ctx.deadlineMs ?? this.env.clock.nowMs() + this.o['request-timeout-ms'];
    for (;;) {
      const route = await this.route({ deadlineMs: deadline });
      if (route.kind === 'local') return local(route.holder);
      this.forwarded++;
      const hop: FopContext = {
        deadlineMs: Math.min(deadline, this.env.clock.nowMs() + 2 * (this.locks as LocksTranslator).leaseDurationMs),
        ...(ctx.origin !== undefined ? { origin: ctx.origin } : {}),
      };
      try {
        return await (route.to.call as (f: FopName, c: FopContext, a: unknown) => Promise<T>)(fop, hop, args);
      } catch (e) {
        const retry = isCoordError(e) && (e.code === 'unavailable' || e.code === 'not-holder') && this.env.clock.nowMs() < deadline;
        if (!retry) throw e;
        await this.whenReady(Math.min(deadline, this.env.clock.nowMs() + 20));
      }
    }
  }

  /** Group commit: writes arriving in the same turn of the event loop share a batch. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const h = this.master?.holder;
      if (!h) return;
      this.run(this.master?.flushHolder(this.env.clock.nowMs()) ?? []);
      if (h.queued > 0 && !h.isDown) this.scheduleFlush();
    });
  }

  /**
   * A linearizable read on the holder (DESIGN §4.6): the read rev is its commitRev when the read
   * arrives, once the lease or a quorum round confirms it; the local brick serves the read once
   * it has applied that rev.
   */
  private async atReadRev<A extends GetArgs | RangeArgs>(a: A): Promise<A> {
    const readRev = await this.readRev();
    if (a.rev === undefined) return { ...a, rev: readRev, minRev: readRev };
    if (a.rev > readRev) throw coordError('future-rev', `rev ${a.rev} is above the current rev ${readRev}`, { rev: readRev });
    return { ...a, minRev: readRev };
  }

  private readRev(): Promise<Rev> {
    const m = this.master as Master;
    const h = m.holder;
    // Fast path: the lease holds, the read rev is the commit point now.
    if (h?.isReady === true && h.leaseHolds(this.env.clock.nowMs())) return Promise.resolve(h.commitRev);
    const id = this.nextId++;
    const p = new Promise<Rev>((resolve, reject) => this.readWaiters.set(id, { resolve, reject }));
    this.run(m.read(id, this.env.clock.nowMs()));
    return p;
  }

  private whenReady(deadlineMs: number): Promise<void> {
    if (this.stopping) return Promise.reject(coordError('closed', 'the volume is shutting down'));
    if (this.master?.holder?.isReady === true) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((r) => r !== ok);
        resolve();
      }, Math.max(0, deadlineMs - this.env.clock.nowMs()));
      const ok = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.readyWaiters.push(ok);
    });
  }

  /** The volume as this master sees it; a non-holder asks the holder for the per-brick view. */
  private async volumeStatus(ctx: FopContext, brick: BrickStatus | undefined): Promise<VolumeStatus> {
    const store = this.storage?.store;
    assert(store !== undefined, 'status of an initialised replicate');
    const m = this.master as Master;
    const h = m.holder;
    const now = this.env.clock.nowMs();
    if (!h) {
      const to = this.holderLink(now);
      if (to) {
        try {
          const s = await to.call('status', ctx, {});
          if (s.volume) return s.volume;
        } catch (e) {
          if (!isCoordError(e)) throw e;
        }
      }
    }
    const commitRev = h?.commitRev ?? store.commitRev;
    const views = new Map((h?.voterViews(now) ?? []).map((v) => [v.brickId, v]));
    // The members of the newest config (the holder's, else the local log's: DESIGN §4.1), and
    // the local brick even once a config removed it.
    const config = h?.membership.config ?? store.logConfig;
    const idOf = (b: string): string => brickIdOf(store.identity.volumeId, b);
    const roles = new Map<string, { role: 'voter' | 'learner'; path: string }>();
    for (const b of config.bricks) roles.set(idOf(b), { role: 'voter', path: b });
    for (const b of learnersOf(config)) roles.set(idOf(b), { role: 'learner', path: b });
    const ids = [...new Set([this.brickId, ...roles.keys()])];
    const bricks = ids.map((id) => {
      const isLocal = id === this.brickId;
      const v = views.get(id);
      // A remote brick's own figures are not asked for: what the holder knows of it stands in
      // (its durable last rev; the commit point it was told, at most that).
      const told = asRev(Math.min(v?.matched ?? 0, commitRev));
      const path = roles.get(id)?.path ?? this.brickPaths.get(id) ?? '';
      const base: BrickStatus = isLocal && brick ? brick : { brickId: id, path, lastEpoch: asEpoch(0), lastRev: v?.matched ?? asRev(0), commitRev: told, compactRev: store.compactRev, promisedEpoch: asEpoch(0) };
      const role: VolumeStatus['bricks'][number]['role'] = isLocal && h ? 'holder' : (roles.get(id)?.role ?? 'removed');
      // The holder knows what each voter has durably acked; elsewhere only the local brick is known.
      const lastRev = v ? v.matched : base.lastRev;
      return {
        ...base,
        // The brick as the config names it (host:path), the same from every master.
        path: roles.get(id)?.path ?? base.path,
        lastRev,
        role,
        lag: Math.max(0, commitRev - lastRev),
        ...(v ? { reachable: isLocal || v.reachable } : isLocal ? { reachable: true } : {}),
        ...(v?.needsSnapshot === true ? { needsSnapshot: true } : {}),
        ...withSnapshot(h ? this.snapshots.progress(id) : undefined),
      };
    });
    return {
      volumeId: store.identity.volumeId,
      volumeName: store.identity.volumeName,
      epoch: h?.epoch ?? store.promisedEpoch,
      holder: h ? this.holderId : (this.locks?.leaseHolder(now) ?? ''),
      commitRev,
      compactRev: store.compactRev,
      quorum: quorumOf(config),
      bricks,
    };
  }

  override dump(): Readonly<Record<string, unknown>> {
    return {
      holderId: this.holderId,
      brickId: this.brickId,
      master: this.master?.stats() ?? null,
      waitingWrites: this.waiters.size,
      waitingReads: this.readWaiters.size,
      forwarded: this.forwarded,
      snapshotHeals: this.snapshots.dump(),
      runLinks: [...this.runLinks.keys()].map((id) => ({ brick: this.brickPaths.get(id), address: this.brickAddresses.get(id) })),
      lastLinkError: this.lastLinkError ?? null,
      lastStepDown: this.lastStepDown ?? null,
    };
  }

  override async fini(): Promise<void> {
    this.stopping = true;
    if (this.ticker) clearInterval(this.ticker);
    this.snapshots.stopAll('the volume is shutting down', true);
    const h = this.master?.holder;
    if (h) this.run(this.master?.stepDown(coordError('closed', 'the volume is shutting down'), this.env.clock.nowMs()) ?? []);
    for (const r of this.readyWaiters.splice(0)) r();
    for (const [, w] of this.readWaiters) w.reject(coordError('closed', 'the volume is shutting down'));
    this.readWaiters.clear();
    await super.fini();
    // Run-time links are this translator's own children in all but name: it tears them down.
    await Promise.all([...this.runLinks.values()].map((l) => l.fini().catch(() => undefined)));
    this.runLinks.clear();
  }
}

/** A brick status's snapshot field, present only while a snapshot heal streams to it. */
function withSnapshot(p: SnapshotProgress | undefined): { snapshot?: SnapshotProgress } {
  return p === undefined ? {} : { snapshot: p };
}

const WRITE_TYPES = {
  put: 'put',
  delete: 'delete',
  txn: 'txn',
  compact: 'compact',
  configChange: 'config-change',
  sessionOpen: 'session-open',
  keepalive: 'keepalive',
  sessionClose: 'session-close',
} as const;
type WriteTypeOf<F extends keyof typeof WRITE_TYPES> = (typeof WRITE_TYPES)[F];

/** The result of a write of type `type` (the holder answers each op with its own type). */
type ResultOf = { [W in WriteResult as W['type']]: W['result'] };
function resultOf<T extends keyof ResultOf>(type: T, r: WriteResult): ResultOf[T] {
  assert(r.type === type, `a ${type} answers a ${type}, not a ${r.type}`);
  return r.result as ResultOf[T];
}

export const replicateClass: TranslatorClass = {
  type: 'cluster/replicate',
  // The replication engine, the session table and deadlines belong to the process (DESIGN §8).
  carried: true,
  options,
  subvolumes: { min: 1, max: 7 },
  create: (spec) => new ReplicateTranslator(spec),
};
