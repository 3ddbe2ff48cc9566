// A brick's durable state (DESIGN §4 "Brick durable state"): identity, the promise, the log of
// entries, commitRev and the state applied up to it, with MVCC history for reads at older revs.
//
// Write path: a batch's synced transaction holds only the promise, log entries and commitRev —
// appends to the log, cheap to fsync. Committed entries are applied at once to an in-memory
// version overlay (versions.ts) and written to the state tables (current `kv`, history `hist`)
// by checkpoints that cover many batches, so a hot key's page is written once per checkpoint,
// not once per put. Durable state is (log, commitRev, checkpointRev, tables as of
// checkpointRev); opening a brick replays (checkpointRev, commitRev] from the log into the
// overlay. The log is never trimmed past the checkpoint.
//
// Reads at rev R ≤ commitRev: the overlay's latest version ≤ R if it has one, else the tables at
// min(R, checkpointRev). The current table is used only when no checkpoint is in flight and
// R ≥ checkpointRev; otherwise history, filtered by rev, which is exact either way.
import { assert } from '../src/common/assert.js';
import { coordError } from '../src/common/errors.js';
import { asEpoch, asRev, EPOCH_ZERO, type Epoch, type Rev } from '../src/common/ids.js';
import { compareKeys, RESERVED_PREFIX } from '../src/common/keys.js';
import { checkpointBytesMax, checkpointChunkRevs, checkpointEntriesDefault, logPinRevsMax, logRetainRevsDefault, recordCacheEntriesMax } from '../src/common/limits.js';
import { compactHistory } from './compaction.js';
import type { StorageEngine, TableName, WriteOp } from './engine.js';
import { histKey, shortKeyOf, sortLongGroups, splitHistKey, tableBounds, tableKey, tableKeyIsLong } from './keys.js';
import { asStoredVersion, decodeRecord, encodeRecord, encodeTombstone, isTombstone, putRecord, type StoredVersion } from './records.js';
import type { BrickIdentity, BrickWrite, Entry, KeyRange, KeyRecord, LogPosition, VolumeConfig } from './types.js';
import { VersionOverlay } from './versions.js';

export const STORE_FORMAT = 'coordvol-brick/2';

export interface BrickStoreOptions {
  /** Log entries kept behind commitRev for heals (local policy). */
  readonly logRetainRevs?: number;
  /** Committed entries held in memory before a checkpoint writes them to the tables. */
  readonly checkpointEntries?: number;
  /**
   * How far behind the commit point a lagging voter may pin the log (retainFrom); past it the
   * entries go and that voter needs a snapshot heal. Default logPinRevsMax; tests set it low to
   * force snapshot heals.
   */
  readonly logPinRevs?: number;
}

/** Log-group metadata (table `meta`), written with the log. */
interface LogMeta {
  format: string;
  identity: BrickIdentity;
  promisedEpoch: number;
  grantee: string;
  commitRev: number;
  /** The entry a snapshot install left as the log's base, when the log holds nothing older, with its session clock. */
  base: SnapshotBase;
  firstLogRev: number;
}

/** State-group metadata (table `smeta`), written with the state tables. */
interface StateMeta {
  volumeId: string;
  /** The tables hold the state as of this rev. */
  checkpointRev: number;
  compactRev: number;
  compactedThrough: number;
  active: 0 | 1;
  /** The config in force as of checkpointRev (the overlay's entries may change it). */
  config: VolumeConfig;
  /** Set by a snapshot install until its log half is written (completed on open). */
  install: SnapshotBase | null;
}

type Meta = LogMeta & StateMeta;
const LOG_META_KEYS: readonly (keyof LogMeta)[] = ['identity', 'promisedEpoch', 'grantee', 'commitRev', 'base', 'firstLogRev'];
const STATE_META_KEYS: readonly (keyof StateMeta)[] = ['volumeId', 'checkpointRev', 'compactRev', 'compactedThrough', 'active', 'config', 'install'];

export interface ScanItem {
  readonly key: string;
  readonly record: KeyRecord;
}

