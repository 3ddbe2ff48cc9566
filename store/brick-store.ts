// A brick's durable state (DESIGN §4 "Brick durable state"): identity, the promise, the log of
// entries, commitRev and the state applied up to it, with MVCC history for reads at older revs.
//
// Visibility: LMDB makes a commit visible before it is durable, and a write in flight is not
// visible yet. So the store tracks two commit points: `commitRev` (applied and durable: what
// reads may use) and `commitRevIssued` (applied in a write that may still be in flight). A read at
// rev R uses the current-state table only when R ≥ commitRevIssued (nothing newer can be
// half-visible); otherwise it uses the history table, filtered by rev, which is exact either way.
import { assert } from '../src/common/assert.js';
import { coordError } from '../src/common/errors.js';
import { asEpoch, asRev, EPOCH_ZERO, type Epoch, type Rev } from '../src/common/ids.js';
import { compareKeys } from '../src/common/keys.js';
import { logRetainRevsDefault, recordCacheEntriesMax } from '../src/common/limits.js';
import type { StorageEngine, TableName, WriteOp } from './engine.js';
import { histKey, shortKeyOf, sortLongGroups, splitHistKey, tableBounds, tableKey, tableKeyIsLong } from './keys.js';
import { asStoredVersion, decodeRecord, encodeRecord, encodeTombstone, isTombstone, type StoredVersion } from './records.js';
import type { BrickIdentity, BrickWrite, Entry, KeyRange, KeyRecord, LogPosition, VolumeConfig } from './types.js';

export const STORE_FORMAT = 'coordvol-brick/1';

export interface BrickStoreOptions {
  /** Log entries kept behind commitRev for heals (local policy). */
  readonly logRetainRevs?: number;
}

