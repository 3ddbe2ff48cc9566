// The storage translator's shared part (storage/lmdb and storage/memory differ only in engine):
// it owns the brick's store and serves reads at a rev from the committed state. Writes reach
// the store only through features/locks (epoch-fenced appends).
import { coordError } from '../../src/common/errors.js';
import { asRev, type Rev } from '../../src/common/ids.js';
import { logPinRevsMax } from '../../src/common/limits.js';
import { readGet, readRange } from '../../replication/read.js';
import type { StateView } from '../../replication/state-view.js';
import type { BrickStore, BrickStoreOptions } from '../../store/index.js';
import type { VolumeConfig } from '../../store/types.js';
import type { BrickStatus, FopContext, GetArgs, ReadOptions } from '../fops.js';
import type { OptionSchema, RawOptionValue } from '../options.js';
import { Translator, type TranslatorSpec } from '../translator.js';

/** Options that define the volume's initial config (entry (0, 1)) and this brick's place in it. */
export const brickIdentityOptions = {
  'volume-name': { type: 'string', default: 'coordvol', description: 'the volume name (part of the volume id)' },
  brick: { type: 'string', description: 'this brick as host:path (default: localhost:<directory>)' },
  'volume-bricks': { type: 'string', description: 'every brick of the volume, host:path separated by spaces (default: this brick alone)' },
  'quorum-count': { type: 'int', min: 0, max: 7, default: 0, description: 'votes needed to commit (0: a majority of the bricks)' },
  join: {
    type: 'bool',
    default: false,
    description: "the brick joins the volume after its start (peer probe --as-master): created with the volume's initial config though not one of its bricks; a config entry adds it as a learner",
  },
  'log-retain-revs': { type: 'int', min: 1, max: 10_000_000, default: 10_000, description: 'log entries kept behind the commit point for heals' },
  'log-pin-revs': { type: 'int', min: 1, max: logPinRevsMax, default: logPinRevsMax, description: 'how far behind the commit point a lagging voter may hold the log; beyond it the voter gets a snapshot heal' },
  'checkpoint-entries': { type: 'int', min: 1, max: 1_000_000, default: 4096, description: 'committed entries held in memory before a checkpoint writes them to the tables' },
  'read-wait-ms': { type: 'time', min: 0, max: 600_000, default: 5_000, description: 'how long a read waits for the brick to reach its minRev' },
} as const satisfies OptionSchema;

/**
 * The identity options a graph switch lets change without touching the running brick: they only
 * say what entry (0, 1) is when the brick is created; after that the brick list and quorum live
 * in the log. A master writes the committed config back into them (DESIGN §8), and the
 * membership guard refuses an operator's edit of them before it gets here.
 */
const IDENTITY_LIVE_KEYS: readonly string[] = ['volume-name', 'brick', 'volume-bricks', 'quorum-count'];

export interface BrickIdentityValues {
  readonly 'volume-name': string;
  readonly brick?: string;
  readonly 'volume-bricks'?: string;
  readonly 'quorum-count': number;
  readonly join: boolean;
  readonly 'log-retain-revs': number;
  readonly 'log-pin-revs': number;
  readonly 'checkpoint-entries': number;
  readonly 'read-wait-ms': number;
}

/** The BrickStore options the identity options set (storage/lmdb and storage/memory alike). */
export function brickStoreOptionsOf(o: BrickIdentityValues): BrickStoreOptions & { readonly joining: boolean } {
  return { logRetainRevs: o['log-retain-revs'], logPinRevs: o['log-pin-revs'], checkpointEntries: o['checkpoint-entries'], joining: o.join };
}

export function volumeConfigOf(o: BrickIdentityValues, defaultBrick: string): { config: VolumeConfig; brick: string } {
  const brick = o.brick ?? defaultBrick;
  const bricks = (o['volume-bricks'] ?? brick).split(/\s+/).filter((b) => b.length > 0).sort();
  const majority = Math.floor(bricks.length / 2) + 1;
  const quorumCount = o['quorum-count'] === 0 ? majority : o['quorum-count'];
  return { config: { volumeName: o['volume-name'], bricks, quorumCount }, brick };
}

export abstract class StorageTranslator extends Translator {
  private storeV: BrickStore | undefined;
  private readonly commitWaiters = new Set<() => void>();
  protected abstract readonly readWaitMs: number;

  constructor(spec: TranslatorSpec) {
    super(spec);
    // Arguments were validated where they entered the graph (cluster/replicate, or
    // protocol/server for a brick served over the network): translators trust their parents.
    this.handlers.get = (ctx, args) => {
      // Fast path, no await: the brick already holds the rev the read needs.
      const rev = this.readyRev(args);
      if (rev !== undefined) return Promise.resolve({ rev, kv: readGet(this.viewAt(rev), args.key) });
      return this.readRev(ctx, args).then((r) => ({ rev: r, kv: readGet(this.viewAt(r), args.key) }));
    };
    this.handlers.range = async (ctx, args) => {
      const rev = this.readyRev(args) ?? (await this.readRev(ctx, args));
      return readRange(this.viewAt(rev), args, rev);
    };
    this.handlers.status = async () => ({ brick: this.brickStatus() });
  }