export class BrickStore {
  readonly identity: BrickIdentity;
  private promisedEpochV: Epoch;
  private granteeV: string;
  private lastV: LogPosition;
  private base: LogPosition;
  private baseSclockV: number | undefined;
  private firstLogRev: Rev;
  /** Durable; reads may be served at any rev up to it. */
  private commitRevV: Rev;
  /** Committed in a write that may still be in flight (applied to the overlay already). */
  private commitRevIssued: Rev;
  /** The tables hold state as of checkpointRev (durable) / checkpointIssued (in flight). */
  private checkpointRev: Rev;
  private checkpointIssued: Rev;
  private compactRevV: Rev;
  private compactRevIssued: Rev;
  private compactedThrough: Rev;
  private active: 0 | 1;
  private configV: VolumeConfig;
  private tableConfig: VolumeConfig;
  /** The newest config in the log, committed or not (DESIGN §4.1): what quorums are counted by. */
  private logConfigV: VolumeConfig;
  /** Every entry above checkpointRev: what checkpoints write and what the log serves fast. */
  private readonly entries = new Map<number, Entry>();
  private readonly overlay = new VersionOverlay();
  /** Value bytes held by the overlay (a checkpoint is due past checkpointBytesMax). */
  private overlayBytes = 0;
  /**
   * Current records (null: absent) as of commitRevIssued, so point reads at the latest rev skip
   * the overlay, LMDB and decoding. Used only when R ≥ commitRevIssued (nothing newer in flight).
   */
  private readonly cache = new RecordCache(recordCacheEntriesMax);
  private readonly logRetainRevs: number;
  private readonly logPinRevs: number;
  private retainFloor = Number.POSITIVE_INFINITY;
  private readonly checkpointEntries: number;
  private writesInFlight = 0;
  private checkpointing: Promise<void> | undefined;
  private compacting: Promise<void> | undefined;
  private exportsRunning = 0;
  private closed = false;
  private readonly closeHooks: (() => void)[] = [];
  private readonly committedListeners = new Set<(entries: readonly Entry[]) => void>();
  private readonly installedListeners = new Set<(s: LogPosition) => void>();

  private constructor(readonly engine: StorageEngine, meta: Meta, opts: BrickStoreOptions) {
    this.identity = meta.identity;
    this.promisedEpochV = asEpoch(meta.promisedEpoch);
    this.granteeV = meta.grantee;
    this.commitRevV = this.commitRevIssued = asRev(meta.commitRev);
    this.checkpointRev = this.checkpointIssued = asRev(meta.checkpointRev);
    this.compactRevV = this.compactRevIssued = asRev(meta.compactRev);
    this.compactedThrough = asRev(meta.compactedThrough);
    this.active = meta.active;
    this.configV = this.tableConfig = meta.config;
    this.base = { epoch: asEpoch(meta.base.epoch), rev: asRev(meta.base.rev) };
    this.baseSclockV = meta.base.sclock;
    this.firstLogRev = asRev(meta.firstLogRev);
    this.logRetainRevs = opts.logRetainRevs ?? logRetainRevsDefault;
    this.logPinRevs = opts.logPinRevs ?? logPinRevsMax;
    this.checkpointEntries = opts.checkpointEntries ?? checkpointEntriesDefault;
    assert(this.logRetainRevs >= 1 && this.checkpointEntries >= 1, 'retention and checkpoint sizes ≥ 1');
    assert(Number.isSafeInteger(this.logPinRevs) && this.logPinRevs >= 1 && this.logPinRevs <= logPinRevsMax, `logPinRevs ${this.logPinRevs} in [1, ${logPinRevsMax}]`);
    assert(this.checkpointRev <= this.commitRevV, `checkpointRev ${this.checkpointRev} ≤ commitRev ${this.commitRevV}`);
    assert(this.firstLogRev <= this.checkpointRev + 1, `the log reaches back to the checkpoint (first ${this.firstLogRev}, checkpoint ${this.checkpointRev})`);
    let last: LogPosition = this.base;
    for (const { value } of engine.range('log', { reverse: true, limit: 1 })) {
      const e = value as Entry;
      last = { epoch: e.epoch, rev: e.rev };
    }
    this.lastV = last;
    assert(this.commitRevV <= this.lastV.rev, `commitRev ${this.commitRevV} ≤ lastRev ${this.lastV.rev}`);
    // Recovery: entries above the checkpoint back into memory; committed ones into the overlay.
    for (const { value } of engine.range('log', { start: this.checkpointRev + 1 })) {
      const e = value as Entry;
      this.entries.set(e.rev, e);
      if (e.rev <= this.commitRevV) this.applyToOverlay(e);
    }
    this.compactRevV = this.compactRevIssued;
    this.logConfigV = this.configAt(this.lastV.rev);
  }

  /** Opens an existing brick; undefined when the engine holds no brick yet. */
  static async open(engine: StorageEngine, opts: BrickStoreOptions = {}): Promise<BrickStore | undefined> {
    const format = engine.get('meta', 'format');
    if (format === undefined) return undefined;
    if (format !== STORE_FORMAT) {
      throw coordError('store-invalid', `brick format is ${JSON.stringify(format)}, expected ${STORE_FORMAT}`);
    }
    let meta = readMeta(engine);
    if (meta.volumeId !== meta.identity.volumeId) {
      throw coordError('store-invalid', `the brick's state belongs to volume ${meta.volumeId}, its log to ${meta.identity.volumeId}: the store is corrupt`);
    }
    if (meta.install && meta.checkpointRev > meta.commitRev) {
      // A snapshot install stopped between its state half and its log half: finish it.
      await engine.write(logHalfOfInstall(engine, meta, meta.install));
      meta = readMeta(engine);
    }
    const store = new BrickStore(engine, meta, opts);
    if (store.compactedThrough < Math.min(store.compactRevV, store.checkpointRev)) store.startPhysicalCompaction();
    return store;
  }

