// cluster/replicate: the thin adapter over replication/ (DESIGN §2, §4). It takes the volume lock
// on its bricks, runs the Holder state machine, and carries out its outputs: appends wound to
// each brick's subvolume, replies to the callers waiting on writes. Reads are served from the
// local brick at the read rev. This issue's volume has one brick: the holder's own.
import { hostname } from 'node:os';
import { assert, unreachable } from '../../src/common/assert.js';
import { coordError, isCoordError, type CoordError } from '../../src/common/errors.js';
import { asEpoch, type Rev } from '../../src/common/ids.js';
import { Holder, type AppendMessage, type HolderOutput } from '../../replication/holder.js';
import type { WriteOp, WriteResult } from '../../replication/ops.js';
import {
  checkCompactArgs, checkDeleteArgs, checkGetArgs, checkPutArgs, checkRangeArgs, checkSessionIdArgs, checkSessionOpenArgs, checkTxnArgs,
} from '../../replication/validate.js';
import { sessionTickMs } from '../../src/common/limits.js';
import type { FopContext, GetArgs, RangeArgs, VolumeStatus } from '../fops.js';
import type { OptionSchema, OptionValues } from '../options.js';
import { StorageTranslator } from '../storage/brick.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';

const options = {
  'holder-id': { type: 'string', description: "this master's id in lock grants (default: host:pid)" },
  'lock-retry-ms': { type: 'time', min: 1, max: 60_000, default: 100, description: 'pause between lock attempts' },
  'request-timeout-ms': { type: 'time', min: 1, max: 3_600_000, default: 10_000, description: 'how long a request waits for a holder' },
} as const satisfies OptionSchema;
type Values = OptionValues<typeof options>;

interface Waiter {
  resolve(r: WriteResult): void;
  reject(e: CoordError): void;
}