  /** The brick's store: features/locks writes through it, replicate reads its committed state. */
  get store(): BrickStore {
    if (!this.storeV) throw coordError('closed', `brick ${this.name} is not open`);
    return this.storeV;
  }

  protected setStore(s: BrickStore, initial: VolumeConfig, brick: string): void {
    this.storeV = s;
    this.initialV = { config: initial, brick };
  }

  private initialV: { readonly config: VolumeConfig; readonly brick: string } | undefined;

  /** The volume's initial config (entry (0, 1)) as the volfile gives it: the volume id is its hash. */
  get initialConfig(): VolumeConfig {
    if (!this.initialV) throw coordError('closed', `brick ${this.name} is not open`);
    return this.initialV.config;
  }

  /** This brick as host:path, the name configs give it. */
  get brickName(): string {
    if (!this.initialV) throw coordError('closed', `brick ${this.name} is not open`);
    return this.initialV.brick;
  }

  /** features/locks calls this after every durable write, to wake reads waiting for a rev. */
  notifyCommitted(): void {
    for (const w of [...this.commitWaiters]) w();
  }

  /** The committed state as of `rev`, as a StateView. */
  viewAt(rev: Rev): StateView {
    const s = this.store;
    return { get: (key) => s.get(key, rev), scan: (range) => s.scan(range, rev) };
  }

  /** A view of the latest durable commit point, re-evaluated on each call. */
  readonly latestView = (): StateView => this.viewAt(this.store.commitRev);

  /** The read rev when no wait is needed, else undefined. */
  private readyRev(a: GetArgs | ReadOptions): Rev | undefined {
    const s = this.store;
    if ((a.minRev ?? 0) > s.commitRev || (a.rev ?? 0) > s.commitRev) return undefined;
    const rev = a.rev ?? s.commitRev;
    if (rev < s.compactRev) throw coordError('compacted', `rev ${rev} is compacted (compactRev ${s.compactRev})`, { compactRev: s.compactRev });
    return rev;
  }

  /**
   * The rev a read is served at: the asked rev, or the brick's commitRev. A read whose minRev or
   * rev is above the commitRev waits for it until the deadline (serializable reads, DESIGN §3).
   */
  private async readRev(ctx: FopContext, a: GetArgs | ReadOptions): Promise<Rev> {
    const s = this.store;
    const need = Math.max(a.minRev ?? 0, a.rev ?? 0);
    if (need > s.commitRev) await this.waitForCommit(ctx, asRev(need));
    const rev = a.rev ?? s.commitRev;
    if (rev < s.compactRev) throw coordError('compacted', `rev ${rev} is compacted (compactRev ${s.compactRev})`, { compactRev: s.compactRev });
    return rev;
  }

  private waitForCommit(ctx: FopContext, rev: Rev): Promise<void> {
    const s = this.store;
    const deadline = ctx.deadlineMs ?? this.env.clock.nowMs() + this.readWaitMs;
    return new Promise((resolve, reject) => {
      const behind = (): Error => coordError('behind', `brick ${this.name} is at rev ${s.commitRev}, the read needs ${rev}`, { commitRev: s.commitRev, rev });
      const check = (): void => {
        if (s.commitRev >= rev) {
          done();
          resolve();
        } else if (this.env.clock.nowMs() >= deadline) {
          done();
          reject(behind());
        }
      };
      // The timer firing ends the wait: Node's timers run on a coarser clock than nowMs() and
      // may fire a fraction of a millisecond "early", when check() would find time left and,
      // with nothing to wake it again, wait forever.
      const timer = setTimeout(() => {
        done();
        if (s.commitRev >= rev) resolve();
        else reject(behind());
      }, Math.max(0, deadline - this.env.clock.nowMs()));
      const done = (): void => {
        clearTimeout(timer);
        this.commitWaiters.delete(check);
      };
      this.commitWaiters.add(check);
      check();
    });
  }


  brickStatus(): BrickStatus {
    const s = this.store;
    return {
      brickId: s.identity.brickId,
      path: this.brickPath(),
      lastEpoch: s.last.epoch,
      lastRev: s.last.rev,
      commitRev: s.commitRev,
      compactRev: s.compactRev,
      promisedEpoch: s.promisedEpoch,
      keys: s.countKeys(),
    };
  }

  protected abstract brickPath(): string;

  /** Identity options are taken (and change nothing); every other option is refused live. */
  override reconfigure(options: Readonly<Record<string, RawOptionValue>>): void {
    this.refuseOptions(options, IDENTITY_LIVE_KEYS);
    this.adoptOptions(options);
  }

  override dump(): Readonly<Record<string, unknown>> {
    return this.storeV ? { ...this.storeV.stats(), readsWaiting: this.commitWaiters.size } : { open: false };
  }

  override async fini(): Promise<void> {
    await super.fini();
    for (const w of [...this.commitWaiters]) w();
    await this.storeV?.close();
    this.storeV = undefined;
  }
}