  /**
   * Creates a brick: its identity and the initial config as entry (0, 1), committed (DESIGN §8:
   * every brick of a volume writes the same entry (0, 1) from the same volfile).
   */
  static async create(engine: StorageEngine, identity: BrickIdentity, config: VolumeConfig, opts: BrickStoreOptions = {}): Promise<BrickStore> {
    assert(engine.get('meta', 'format') === undefined, 'create on an empty engine');
    const first: Entry = { epoch: EPOCH_ZERO, rev: asRev(1), effects: [{ t: 'config', config }] };
    const state: StateMeta = { volumeId: identity.volumeId, checkpointRev: 1, compactRev: 0, compactedThrough: 0, active: 0, config, install: null };
    const log: LogMeta = { format: STORE_FORMAT, identity, promisedEpoch: 0, grantee: '', commitRev: 1, base: { epoch: 0, rev: 0 }, firstLogRev: 1 };
    // State first, then the log with the format marker: a brick exists once its log says so.
    await engine.write(Object.entries(state).map(([key, value]) => ({ table: 'smeta', op: 'put', key, value })));
    const ops: WriteOp[] = Object.entries(log).map(([key, value]) => ({ table: 'meta', op: 'put', key, value }));
    ops.push({ table: 'log', op: 'put', key: 1, value: first });
    await engine.write(ops);
    const store = await BrickStore.open(engine, opts);
    assert(store !== undefined, 'created brick opens');
    return store;
  }

  // --- durable replication state -------------------------------------------------------------

  get promisedEpoch(): Epoch {
    return this.promisedEpochV;
  }
  get grantee(): string {
    return this.granteeV;
  }
  /** The last entry held (including appends still in flight): (lastEpoch, lastRev). */
  get last(): LogPosition {
    return this.lastV;
  }
  /** Durable: reads may be served at any rev up to it. */
  get commitRev(): Rev {
    return this.commitRevV;
  }
  get compactRev(): Rev {
    return this.compactRevV;
  }
  /** The config in force at the latest commit. */
  get config(): VolumeConfig {
    return this.configV;
  }
  /**
   * The newest config in the log, committed or not (DESIGN §4.1: a config takes effect when
   * appended): the config of the last config entry up to `last`, or the committed one when the
   * log holds none above it. Lock grants carry it and the local master counts quorums by it.
   */
  get logConfig(): VolumeConfig {
    return this.logConfigV;
  }
  /**
   * The commit point including writes still in flight (their entries are applied in memory
   * already). features/locks decides on it, as on `last`, and replies only once every write
   * issued before its reply is durable.
   */
  get issuedCommitRev(): Rev {
    return this.commitRevIssued;
  }
  /** compactRev including writes still in flight (see issuedCommitRev). */
  get issuedCompactRev(): Rev {
    return this.compactRevIssued;
  }
  /** The oldest entry still in the log (heals from before it need a snapshot). */
  get firstRev(): Rev {
    return this.firstLogRev;
  }

  /** The entry at `rev`, if the log still holds it. */
  entry(rev: Rev): Entry | undefined {
    return this.entries.get(rev) ?? (this.engine.get('log', rev) as Entry | undefined);
  }

  /**
   * The session clock of the entry at `rev`: the entry's, or for the base a snapshot install left
   * (no entry there), the one the snapshot carried.
   */
  sclockAt(rev: Rev): number | undefined {
    return this.entry(rev)?.sclock ?? (rev === this.base.rev ? this.baseSclockV : undefined);
  }

  /** The epoch of the entry at `rev` (also for the snapshot base), if known. */
  epochAt(rev: Rev): Epoch | undefined {
    if (rev === this.base.rev) return this.base.epoch;
    return this.entry(rev)?.epoch;
  }

  // --- writes --------------------------------------------------------------------------------

  /**
   * One atomic, durable change (promise, truncation, append, commit). Checks are assertions:
   * the caller (features/locks, replication) decides; the store only refuses to break its
   * invariants. Resolves when durable; reads see the new commit point only then.
   */
  async write(w: BrickWrite): Promise<void> {
    assert(!this.closed, 'write on a closed brick');
    const ops: WriteOp[] = [];
    if (w.promise) {
      assert(w.promise.epoch >= this.promisedEpochV, `promise never falls: ${w.promise.epoch} < ${this.promisedEpochV}`);
      this.promisedEpochV = w.promise.epoch;
      this.granteeV = w.promise.grantee;
      ops.push(metaPut('promisedEpoch', w.promise.epoch), metaPut('grantee', w.promise.grantee));
    }
    if (w.truncateFrom !== undefined) this.issueTruncate(w.truncateFrom, ops);
    if (w.append && w.append.length > 0) this.issueAppend(w.append, ops);
    let newCommit: Rev | undefined;
    if (w.commitRev !== undefined && w.commitRev > this.commitRevIssued) {
      newCommit = w.commitRev;
      this.issueCommit(w.commitRev, ops);
    }
    this.issueLogTrim(ops);
    if (ops.length === 0) return;
    this.writesInFlight++;
    try {
      await this.engine.write(ops);
    } finally {
      this.writesInFlight--;
    }
    const committedBefore = this.commitRevV;
    if (newCommit !== undefined && newCommit > this.commitRevV) this.commitRevV = newCommit;
    if (this.compactRevIssued > this.compactRevV) this.compactRevV = this.compactRevIssued;
    if (this.commitRevV > committedBefore) this.emitCommitted(committedBefore);
    if (this.checkpointDue()) this.startCheckpoint();
  }

