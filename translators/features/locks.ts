// features/locks on a brick: the volume lock's brick side (DESIGN §4.2, §4.5). A thin async
// adapter over replication/brick.ts (the pure acceptor the simulator drives too): each request
// becomes a decision on the brick's state, whose write this translator makes durable through the
// storage translator below before it sends the reply.
//
// Ordering: BrickStore.write() updates the store's in-memory view (promise, last, entries,
// issued commit point, config) synchronously when it is called and makes the change durable
// later, and concurrent writes share one LMDB transaction and fsync (group commit). So a decision
// is made on that issued view and its write is issued at once, before any other request is
// decided; its reply waits until every write issued up to then is durable, even when the
// decision itself wrote nothing (a heartbeat or probe answered from entries still in flight
// must not claim them durable).
//
// Snapshot heals (DESIGN §4.8) arrive as chunks of a stream (snapshot-intake.ts). Installing one
// swaps the brick's state and log in several engine writes, so while it runs no other request
// is decided: every handler first waits for an install in progress to end (`exclusive`).
import { assert } from '../../src/common/assert.js';
import { coordError } from '../../src/common/errors.js';
import type { Epoch, Rev } from '../../src/common/ids.js';
import { BrickAcceptor, lastSclockOf, type BrickLog, type Decision, type SnapshotChunkReply } from '../../replication/brick.js';
import type { BrickStore } from '../../store/index.js';
import type { Entry, LogPosition, VolumeConfig } from '../../store/types.js';
import type {
  AppendArgs, AppendResult, FetchArgs, FetchResult, LockArgs, LockResult, ProbeArgs, ProbeResult, SnapshotChunkArgs, SnapshotChunkFopArgs, SnapshotChunkFopResult, SnapshotResult,
} from '../fops.js';
import type { OptionSchema, OptionValues } from '../options.js';
import { StorageTranslator } from '../storage/brick.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';
import { SnapshotIntake } from './snapshot-intake.js';

const options = {
  'lease-ms': { type: 'time', min: 10, max: 60_000, default: 500, description: 'how long an append or heartbeat keeps other candidates from locking' },
} as const satisfies OptionSchema;

/** The acceptor's view of a BrickStore: the issued state (see the ordering note above). */
class StoreLog implements BrickLog {
  constructor(private readonly storage: StorageTranslator) {}
  private get s(): BrickStore {
    return this.storage.store;
  }
  get brickId(): string {
    return this.s.identity.brickId;
  }
  get promisedEpoch(): Epoch {
    return this.s.promisedEpoch;
  }
  get grantee(): string {
    return this.s.grantee;
  }
  get last(): LogPosition {
    return this.s.last;
  }
  get commitRev(): Rev {
    return this.s.issuedCommitRev;
  }
  get compactRev(): Rev {
    return this.s.issuedCompactRev;
  }
  get firstRev(): Rev {
    return this.s.firstRev;
  }
  /** The newest config in the log, committed or not: what a grant carries (DESIGN §4.1, §4.2). */
  get config(): VolumeConfig {
    return this.s.logConfig;
  }
  epochAt(rev: Rev): Epoch | undefined {
    return this.s.epochAt(rev);
  }
  entry(rev: Rev): Entry | undefined {
    return this.s.entry(rev);
  }
  lastSclock(): number {
    // A snapshot's base has no entry but carries entry s's sclock (DESIGN §4.8). The fallback
    // reads the durable commit point: its epoch-starts are behind, never ahead.
    const sclock = this.s.sclockAt(this.s.last.rev);
    return sclock !== undefined ? sclock : lastSclockOf(undefined, this.storage.latestView());
  }
}