interface Meta {
  format: string;
  identity: BrickIdentity;
  promisedEpoch: number;
  grantee: string;
  commitRev: number;
  compactRev: number;
  compactedThrough: number;
  active: 0 | 1;
  config: VolumeConfig;
  /** The entry a snapshot install left as the log's base, when the log holds nothing older. */
  base: { epoch: number; rev: number };
  firstLogRev: number;
}

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
  private firstLogRev: Rev;
  private commitRevV: Rev;
  private commitRevIssued: Rev;
  private compactRevV: Rev;
  private compactRevIssued: Rev;
  private compactedThrough: Rev;
  private active: 0 | 1;
  private configV: VolumeConfig;
  /** Entries appended but not yet applied, so applying never reads an in-flight write. */
  private readonly unapplied = new Map<number, Entry>();
  /**
   * Current records (null: absent) as of commitRevIssued, updated where entries are applied, so
   * point reads at the current rev skip LMDB and decoding. Valid only when no applied write is
   * in flight (currentTableExact), like the current-state table itself.
   */
  private readonly cache = new RecordCache(recordCacheEntriesMax);
  private readonly logRetainRevs: number;
  private writesInFlight = 0;
  private compacting: Promise<void> | undefined;
  private exportsRunning = 0;
  private closed = false;
  private readonly closeHooks: (() => void)[] = [];

  private constructor(readonly engine: StorageEngine, meta: Meta, opts: BrickStoreOptions) {
    this.identity = meta.identity;
    this.promisedEpochV = asEpoch(meta.promisedEpoch);
    this.granteeV = meta.grantee;
    this.commitRevV = this.commitRevIssued = asRev(meta.commitRev);
    this.compactRevV = this.compactRevIssued = asRev(meta.compactRev);
    this.compactedThrough = asRev(meta.compactedThrough);
    this.active = meta.active;
    this.configV = meta.config;
    this.base = { epoch: asEpoch(meta.base.epoch), rev: asRev(meta.base.rev) };
    this.firstLogRev = asRev(meta.firstLogRev);
    this.logRetainRevs = opts.logRetainRevs ?? logRetainRevsDefault;
    assert(this.logRetainRevs >= 1, 'logRetainRevs ≥ 1');
    let last: LogPosition = this.base;
    for (const { value } of engine.range('log', { reverse: true, limit: 1 })) {
      const e = value as Entry;
      last = { epoch: e.epoch, rev: e.rev };
    }
    this.lastV = last;
    assert(this.commitRevV <= this.lastV.rev, `commitRev ${this.commitRevV} ≤ lastRev ${this.lastV.rev}`);
    for (const { value } of engine.range('log', { start: this.commitRevV + 1 })) {
      const e = value as Entry;
      this.unapplied.set(e.rev, e);
    }
  }

  /** Opens an existing brick; undefined when the engine holds no brick yet. */
  static open(engine: StorageEngine, opts: BrickStoreOptions = {}): BrickStore | undefined {
    const format = engine.get('meta', 'format');
    if (format === undefined) return undefined;
    if (format !== STORE_FORMAT) {
      throw coordError('store-invalid', `brick format is ${JSON.stringify(format)}, expected ${STORE_FORMAT}`);
    }
    const meta = {} as Record<string, unknown>;
    for (const { key, value } of engine.range('meta', {})) meta[String(key)] = value;
    for (const k of ['identity', 'promisedEpoch', 'grantee', 'commitRev', 'compactRev', 'compactedThrough', 'active', 'config', 'base', 'firstLogRev']) {
      if (meta[k] === undefined) throw coordError('store-invalid', `brick metadata is missing ${k}: the store is corrupt`);
    }
    const store = new BrickStore(engine, meta as unknown as Meta, opts);
    if (store.compactedThrough < store.compactRevV) store.startPhysicalCompaction();
    return store;
  }

  /**
   * Creates a brick: its identity and the initial config as entry (0, 1), committed (DESIGN §8:
   * every brick of a volume writes the same entry (0, 1) from the same volfile).
   */
  static async create(engine: StorageEngine, identity: BrickIdentity, config: VolumeConfig, opts: BrickStoreOptions = {}): Promise<BrickStore> {
    assert(engine.get('meta', 'format') === undefined, 'create on an empty engine');
    const first: Entry = { epoch: EPOCH_ZERO, rev: asRev(1), effects: [{ t: 'config', config }] };
    const meta: Meta = {
      format: STORE_FORMAT,
      identity,
      promisedEpoch: 0,
      grantee: '',
      commitRev: 1,
      compactRev: 0,
      compactedThrough: 0,
      active: 0,
      config,
      base: { epoch: 0, rev: 0 },
      firstLogRev: 1,
    };
    const ops: WriteOp[] = Object.entries(meta).map(([key, value]) => ({ table: 'meta', op: 'put', key, value }));
    ops.push({ table: 'log', op: 'put', key: 1, value: first });
    await engine.write(ops);
    const store = BrickStore.open(engine, opts);
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
  /** Applied and durable: reads may be served at any rev up to it. */
  get commitRev(): Rev {
    return this.commitRevV;
  }
  get compactRev(): Rev {
    return this.compactRevV;
  }
  get config(): VolumeConfig {
    return this.configV;
  }
  /** The oldest entry still in the log (heals from before it need a snapshot). */
  get firstRev(): Rev {
    return this.firstLogRev;
  }

  /** The entry at `rev`, if the log still holds it. */
  entry(rev: Rev): Entry | undefined {
    const pending = this.unapplied.get(rev);
    if (pending) return pending;
    return this.engine.get('log', rev) as Entry | undefined;
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
   * invariants. Resolves when durable; state for reads advances only then.
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
    if (newCommit !== undefined && newCommit > this.commitRevV) this.commitRevV = newCommit;
    if (this.compactRevIssued > this.compactRevV) {
      this.compactRevV = this.compactRevIssued;
      this.startPhysicalCompaction();
    }
  }

  private issueTruncate(from: Rev, ops: WriteOp[]): void {
    assert(from > this.commitRevIssued, `truncate at ${from} must be above commitRev ${this.commitRevIssued}`);
    assert(from <= this.lastV.rev, `truncate at ${from} within the log (last ${this.lastV.rev})`);
    for (let r = from; r <= this.lastV.rev; r++) {
      ops.push({ table: 'log', op: 'del', key: r });
      this.unapplied.delete(r);
    }
    const prev = asRev(from - 1);
    const epoch = this.epochAt(prev);
    assert(epoch !== undefined, `entry ${prev} before a truncation is known`);
    this.lastV = { epoch, rev: prev };
  }

  private issueAppend(entries: readonly Entry[], ops: WriteOp[]): void {
    let last = this.lastV;
    for (const e of entries) {
      assert(e.rev === last.rev + 1, `append is contiguous: entry ${e.rev} after ${last.rev}`);
      assert(e.epoch >= last.epoch, `epochs never fall in the log: ${e.epoch} after ${last.epoch}`);
      assert(e.epoch <= this.promisedEpochV, `entry epoch ${e.epoch} ≤ promisedEpoch ${this.promisedEpochV}`);
      ops.push({ table: 'log', op: 'put', key: e.rev, value: e });
      this.unapplied.set(e.rev, e);
      last = { epoch: e.epoch, rev: e.rev };
    }
    this.lastV = last;
  }

  private issueCommit(commitRev: Rev, ops: WriteOp[]): void {
    assert(commitRev <= this.lastV.rev, `commitRev ${commitRev} ≤ lastRev ${this.lastV.rev}`);
    for (let r = this.commitRevIssued + 1; r <= commitRev; r++) {
      const e = this.unapplied.get(r);
      assert(e !== undefined, `entry ${r} is held before it commits`);
      this.applyEntry(e, ops);
      this.unapplied.delete(r);
    }
    this.commitRevIssued = commitRev;
    ops.push(metaPut('commitRev', commitRev));
  }

  private applyEntry(e: Entry, ops: WriteOp[]): void {
    const kv = this.table('kv');
    const hist = this.table('hist');
    for (const fx of e.effects) {
      switch (fx.t) {
        case 'put': {
          const tk = tableKey(fx.key);
          const long = tableKeyIsLong(tk) ? fx.key : undefined;
          const kr = { value: fx.value, createRev: fx.createRev, modRev: e.rev, version: fx.version, session: fx.session };
          this.cache.set(fx.key, kr);
          const rec = encodeRecord(kr, long);
          ops.push({ table: kv, op: 'put', key: tk, value: rec }, { table: hist, op: 'put', key: histKey(tk, e.rev), value: rec });
          break;
        }
        case 'del': {
          const tk = tableKey(fx.key);
          const long = tableKeyIsLong(tk) ? fx.key : undefined;
          this.cache.set(fx.key, null);
          ops.push({ table: kv, op: 'del', key: tk }, { table: hist, op: 'put', key: histKey(tk, e.rev), value: encodeTombstone(e.rev, long) });
          break;
        }
        case 'compact':
          assert(fx.rev > this.compactRevIssued && fx.rev < e.rev, `compact rev ${fx.rev} above ${this.compactRevIssued}, below its entry ${e.rev}`);
          this.compactRevIssued = fx.rev;
          ops.push(metaPut('compactRev', fx.rev));
          break;
        case 'config':
          this.configV = fx.config;
          ops.push(metaPut('config', fx.config));
          break;
        case 'epoch-start':
          break;
      }
    }
  }

  /** Drops log entries older than the retention window behind commitRev (bounded per write). */
  private issueLogTrim(ops: WriteOp[]): void {
    const keepFrom = this.commitRevIssued - this.logRetainRevs + 1;
    if (keepFrom <= this.firstLogRev) return;
    const to = Math.min(keepFrom, this.firstLogRev + 1024);
    for (let r = this.firstLogRev; r < to; r++) ops.push({ table: 'log', op: 'del', key: r });
    this.firstLogRev = asRev(to);
    ops.push(metaPut('firstLogRev', to));
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

  private currentTableExact(rev: Rev): boolean {
    return rev >= this.commitRevIssued;
  }

  get(key: string, rev: Rev): KeyRecord | undefined {
    this.checkReadRev(rev);
    if (this.currentTableExact(rev)) {
      const cached = this.cache.get(key);
      if (cached !== undefined) return cached ?? undefined;
      const v = this.engine.get(this.table('kv'), tableKey(key));
      const rec = v === undefined ? undefined : (checkLongKey(v, key), decodeRecord(v));
      this.cache.set(key, rec ?? null);
      return rec;
    }
    const tk = tableKey(key);
    for (const { value } of this.engine.range(this.table('hist'), { start: histKey(tk, rev), end: tk, reverse: true, limit: 1 })) {
      const sv = asStoredVersion(value);
      checkLongKey(sv, key);
      return isTombstone(sv) ? undefined : decodeRecord(sv);
    }
    return undefined;
  }

  /** Keys in [start, end) at `rev`, in key order. Lazy: stop iterating to stop reading. */
  *scan(range: KeyRange, rev: Rev): Generator<ScanItem> {
    this.checkReadRev(rev);
    const { lo, hi, exact } = tableBounds(range.start, range.end);
    const raw = this.currentTableExact(rev) ? this.scanCurrent(lo, hi) : this.scanHistory(lo, hi, rev);
    const sorted = sortLongGroups(raw, (i) => i.key, (i) => i.tk);
    for (const item of sorted) {
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

  /**
   * Removes history the compact entry made unreachable, after that entry is durable. Versions of
   * one key go in one batch, older ones first, so a concurrent read at a rev ≥ compactRev always
   * finds the version it needs.
   */
  private startPhysicalCompaction(): void {
    if (this.compacting || this.closed) return;
    this.compacting = (async () => {
      while (this.compactedThrough < this.compactRevV && !this.closed) {
        if (this.exportsRunning > 0) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const through = this.compactRevV;
        await this.compactHistory(through);
        if (this.closed) return;
        await this.engine.write([metaPut('compactedThrough', through)]);
        this.compactedThrough = through;
      }
    })().finally(() => {
      this.compacting = undefined;
    });
  }

  /** Scans history in windows of whole keys (about 4096 versions), deleting as it goes. */
  private async compactHistory(through: Rev): Promise<void> {
    const hist = this.table('hist');
    let start: Buffer | undefined;
    for (;;) {
      const batch: WriteOp[] = [];
      let curTk: Buffer | undefined;
      let versions: { hk: Buffer; rev: Rev; dead: boolean }[] = [];
      let seen = 0;
      let nextStart: Buffer | undefined;
      const flush = (): void => {
        let live = -1;
        for (let i = 0; i < versions.length; i++) if ((versions[i] as { rev: Rev }).rev <= through) live = i;
        if (live < 0) return;
        for (let i = 0; i < live; i++) batch.push({ table: hist, op: 'del', key: (versions[i] as { hk: Buffer }).hk });
        if ((versions[live] as { dead: boolean }).dead) batch.push({ table: hist, op: 'del', key: (versions[live] as { hk: Buffer }).hk });
      };
      for (const { key, value } of this.engine.range(hist, start === undefined ? {} : { start })) {
        const hk = Buffer.from(key as Buffer);
        const { tk, rev } = splitHistKey(hk);
        if (!curTk || !tk.equals(curTk)) {
          if (seen >= 4096) {
            nextStart = tk;
            break;
          }
          flush();
          curTk = tk;
          versions = [];
        }
        versions.push({ hk, rev, dead: isTombstone(asStoredVersion(value)) });
        seen++;
      }
      if (!nextStart) flush();
      if (batch.length > 0) await this.engine.write(batch);
      if (!nextStart || this.closed) return;
      start = nextStart;
    }
  }

  /** Waits for background compaction (tests and shutdown). */
  async settle(): Promise<void> {
    while (this.compacting) await this.compacting;
  }

  // --- snapshots (see snapshot.ts) -----------------------------------------------------------

  /** @internal for snapshot.ts */
  beginExport(): { hist: TableName; release: () => void } {
    this.exportsRunning++;
    let released = false;
    return {
      hist: this.table('hist'),
      release: () => {
        if (!released) this.exportsRunning--;
        released = true;
      },
    };
  }

  /** @internal for snapshot.ts: the table set a snapshot is built into. */
  get inactiveSet(): 0 | 1 {
    return this.active === 0 ? 1 : 0;
  }

  /**
   * @internal for snapshot.ts: swap in a snapshot built into the inactive table set, in one
   * durable write (DESIGN §4.8). Keeps the log after s if it holds entry (epoch_s, s).
   */
  async installSnapshot(s: LogPosition, compactRev: Rev, config: VolumeConfig): Promise<void> {
    assert(this.writesInFlight === 0, 'no write in flight during a snapshot install');
    assert(s.rev > this.commitRevV, `snapshot at ${s.rev} is above commitRev ${this.commitRevV}`);
    const ops: WriteOp[] = [];
    const keepLog = this.epochAt(s.rev) === s.epoch && s.rev <= this.lastV.rev;
    const dropTo = keepLog ? s.rev : this.lastV.rev;
    for (let r = this.firstLogRev; r <= dropTo; r++) ops.push({ table: 'log', op: 'del', key: r });
    const target = this.inactiveSet;
    ops.push(
      metaPut('active', target),
      metaPut('commitRev', s.rev),
      metaPut('compactRev', compactRev),
      metaPut('compactedThrough', compactRev),
      metaPut('config', config),
      metaPut('base', { epoch: s.epoch, rev: s.rev }),
      metaPut('firstLogRev', s.rev + 1),
    );
    await this.engine.write(ops);
    const old = this.active;
    this.active = target;
    this.commitRevV = this.commitRevIssued = s.rev;
    this.compactRevV = this.compactRevIssued = this.compactedThrough = compactRev;
    this.configV = config;
    this.base = s;
    this.firstLogRev = asRev(s.rev + 1);
    for (const r of [...this.unapplied.keys()]) if (r <= s.rev) this.unapplied.delete(r);
    this.cache.clear();
    if (!keepLog) this.lastV = s;
    await this.engine.clear(this.table('kv', old));
    await this.engine.clear(this.table('hist', old));
  }

  /** Size of the current state, for status and statedump. */
  countKeys(): number {
    let n = 0;
    for (const _ of this.engine.range(this.table('kv'), {})) n++;
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
      compactRev: this.compactRevV,
      compactedThrough: this.compactedThrough,
      unappliedEntries: this.unapplied.size,
      writesInFlight: this.writesInFlight,
    };
  }

  /** Runs `f` after the store has closed (releases the directory lock). */
  onClose(f: () => void): void {
    this.closeHooks.push(f);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.compacting;
      await this.engine.close();
    } finally {
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

function metaPut(key: keyof Meta, value: unknown): WriteOp {
  return { table: 'meta', op: 'put', key, value };
}

function checkLongKey(v: unknown, key: string): void {
  const k = (v as StoredVersion).k;
  // A long key's table key is a hash; the stored full key must match (else: a hash collision).
  assert(k === undefined || k === key, `long key record matches its key`);
}