  /**
   * Calls `listener` each time commitRev advances (durably), with the newly committed entries in
   * rev order, after commitRev and compactRev are updated (features/watch serves its streams
   * from this). Listeners run inside the write's completion: they must not throw and should be
   * quick. A snapshot install moves commitRev without a call. Returns the unsubscribe.
   */
  onCommitted(listener: (entries: readonly Entry[]) => void): () => void {
    this.committedListeners.add(listener);
    return () => void this.committedListeners.delete(listener);
  }

  private emitCommitted(after: Rev): void {
    if (this.committedListeners.size === 0) return;
    const out: Entry[] = [];
    for (let r = after + 1; r <= this.commitRevV; r++) {
      const e = this.entries.get(r);
      assert(e !== undefined, `committed entry ${r} is held until it is checkpointed`);
      out.push(e);
    }
    for (const l of [...this.committedListeners]) l(out);
  }

  /**
   * A checkpoint is due when the overlay holds enough durable entries or bytes. Counted from the
   * durable commit point, which is all a checkpoint may cover: counting commits still in flight
   * would start empty checkpoints in a loop that never yields to the write it waits for.
   */
  private checkpointDue(): boolean {
    return this.commitRevV > this.checkpointIssued && (this.commitRevV - this.checkpointIssued >= this.checkpointEntries || this.overlayBytes >= checkpointBytesMax);
  }

  private issueTruncate(from: Rev, ops: WriteOp[]): void {
    assert(from > this.commitRevIssued, `truncate at ${from} must be above commitRev ${this.commitRevIssued}`);
    assert(from <= this.lastV.rev, `truncate at ${from} within the log (last ${this.lastV.rev})`);
    for (let r = from; r <= this.lastV.rev; r++) {
      ops.push({ table: 'log', op: 'del', key: r });
      this.entries.delete(r);
    }
    const prev = asRev(from - 1);
    const epoch = this.epochAt(prev);
    assert(epoch !== undefined, `entry ${prev} before a truncation is known`);
    this.lastV = { epoch, rev: prev };
    // A truncated config entry takes its config with it: the one in force at the new last entry rules.
    this.logConfigV = this.configAt(prev);
  }

  private issueAppend(entries: readonly Entry[], ops: WriteOp[]): void {
    let last = this.lastV;
    for (const e of entries) {
      assert(e.rev === last.rev + 1, `append is contiguous: entry ${e.rev} after ${last.rev}`);
      assert(e.epoch >= last.epoch, `epochs never fall in the log: ${e.epoch} after ${last.epoch}`);
      assert(e.epoch <= this.promisedEpochV, `entry epoch ${e.epoch} ≤ promisedEpoch ${this.promisedEpochV}`);
      ops.push({ table: 'log', op: 'put', key: e.rev, value: e });
      this.entries.set(e.rev, e);
      for (const fx of e.effects) if (fx.t === 'config') this.logConfigV = fx.config;
      last = { epoch: e.epoch, rev: e.rev };
    }
    this.lastV = last;
  }

  private issueCommit(commitRev: Rev, ops: WriteOp[]): void {
    assert(commitRev <= this.lastV.rev, `commitRev ${commitRev} ≤ lastRev ${this.lastV.rev}`);
    for (let r = this.commitRevIssued + 1; r <= commitRev; r++) {
      const e = this.entries.get(r);
      assert(e !== undefined, `entry ${r} is held before it commits`);
      this.applyToOverlay(e);
    }
    this.commitRevIssued = commitRev;
    ops.push(metaPut('commitRev', commitRev));
  }

  /** Applies a committed entry's effects in memory: overlay, cache, compactRev, config. */
  private applyToOverlay(e: Entry): void {
    for (const fx of e.effects) {
      switch (fx.t) {
        case 'put': {
          const rec = putRecord(fx, e.rev);
          this.overlay.add(fx.key, { rev: e.rev, record: rec });
          this.cache.set(fx.key, rec);
          this.overlayBytes += fx.value.byteLength + fx.key.length;
          break;
        }
        case 'del':
          this.overlay.add(fx.key, { rev: e.rev, record: null });
          this.cache.set(fx.key, null);
          break;
        case 'compact':
          assert(fx.rev > this.compactRevIssued && fx.rev < e.rev, `compact rev ${fx.rev} above ${this.compactRevIssued}, below its entry ${e.rev}`);
          this.compactRevIssued = fx.rev;
          break;
        case 'config':
          this.configV = fx.config;
          break;
        case 'epoch-start':
          break;
      }
    }
  }

  /**
   * Entries from `rev` on stay in the log beyond the retention window: the holder's replicate sets
   * it to what its slowest voter still needs (DESIGN §3: the log policy never drops entries a
   * lagging voter needs unless a snapshot replaces them), at most `logPinRevs` behind.
   */
  retainFrom(rev: Rev): void {
    this.retainFloor = Math.max(rev, this.commitRevIssued - this.logPinRevs);
  }