export class LocksTranslator extends Translator {
  private readonly leaseMs: number;
  private storage: StorageTranslator | undefined;
  private acceptor: BrickAcceptor | undefined;
  /** Settles once every write issued so far is durable (rejects, for good, if one failed). */
  private durable: Promise<void> = Promise.resolve();
  /** Monotonic ms of the latest append or heartbeat that set the lease record, or of the start. */
  private heardMs = 0;
  /** Settles when the snapshot install now running ends (undefined: none runs). */
  private installing: Promise<void> | undefined;
  private intake: SnapshotIntake | undefined;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.leaseMs = (spec.options as OptionValues<typeof options>)['lease-ms'];
    this.handlers.probe = (_ctx, args) => this.probe(args);
    this.handlers.lock = (_ctx, args) => this.lock(args);
    this.handlers.append = (_ctx, args) => this.append(args);
    this.handlers.fetch = (_ctx, args) => this.fetch(args);
    this.handlers.snapshotChunk = (_ctx, args) => this.snapshotChunk(args);
  }

  override async init(): Promise<void> {
    const child = this.children[0];
    if (!(child instanceof StorageTranslator)) {
      throw coordError('volfile-invalid', `${this.name} (features/locks) must sit directly on a storage translator, not ${child?.type ?? 'nothing'}`);
    }
    this.storage = child;
    // A restarted brick does not know whether a holder's lease is still running: the acceptor
    // waits one lease before granting (DESIGN §4 "Brick volatile state").
    const now = this.env.clock.nowMs();
    this.acceptor = new BrickAcceptor(new StoreLog(child), { leaseMs: this.leaseMs, nowMs: now });
    this.heardMs = now;
    this.intake = new SnapshotIntake({
      get store() {
        return child.store;
      },
      accept: (a) => this.acceptChunk(a),
      done: (a, installed) => this.snapshotDone(a, installed),
      exclusive: (f) => this.exclusive(f),
    });
    await super.init();
  }

  /** The brick's lease: the local master stands for election only once it has lapsed (DESIGN §4.2). */
  leaseLapsed(nowMs: number): boolean {
    return this.brick.leaseLapsed(nowMs);
  }

  /** The holder the brick's live lease record names, if any (whom a non-holder forwards to). */
  leaseHolder(nowMs: number): string | undefined {
    const l = this.acceptor?.lease;
    return l !== undefined && l.holder !== undefined && nowMs < l.deadlineMs ? l.holder : undefined;
  }

  get leaseDurationMs(): number {
    return this.leaseMs;
  }

  /**
   * When the brick last heard from a holder: the monotonic time (the graph clock's) of the latest
   * append or heartbeat at its promised epoch — one that set the lease record, refused for a prev
   * mismatch or not — or of its start if none came since. A grant does not count, and a rise of
   * promisedEpoch does not reset it: it says how long the brick's log may have been cut off from
   * the holder's (features/watch ends watches `moved` past 2·leaseMs, DESIGN §6).
   */
  lastHeardMs(): number {
    return this.heardMs;
  }

  // Handlers are async so that an acceptor assertion (a malformed message) rejects the call
  // rather than throwing out of it.
  private get brick(): BrickAcceptor {
    assert(this.acceptor !== undefined, 'locks is initialised');
    return this.acceptor;
  }

  private async probe(a: ProbeArgs): Promise<ProbeResult> {
    while (this.installing) await this.installing;
    return this.carry({ reply: this.brick.probe(a, this.env.clock.nowMs()) });
  }

  private async lock(a: LockArgs): Promise<LockResult> {
    while (this.installing) await this.installing;
    return this.carry(this.brick.lock(a, this.env.clock.nowMs()));
  }

  private async append(m: AppendArgs): Promise<AppendResult> {
    while (this.installing) await this.installing;
    const now = this.env.clock.nowMs();
    const before = this.brick.lease;
    const decision = this.brick.append(m, now);
    // The acceptor makes a new lease record for every append it takes as the holder's (epoch ≥
    // promisedEpoch) and leaves it alone for a fenced one.
    const after = this.brick.lease;
    if (after !== undefined && after !== before) this.heardMs = now;
    const res = await this.carry(decision);
    this.storage?.notifyCommitted(); // wake reads waiting for a rev this append committed
    return res;
  }

  private async fetch(a: FetchArgs): Promise<FetchResult> {
    while (this.installing) await this.installing;
    return this.carry({ reply: this.brick.fetch(a) });
  }

  private async snapshotChunk(a: SnapshotChunkFopArgs): Promise<SnapshotChunkFopResult> {
    while (this.installing) await this.installing;
    assert(this.intake !== undefined, 'locks is initialised');
    return this.intake.chunk(a);
  }

  /** A chunk is fenced and sets the lease like an append (DESIGN §4.8): it counts as hearing from the holder. */
  private acceptChunk(a: SnapshotChunkArgs): Promise<SnapshotChunkReply> {
    const now = this.env.clock.nowMs();
    const before = this.brick.lease;
    const decision = this.brick.snapshotChunk(a, now);
    const after = this.brick.lease;
    if (after !== undefined && after !== before) this.heardMs = now;
    return this.carry(decision);
  }

  private async snapshotDone(a: SnapshotChunkArgs, installed: boolean): Promise<SnapshotResult> {
    const res = await this.carry({ reply: this.brick.snapshotDone(a, installed, this.env.clock.nowMs()) });
    if (installed) this.storage?.notifyCommitted(); // wake reads waiting for a rev the install reached
    return res;
  }

  /**
   * Runs `f` (a snapshot install) while no other request is decided: every handler waits for
   * `installing` to clear, in the same synchronous step as its decision (a helper that awaited
   * would leave a gap in which an install could start). Every write issued before is durable
   * first, so the install finds none in flight.
   */
  private async exclusive<T>(f: () => Promise<T>): Promise<T> {
    while (this.installing) await this.installing;
    let release = (): void => undefined;
    this.installing = new Promise<void>((r) => (release = r));
    try {
      await this.durable;
      return await f();
    } finally {
      this.installing = undefined;
      release();
    }
  }

  /**
   * Issues the decision's write now (BrickStore.write moves the in-memory view synchronously, so
   * the next decision sees it), then replies once it and every earlier write are durable.
   */
  private async carry<R>(d: Decision<R>): Promise<R> {
    if (d.write) {
      assert(this.storage !== undefined, 'locks is initialised');
      const issued = this.storage.store.write(d.write);
      this.durable = Promise.all([this.durable, issued]).then(() => undefined);
    }
    await this.durable;
    return d.reply;
  }

  override async fini(): Promise<void> {
    await this.intake?.close();
    await super.fini();
  }

  override dump(): Readonly<Record<string, unknown>> {
    const now = this.env.clock.nowMs();
    const heardAgoMs = Math.max(0, now - this.heardMs);
    if (this.acceptor && this.storage?.isUp) return { ...this.acceptor.dump(now), heardAgoMs, ...this.intake?.dump() };
    const stats = this.acceptor?.stats(now) ?? { lease: null, grants: 0, fencedAppends: 0, fencedFetches: 0, mismatchedAppends: 0 };
    return { promisedEpoch: undefined, grantee: undefined, leaseMs: this.leaseMs, ...stats, heardAgoMs };
  }
}

export const locksClass: TranslatorClass = {
  type: 'features/locks',
  options,
  // The lease and the acceptor's state: a graph switch keeps them. lease-ms is refused live (the
  // default reconfigure): the holder and the brick must agree on the lease for the whole epoch.
  carried: true,
  subvolumes: { min: 1, max: 1 },
  create: (spec) => new LocksTranslator(spec),
};