export class ReplicateTranslator extends Translator {
  private readonly o: Values;
  private readonly holderId: string;
  private storage: StorageTranslator | undefined;
  private brickId = '';
  private holder: Holder | undefined;
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private flushScheduled = false;
  private readyWaiters: (() => void)[] = [];
  private stopping = false;
  private lockAttempts = 0;
  private lastStepDown: string | undefined;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.o = spec.options as unknown as Values;
    this.holderId = this.o['holder-id'] ?? `${hostname()}:${process.pid}`;
    this.handlers.put = async (ctx, a) => (checkPutArgs(a), resultOf('put', await this.write(ctx, { type: 'put', args: a })));
    this.handlers.delete = async (ctx, a) => (checkDeleteArgs(a), resultOf('delete', await this.write(ctx, { type: 'delete', args: a })));
    this.handlers.txn = async (ctx, a) => (checkTxnArgs(a), resultOf('txn', await this.write(ctx, { type: 'txn', args: a })));
    this.handlers.compact = async (ctx, a) => (checkCompactArgs(a), resultOf('compact', await this.write(ctx, { type: 'compact', args: a })));
    this.handlers.sessionOpen = async (ctx, a) => (checkSessionOpenArgs(a), resultOf('session-open', await this.write(ctx, { type: 'session-open', args: a })));
    this.handlers.keepalive = async (ctx, a) => (checkSessionIdArgs(a, 'keepalive'), resultOf('keepalive', await this.write(ctx, { type: 'keepalive', args: a })));
    this.handlers.sessionClose = async (ctx, a) => (checkSessionIdArgs(a, 'sessionClose'), resultOf('session-close', await this.write(ctx, { type: 'session-close', args: a })));
    this.handlers.sessions = async (ctx) => {
      const h = await this.currentHolder(ctx);
      return { rev: h.commitRev, sessions: h.sessionsInfo(this.env.clock.nowMs()) };
    };
    this.handlers.get = (ctx, a) => {
      checkGetArgs(a);
      // Fast path, no await: a ready holder gives the read rev at once.
      const h = this.holder;
      if (a.consistency !== 'serializable' && h?.isReady) {
        if (a.rev === undefined) return this.wind('get', ctx, { key: a.key, rev: h.commitRev });
        return this.wind('get', ctx, linearizable(h, a));
      }
      return this.readArgs(ctx, a).then((args) => this.wind('get', ctx, args));
    };
    this.handlers.range = async (ctx, a) => (checkRangeArgs(a), this.wind('range', ctx, await this.readArgs(ctx, a)));
    this.handlers.status = async (ctx) => {
      const below = await this.wind('status', ctx, {});
      return { ...below, volume: this.volumeStatus(below.brick) };
    };
  }

  override async init(): Promise<void> {
    const storage = this.children[0]?.find<StorageTranslator>('storage/lmdb') ?? this.children[0]?.find<StorageTranslator>('storage/memory');
    if (!(storage instanceof StorageTranslator)) {
      throw coordError('volfile-invalid', `${this.name} (cluster/replicate) needs its local brick (a storage translator) below its subvolume`);
    }
    this.storage = storage;
    this.brickId = storage.store.identity.brickId;
    const bricks = storage.store.config.bricks;
    if (bricks.length !== 1) {
      throw coordError('volfile-invalid', `${this.name}: the volume has ${bricks.length} bricks; this build replicates a single-brick volume only`);
    }
    await super.init();
    await this.acquire();
    await this.whenReady({ deadlineMs: this.env.clock.nowMs() + this.o['request-timeout-ms'] });
  }

  /** Takes the volume lock on the brick at an epoch above its promise, then starts a holder. */
  private async acquire(): Promise<void> {
    const child = this.children[0] as Translator;
    const store = this.storage?.store;
    assert(store !== undefined, 'replicate has its brick');
    while (!this.stopping) {
      this.lockAttempts++;
      const epoch = asEpoch(store.promisedEpoch + 1);
      const res = await child.call('lock', {}, { epoch, candidate: this.holderId });
      if (res.granted) {
        // With one brick the grant comes from the local brick: no time has passed since it arrived.
        const holder = new Holder({
          sclock: res.lastSclock + res.quietMs,
          sessionTtlMinMs: Math.max(2_000, 4 * res.leaseMs),
          epoch,
          voters: [res.brickId],
          local: res.brickId,
          quorum: res.config.quorumCount,
          last: res.last,
          commitRev: res.commitRev,
          compactRev: res.compactRev,
          base: (this.storage as StorageTranslator).latestView,
        });
        this.holder = holder;
        this.run(holder, holder.start(this.env.clock.nowMs()));
        this.startTicking(holder);
        return;
      }
      // Refused: an epoch was promised elsewhere, or a lease is running. Try again shortly.
      await new Promise((r) => setTimeout(r, this.o['lock-retry-ms']));
    }
  }

  /** Carries out a holder's outputs. Stale outputs of a replaced holder are dropped. */
  private run(holder: Holder, outputs: readonly HolderOutput[]): void {
    for (const o of outputs) {
      switch (o.kind) {
        case 'append':
          this.sendAppend(holder, o.to, o.msg);
          break;
        case 'reply': {
          const w = this.waiters.get(o.id);
          if (!w) break;
          this.waiters.delete(o.id);
          if (o.outcome.ok) w.resolve(o.outcome.result);
          else w.reject(o.outcome.error);
          break;
        }
        case 'ready':
          for (const r of this.readyWaiters.splice(0)) r();
          break;
        case 'read':
          break; // this translator serves linearizable reads at the holder's commitRev (one brick)
        case 'stepped-down':
          this.lastStepDown = o.reason.message;
          if (this.holder === holder) this.holder = undefined;
          if (!this.stopping) void this.acquire().catch(() => undefined);
          break;
        default:
          unreachable(o, 'holder output');
      }
    }
  }

  private sendAppend(holder: Holder, to: string, msg: AppendMessage): void {
    const child = this.children[0] as Translator;
    const sentAt = this.env.clock.nowMs();
    child.call('append', {}, { ...msg, sender: this.holderId }).then(
      (res) => this.run(holder, holder.onAppendReply(to, res, sentAt, this.env.clock.nowMs(), msg.entries.length)),
      (e: unknown) => this.run(holder, holder.onAppendFailure(to, isCoordError(e) ? e : coordError('internal', `append to ${to} failed: ${String(e)}`))),
    );
  }

  /** One write through the holder. */
  private async write(ctx: FopContext, op: WriteOp): Promise<WriteResult> {
    const holder = await this.currentHolder(ctx);
    const id = this.nextId++;
    const p = new Promise<WriteResult>((resolve, reject) => this.waiters.set(id, { resolve, reject }));
    this.run(holder, holder.propose(id, op, this.env.clock.nowMs()));
    this.scheduleFlush();
    return p;
  }

  /** The session timer (DESIGN §5): runs while this holder is the current one. */
  private startTicking(holder: Holder): void {
    const timer = setInterval(() => {
      if (this.holder !== holder || holder.isDown) {
        clearInterval(timer);
        return;
      }
      this.run(holder, holder.tick(this.env.clock.nowMs()));
    }, sessionTickMs);
    timer.unref();
  }

  /** Group commit: writes arriving in the same turn of the event loop share a batch. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const h = this.holder;
      if (!h) return;
      this.run(h, h.flush(this.env.clock.nowMs()));
      if (h.queued > 0 && !h.isDown) this.scheduleFlush();
    });
  }

  private async currentHolder(ctx: FopContext): Promise<Holder> {
    await this.whenReady(ctx);
    const h = this.holder;
    if (!h) throw coordError('no-quorum', `no holder for the volume${this.lastStepDown ? `: ${this.lastStepDown}` : ''}`);
    return h;
  }

  private whenReady(ctx: FopContext): Promise<void> {
    if (this.stopping) return Promise.reject(coordError('closed', 'the volume is shutting down'));
    if (this.holder?.isReady) return Promise.resolve();
    const deadline = ctx.deadlineMs ?? this.env.clock.nowMs() + this.o['request-timeout-ms'];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((r) => r !== ok);
        reject(coordError('timeout', `no holder became ready in time${this.lastStepDown ? ` (${this.lastStepDown})` : ''}`));
      }, Math.max(0, deadline - this.env.clock.nowMs()));
      const ok = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.readyWaiters.push(ok);
    });
  }

  /**
   * Linearizable reads are served at readRev = the holder's commitRev when the read arrives
   * (DESIGN §4.6; with one brick the holder's own durable append is the quorum). Serializable
   * reads go to the brick as they are: it serves its committed state, waiting for minRev.
   */
  private async readArgs<A extends GetArgs | RangeArgs>(ctx: FopContext, a: A): Promise<A> {
    if (a.consistency === 'serializable') return a;
    return linearizable(await this.currentHolder(ctx), a);
  }

  private volumeStatus(brick: import('../fops.js').BrickStatus | undefined): VolumeStatus {
    const store = this.storage?.store;
    assert(store !== undefined, 'status of an initialised replicate');
    const commitRev = this.holder?.commitRev ?? store.commitRev;
    return {
      volumeId: store.identity.volumeId,
      volumeName: store.identity.volumeName,
      epoch: this.holder?.epoch ?? store.promisedEpoch,
      holder: this.holder ? this.holderId : '',
      commitRev,
      compactRev: store.compactRev,
      quorum: store.config.quorumCount,
      bricks: brick ? [{ ...brick, role: this.holder ? 'holder' : 'voter', lag: Math.max(0, commitRev - brick.commitRev) }] : [],
    };
  }

  override dump(): Readonly<Record<string, unknown>> {
    return {
      holderId: this.holderId,
      brickId: this.brickId,
      holder: this.holder?.stats() ?? null,
      waitingWrites: this.waiters.size,
      lockAttempts: this.lockAttempts,
      lastStepDown: this.lastStepDown ?? null,
    };
  }

  override async fini(): Promise<void> {
    this.stopping = true;
    const h = this.holder;
    if (h) this.run(h, h.stepDown(coordError('closed', 'the volume is shutting down')));
    for (const r of this.readyWaiters.splice(0)) r();
    await super.fini();
  }
}

/** The result of a write of type `type` (the holder answers each op with its own type). */
type ResultOf = { [W in WriteResult as W['type']]: W['result'] };
function resultOf<T extends keyof ResultOf>(type: T, r: WriteResult): ResultOf[T] {
  assert(r.type === type, `a ${type} answers a ${type}, not a ${r.type}`);
  return r.result as ResultOf[T];
}

/** A linearizable read's args: at readRev = the holder's commitRev when the read arrives. */
function linearizable<A extends GetArgs | RangeArgs>(holder: Holder, a: A): A {
  const readRev: Rev = holder.commitRev;
  if (a.rev !== undefined) {
    if (a.rev > readRev) throw coordError('future-rev', `rev ${a.rev} is above the current rev ${readRev}`, { rev: readRev });
    return a;
  }
  return { ...a, rev: readRev };
}

export const replicateClass: TranslatorClass = {
  type: 'cluster/replicate',
  options,
  subvolumes: { min: 1, max: 1 },
  create: (spec) => new ReplicateTranslator(spec),
};