  /** Drops log entries older than the retention window, the checkpoint and the retain floor (bounded per write). */
  private issueLogTrim(ops: WriteOp[]): void {
    const keepFrom = Math.min(this.commitRevIssued - this.logRetainRevs + 1, this.checkpointRev + 1, this.retainFloor);
    if (keepFrom <= this.firstLogRev) return;
    const to = Math.min(keepFrom, this.firstLogRev + 1024);
    for (let r = this.firstLogRev; r < to; r++) ops.push({ table: 'log', op: 'del', key: r });
    this.firstLogRev = asRev(to);
    ops.push(metaPut('firstLogRev', to));
  }

  // --- checkpoints ---------------------------------------------------------------------------

  /** Writes committed entries to the tables in the background, one checkpoint at a time. */
  private startCheckpoint(): void {
    if (this.checkpointing || this.closed) return;
    this.checkpointing = this.checkpoint().finally(() => {
      this.checkpointing = undefined;
      if (!this.closed && this.checkpointDue()) this.startCheckpoint();
    });
  }

  /**
   * Writes every committed entry above the checkpoint to the tables, durably, in chunks of
   * checkpointChunkRevs: each chunk is a consistent checkpoint of its own, and log commits queued
   * behind a chunk wait for that chunk only.
   */
  async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing;
    const to = this.commitRevV; // durable commits only: a checkpoint never runs ahead of the log
    while (this.checkpointIssued < to && !this.closed) {
      await this.checkpointChunk(asRev(Math.min(to, this.checkpointIssued + checkpointChunkRevs)));
    }
  }

  private async checkpointChunk(to: Rev): Promise<void> {
    const ops: WriteOp[] = [];
    const kv = this.table('kv');
    const hist = this.table('hist');
    const latest = new Map<string, { tk: Buffer; rec: StoredVersion | undefined }>();
    let compactRev: Rev | undefined;
    let config: VolumeConfig | undefined;
    for (let r = this.checkpointIssued + 1; r <= to; r++) {
      const e = this.entries.get(r);
      assert(e !== undefined, `committed entry ${r} is held until it is checkpointed`);
      for (const fx of e.effects) {
        if (fx.t === 'put' || fx.t === 'del') {
          const tk = tableKey(fx.key);
          const long = tableKeyIsLong(tk) ? fx.key : undefined;
          const sv = fx.t === 'put' ? encodeRecord(putRecord(fx, e.rev), long) : encodeTombstone(e.rev, long);
          ops.push({ table: hist, op: 'put', key: histKey(tk, e.rev), value: sv });
          latest.set(fx.key, { tk, rec: fx.t === 'put' ? sv : undefined });
        } else if (fx.t === 'compact') compactRev = fx.rev;
        else if (fx.t === 'config') config = fx.config;
      }
    }
    // The current table gets each key's last version of the chunk once.
    for (const { tk, rec } of latest.values()) ops.push(rec ? { table: kv, op: 'put', key: tk, value: rec } : { table: kv, op: 'del', key: tk });
    ops.push(smetaPut('checkpointRev', to));
    if (compactRev !== undefined) ops.push(smetaPut('compactRev', compactRev));
    if (config !== undefined) ops.push(smetaPut('config', config));
    const from = this.checkpointIssued;
    this.checkpointIssued = to;
    await this.engine.write(ops);
    assert(this.checkpointRev === from, 'checkpoints complete in order');
    this.checkpointRev = to;
    if (config !== undefined) this.tableConfig = config;
    this.overlay.prune(to);
    for (let r = from + 1; r <= to; r++) {
      for (const fx of this.entries.get(r)?.effects ?? []) if (fx.t === 'put') this.overlayBytes -= fx.value.byteLength + fx.key.length;
      this.entries.delete(r);
    }
    if (compactRev !== undefined && this.compactedThrough < compactRev) this.startPhysicalCompaction();
  }

  private table(kind: 'kv' | 'hist', set: 0 | 1 = this.active): TableName {
    return `${kind}${set}` as TableName;
  }

  // --- reads at a rev ------------------------------------------------------------------------

  /** Reads are valid at revs in [compactRev, commitRev]; callers check and raise typed errors. */
  private checkReadRev(rev: Rev): void {
    assert(rev <= this.commitRevV, `read at ${rev} ≤ commitRev ${this.commitRevV}`);
    assert(rev >= this.compactRevV, `read at ${rev} ≥ compactRev ${this.compactRevV}`);
  }

  /** The rev the tables are read at, and whether the current table is exact for it. */
  private tableRev(rev: Rev): { at: Rev; current: boolean } {
    const at = rev < this.checkpointRev ? rev : this.checkpointRev;
    return { at, current: at === this.checkpointRev && this.checkpointIssued === this.checkpointRev };
  }

  get(key: string, rev: Rev): KeyRecord | undefined {
    this.checkReadRev(rev);
    const latestRev = rev >= this.commitRevIssued;
    if (latestRev) {
      const cached = this.cache.get(key);
      if (cached !== undefined) return cached ?? undefined;
    }
    const v = this.overlay.latest(key, rev);
    const rec = v ? (v.record ?? undefined) : this.tableGet(key, rev);
    if (latestRev) this.cache.set(key, rec ?? null);
    return rec;
  }

  private tableGet(key: string, rev: Rev): KeyRecord | undefined {
    const { at, current } = this.tableRev(rev);
    const tk = tableKey(key);
    if (current) {
      const v = this.engine.get(this.table('kv'), tk);
      if (v === undefined) return undefined;
      checkLongKey(v, key);
      return decodeRecord(v);
    }
    for (const { value } of this.engine.range(this.table('hist'), { start: histKey(tk, at), end: tk, reverse: true, limit: 1 })) {
      const sv = asStoredVersion(value);
      checkLongKey(sv, key);
      return isTombstone(sv) ? undefined : decodeRecord(sv);
    }
    return undefined;
  }

  /** Keys in [start, end) at `rev`, in key order: the tables merged with the overlay. Lazy. */
  *scan(range: KeyRange, rev: Rev): Generator<ScanItem> {
    this.checkReadRev(rev);
    const over = this.overlay.scan(range, rev);
    let o = over.next();
    for (const t of this.tableScan(range, rev)) {
      while (!o.done && compareKeys(o.value.key, t.key) < 0) {
        if (o.value.version.record) yield { key: o.value.key, record: o.value.version.record };
        o = over.next();
      }
      if (!o.done && o.value.key === t.key) {
        if (o.value.version.record) yield { key: t.key, record: o.value.version.record };
        o = over.next();
      } else {
        yield t;
      }
    }
    for (; !o.done; o = over.next()) if (o.value.version.record) yield { key: o.value.key, record: o.value.version.record };
  }

  private *tableScan(range: KeyRange, rev: Rev): Generator<ScanItem> {
    const { at, current } = this.tableRev(rev);
    const { lo, hi, exact } = tableBounds(range.start, range.end);
    const raw = current ? this.scanCurrent(lo, hi) : this.scanHistory(lo, hi, at);
    for (const item of sortLongGroups(raw, (i) => i.key, (i) => i.tk)) {
      if (!exact || item.long) {
        if (compareKeys(item.key, range.start) < 0) continue;
        if (range.end !== undefined && compareKeys(item.key, range.end) >= 0) continue;
      }
      yield { key: item.key, record: item.record };
    }
  }

  private *scanCurrent(lo: Buffer, hi: Buffer | undefined): Generator<RawItem> {
    const opts = hi === undefined ? { start: lo } : { start: lo, end: hi };
    for (const { key, value } of this.engine.range(this.table('kv'), opts)) {
      const tk = key as Buffer;
      const sv = value as StoredVersion;
      const long = tableKeyIsLong(tk);
      yield { tk, long, key: long ? (sv.k as string) : shortKeyOf(tk), record: decodeRecord(sv) };
    }
  }

  private *scanHistory(lo: Buffer, hi: Buffer | undefined, rev: Rev): Generator<RawItem> {
    const opts = hi === undefined ? { start: lo } : { start: lo, end: hi };
    let curTk: Buffer | undefined;
    let best: StoredVersion | undefined;
    const emit = (): RawItem | undefined => {
      if (!curTk || !best || isTombstone(best)) return undefined;
      const long = tableKeyIsLong(curTk);
      return { tk: curTk, long, key: long ? (best.k as string) : shortKeyOf(curTk), record: decodeRecord(best) };
    };
    for (const { key, value } of this.engine.range(this.table('hist'), opts)) {
      const { tk, rev: vrev } = splitHistKey(key as Buffer);
      if (!curTk || !tk.equals(curTk)) {
        const out = emit();
        if (out) yield out;
        curTk = Buffer.from(tk);
        best = undefined;
      }
      if (vrev <= rev) best = asStoredVersion(value);
    }
    const out = emit();
    if (out) yield out;
  }

  // --- compaction ----------------------------------------------------------------------------

  /** Removes history below the checkpointed compactRev, in the background. */
  private startPhysicalCompaction(): void {
    if (this.compacting || this.closed) return;
    this.compacting = (async () => {
      const stopped = (): boolean => this.closed;
      while (!this.closed) {
        // Only what the tables' own compactRev covers: the overlay's entries are not written yet.
        const through = asRev(Math.min(this.compactRevV, this.checkpointRev));
        if (this.compactedThrough >= through) return;
        if (this.exportsRunning > 0) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        await compactHistory(this.engine, this.table('hist'), through, stopped);
        if (this.closed) return;
        await this.engine.write([smetaPut('compactedThrough', through)]);
        this.compactedThrough = through;
      }
    })().finally(() => {
      this.compacting = undefined;
    });
  }

  /** Waits for background checkpoints and compaction (tests and shutdown). */
  async settle(): Promise<void> {
    while (this.checkpointing || this.compacting) {
      await this.checkpointing;
      await this.compacting;
    }
  }

  // --- snapshots (see snapshot.ts) -----------------------------------------------------------

  /**
   * @internal for snapshot.ts: checkpoints up to `rev` so the history table alone holds the state
   * at `rev`, and pauses physical compaction until released. `config` is the config in force at
   * `rev`, taken before anything is awaited (a checkpoint that runs on past `rev` meanwhile would
   * leave only the tables' later config); undefined if the log no longer tells (see configInLog).
   */
  async beginExport(rev: Rev): Promise<{ hist: TableName; compactRev: Rev; config: VolumeConfig | undefined; release: () => void }> {
    const config = rev >= this.checkpointRev ? this.configAt(rev) : this.configInLog(rev);
    this.exportsRunning++;
    let released = false;
    const release = (): void => {
      if (!released) this.exportsRunning--;
      released = true;
    };
    try {
      while (this.checkpointRev < rev) await this.checkpoint();
    } catch (e) {
      release();
      throw e;
    }
    return { hist: this.table('hist'), compactRev: this.compactRevV, config, release };
  }

  /**
   * The config in force at a rev below the checkpoint (an export of an older rev): the last config
   * entry the log holds at or below it; or, when the log holds no config entry in (rev,
   * checkpointRev], the tables' config, which was in force since before rev. Undefined when
   * neither tells (the log was trimmed past rev and a config entry followed it).
   */
  private configInLog(rev: Rev): VolumeConfig | undefined {
    for (const { value } of this.engine.range('log', { start: rev, end: this.firstLogRev - 1, reverse: true })) {
      for (const fx of [...(value as Entry).effects].reverse()) if (fx.t === 'config') return fx.config;
    }
    if (rev < this.firstLogRev - 1) return undefined;
    for (const { value } of this.engine.range('log', { start: rev + 1, end: this.checkpointRev + 1 })) {
      if ((value as Entry).effects.some((fx) => fx.t === 'config')) return undefined;
    }
    return this.tableConfig;
  }

  /**
   * The config in force at `rev` (the last config entry at or below it), for a rev at or above
   * the checkpoint: every entry above it is held in memory, committed or not.
   */
  private configAt(rev: Rev): VolumeConfig {
    assert(rev >= this.checkpointRev, `configAt(${rev}) at or above the checkpoint ${this.checkpointRev}`);
    let config = this.tableConfig;
    for (let r = this.checkpointRev + 1; r <= rev; r++) {
      for (const fx of this.entries.get(r)?.effects ?? []) if (fx.t === 'config') config = fx.config;
    }
    return config;
  }

  /** @internal for snapshot.ts: the table set a snapshot is built into. */
  get inactiveSet(): 0 | 1 {
    return this.active === 0 ? 1 : 0;
  }

  /**
   * @internal for snapshot.ts: swap in a snapshot built into the inactive table set, in one
   * durable write (DESIGN §4.8). Keeps the log after s if it holds entry (epoch_s, s).
   */
  async installSnapshot(s: LogPosition, compactRev: Rev, config: VolumeConfig, sclock?: number): Promise<void> {
    const base: SnapshotBase = sclock === undefined ? { epoch: s.epoch, rev: s.rev } : { epoch: s.epoch, rev: s.rev, sclock };
    assert(this.writesInFlight === 0, 'no write in flight during a snapshot install');
    assert(s.rev > this.commitRevV, `snapshot at ${s.rev} is above commitRev ${this.commitRevV}`);
    await this.settle();
    const target = this.inactiveSet;
    // State half first (marked `install`), then the log half; open() completes a half-done one.
    await this.engine.write([
      smetaPut('active', target),
      smetaPut('checkpointRev', s.rev),
      smetaPut('compactRev', compactRev),
      smetaPut('compactedThrough', compactRev),
      smetaPut('config', config),
      smetaPut('install', base),
    ]);
    const keepLog = this.epochAt(s.rev) === s.epoch && s.rev <= this.lastV.rev;
    await this.engine.write(logHalfOfInstall(this.engine, { firstLogRev: this.firstLogRev, lastRev: this.lastV.rev }, base));
    await this.engine.write([smetaPut('install', null)]);
    const old = this.active;
    this.active = target;
    this.commitRevV = this.commitRevIssued = this.checkpointRev = this.checkpointIssued = s.rev;
    this.compactRevV = this.compactRevIssued = this.compactedThrough = compactRev;
    this.configV = this.tableConfig = config;
    this.base = s;
    this.baseSclockV = sclock;
    this.firstLogRev = asRev(s.rev + 1);
    // Entries after s stay only with the log that holds them (logHalfOfInstall dropped the rest).
    for (const r of [...this.entries.keys()]) if (r <= s.rev || !keepLog) this.entries.delete(r);
    this.overlay.clear();
    this.overlayBytes = 0;
    this.cache.clear();
    if (!keepLog) this.lastV = s;
    this.logConfigV = this.configAt(this.lastV.rev);
    // Listeners (features/watch) learn of the jump before the old tables go: a history replay
    // reading them ends first.
    for (const l of [...this.installedListeners]) l(s);
    await this.engine.clear(this.table('kv', old));
    await this.engine.clear(this.table('hist', old));
  }

  /**
   * Calls `listener` after a snapshot install has moved the commit point to s (durably) without
   * any committed entry: onCommitted is not called for the revs it skipped, so a consumer of the
   * committed stream (features/watch) must treat revs up to s as gone. Returns the unsubscribe.
   */
  onSnapshotInstalled(listener: (s: LogPosition) => void): () => void {
    this.installedListeners.add(listener);
    return () => void this.installedListeners.delete(listener);
  }

  /** Number of live keys at the latest commit. */
  /** Client keys at the commit point (the volume's own records under /_coordvol/ are not counted). */
  countKeys(): number {
    let n = 0;
    for (const { key } of this.scan({ start: '', end: undefined }, this.commitRevV)) if (!key.startsWith(RESERVED_PREFIX)) n++;
    return n;
  }

  stats(): Record<string, unknown> {
    return {
      volumeId: this.identity.volumeId,
      brickId: this.identity.brickId,
      promisedEpoch: this.promisedEpochV,
      grantee: this.granteeV,
      lastEpoch: this.lastV.epoch,
      lastRev: this.lastV.rev,
      firstLogRev: this.firstLogRev,
      commitRev: this.commitRevV,
      checkpointRev: this.checkpointRev,
      compactRev: this.compactRevV,
      compactedThrough: this.compactedThrough,
      entriesInMemory: this.entries.size,
      overlayKeys: this.overlay.keys,
      writesInFlight: this.writesInFlight,
    };
  }

  /** Runs `f` after the store has closed (releases the directory lock). */
  onClose(f: () => void): void {
    this.closeHooks.push(f);
  }

  /** Checkpoints what is committed, then closes the engine. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.settle();
      if (this.writesInFlight === 0) await this.checkpoint();
      this.closed = true;
      await this.settle();
      await this.engine.close();
    } finally {
      this.closed = true;
      for (const f of this.closeHooks.splice(0)) f();
    }
  }
}

/** A bounded map that forgets its oldest insertions first. */
class RecordCache {
  private readonly m = new Map<string, KeyRecord | null>();
  constructor(private readonly max: number) {}
  get(key: string): KeyRecord | null | undefined {
    return this.m.get(key);
  }
  set(key: string, r: KeyRecord | null): void {
    if (this.m.size >= this.max && !this.m.has(key)) {
      const oldest = this.m.keys().next();
      if (!oldest.done) this.m.delete(oldest.value);
    }
    this.m.set(key, r);
  }
  clear(): void {
    this.m.clear();
  }
}

interface RawItem {
  readonly tk: Buffer;
  readonly long: boolean;
  readonly key: string;
  readonly record: KeyRecord;
}

function metaPut(key: keyof LogMeta, value: unknown): WriteOp {
  return { table: 'meta', op: 'put', key, value };
}

function smetaPut(key: keyof StateMeta, value: unknown): WriteOp {
  return { table: 'smeta', op: 'put', key, value };
}

function readMeta(engine: StorageEngine): Meta {
  const meta = {} as Record<string, unknown>;
  for (const { key, value } of engine.range('meta', {})) meta[String(key)] = value;
  for (const { key, value } of engine.range('smeta', {})) meta[String(key)] = value;
  for (const k of [...LOG_META_KEYS, ...STATE_META_KEYS]) {
    if (meta[k] === undefined) throw coordError('store-invalid', `brick metadata is missing ${k}: the store is corrupt`);
  }
  return meta as unknown as Meta;
}

/**
 * The log half of a snapshot install at s: the log keeps its entries after s if it holds entry
 * (epoch_s, s) (DESIGN §4.8), else it is dropped whole; commitRev and the base become s.
 */
/** A snapshot's base: (epoch_s, s) and, when entry s had one, its session clock (DESIGN §4.8, §5). */
interface SnapshotBase {
  readonly epoch: number;
  readonly rev: number;
  readonly sclock?: number;
}

function logHalfOfInstall(engine: StorageEngine, at: { readonly firstLogRev: number; readonly lastRev?: number }, s: SnapshotBase): WriteOp[] {
  let lastRev = at.lastRev;
  if (lastRev === undefined) {
    lastRev = s.rev;
    for (const { key } of engine.range('log', { reverse: true, limit: 1 })) lastRev = Math.max(s.rev, key as number);
  }
  const held = engine.get('log', s.rev) as Entry | undefined;
  const keepLog = held !== undefined && held.epoch === s.epoch;
  const dropTo = keepLog ? s.rev : lastRev;
  const ops: WriteOp[] = [];
  for (let r = at.firstLogRev; r <= dropTo; r++) ops.push({ table: 'log', op: 'del', key: r });
  ops.push(metaPut('commitRev', s.rev), metaPut('base', s), metaPut('firstLogRev', s.rev + 1));
  return ops;
}

function checkLongKey(v: unknown, key: string): void {
  const k = (v as StoredVersion).k;
  // A long key's table key is a hash; the stored full key must match (else: a hash collision).
  assert(k === undefined || k === key, `long key record matches its key`);
}
