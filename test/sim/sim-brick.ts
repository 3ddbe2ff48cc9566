// A brick's durable state for the simulator: in memory, synchronous, durable at once (a crash
// loses nothing of it; the BrickAcceptor over it is the volatile part). It applies writes and
// effects exactly as store/brick-store.ts does, with the same assertions, and keeps every
// version of every key so a read at any committed rev is exact (compactRev is recorded, not
// enforced). Its LOG is trimmed as BrickStore's is: committed entries older than a retention
// window go, unless the holder's pin (retainFrom: what its slowest voter still needs) keeps
// them, at most pinRevsMax behind the commit point — so a voter away long enough is healed by a
// snapshot (DESIGN §4.8), which installSnapshot swaps in: the sender's committed state at s,
// every version up to s included, with the log base (epoch of entry s, s).
import { Buffer } from 'node:buffer';
import { assert } from '../../src/common/assert.js';
import { asRev, EPOCH_ZERO, type Epoch, type Rev } from '../../src/common/ids.js';
import { sortedMap, type SortedMap } from '../../src/common/sorted-map.js';
import { lastSclockOf, type BrickLog } from '../../replication/brick.js';
import type { ScanItem, StateView } from '../../replication/state-view.js';
import { putRecord } from '../../store/records.js';
import type { BrickWrite, Entry, KeyRange, KeyRecord, LogPosition, VolumeConfig } from '../../store/types.js';

/** A key's versions in rev order: from revs[i] on, the key is recs[i] (undefined: absent). */
export interface Versions {
  readonly revs: Rev[];
  readonly recs: (KeyRecord | undefined)[];
}

export interface SimBrickOptions {
  /** Committed entries kept behind commitRev (BrickStore's logRetainRevs). Default: every entry. */
  readonly retainRevs?: number;
  /** How far behind commitRev a holder's pin (retainFrom) may hold the log (logPinRevsMax). Default: no cap. */
  readonly pinRevsMax?: number;
}

/**
 * A snapshot as the simulator carries it (DESIGN §4.8): the committed state at s = at.rev, with
 * every version of every key up to s (the sim keeps whole histories so reads stay exact), the
 * compactRev and config in force at s, and the epoch of entry s. Frozen: nothing shares its arrays.
 */
export interface SimSnapshot {
  readonly from: string;
  readonly at: LogPosition;
  /** The session clock of entry s (DESIGN §4.8: a snapshot carries the sclock), if entry s has one. */
  readonly sclock?: number;
  readonly compactRev: Rev;
  readonly config: VolumeConfig;
  readonly versions: ReadonlyMap<string, Versions>;
}

export class SimBrick implements BrickLog {
  private promisedEpochV: Epoch = EPOCH_ZERO;
  private granteeV = '';
  /** entries[i] is the entry at rev firstRevV + i. */
  private entries: Entry[] = [];
  private firstRevV: Rev = asRev(1);
  /** The log's base: (0, 0), or the (epoch_s, s) of the last snapshot installed, and the sclock of entry s. */
  private baseV: LogPosition = { epoch: EPOCH_ZERO, rev: asRev(0) };
  private baseSclock: number | undefined;
  /** (epoch, rev) of the last entry; replaced, never mutated (callers may keep it). */
  private lastV: LogPosition;
  private commitRevV: Rev;
  private compactRevV: Rev = asRev(0);
  /** The config in force at commitRev, and the newest config in the log (committed or not). */
  private committedConfigV: VolumeConfig;
  private newestConfigV: VolumeConfig;
  /** Committed config and compactRev changes from the base on (for a snapshot at any rev ≥ the base). */
  private configChanges: { rev: Rev; config: VolumeConfig }[];
  private compactChanges: { rev: Rev; compactRev: Rev }[] = [];
  private readonly retainRevs: number;
  private readonly pinRevsMax: number;
  /** The holder's pin (BrickStore.retainFrom): entries from it on stay, at most pinRevsMax behind. */
  private retainFloor = Number.POSITIVE_INFINITY;
  private versions = new Map<string, Versions>();
  /**
   * Every key that ever had a version, in key order (for scans). The simulation's keys are
   * ASCII (checked as each is added), where the engine's order is plain string order: compared
   * natively, as every write of a dedupe record adds a key with a long common prefix.
   */
  private keys: SortedMap<string, Versions> = sortedMap(asciiOrder);
  /** The committed state at commitRev, live (one object: the holder asks for it at every read). */
  private readonly latest: StateView = { get: (key) => this.getAt(key, this.commitRevV), scan: (range) => this.scanAt(range, this.commitRevV) };
  /** Writes applied, entries trimmed and snapshots installed (for the simulator's stats). */
  writes = 0;
  trimmed = 0;
  installs = 0;

  constructor(
    readonly brickId: string,
    config: VolumeConfig,
    opts: SimBrickOptions = {},
  ) {
    // Entry (0, 1) is the initial config, committed at creation (DESIGN §8), as BrickStore.create.
    const first: Entry = { epoch: EPOCH_ZERO, rev: asRev(1), effects: [{ t: 'config', config }] };
    this.entries.push(first);
    this.lastV = { epoch: first.epoch, rev: first.rev };
    this.committedConfigV = config;
    this.newestConfigV = config;
    this.configChanges = [{ rev: asRev(1), config }];
    this.commitRevV = asRev(1);
    this.retainRevs = opts.retainRevs ?? Number.POSITIVE_INFINITY;
    this.pinRevsMax = opts.pinRevsMax ?? Number.POSITIVE_INFINITY;
    assert(this.retainRevs >= 1 && this.pinRevsMax >= 0, `retainRevs ${this.retainRevs} ≥ 1, pinRevsMax ${this.pinRevsMax} ≥ 0`);
  }

  // --- BrickLog -------------------------------------------------------------------------------

  get promisedEpoch(): Epoch {
    return this.promisedEpochV;
  }
  get grantee(): string {
    return this.granteeV;
  }
  get last(): LogPosition {
    return this.lastV;
  }
  get commitRev(): Rev {
    return this.commitRevV;
  }
  get compactRev(): Rev {
    return this.compactRevV;
  }
  /** The oldest entry still in the log (heals from before it need a snapshot). */
  get firstRev(): Rev {
    return this.firstRevV;
  }
  /** The log's base: (0, 0), or the position of the last snapshot installed. */
  get base(): LogPosition {
    return this.baseV;
  }
  /** The newest config in the log, committed or not (DESIGN §4.1: the one grants carry and quorums use). */
  get config(): VolumeConfig {
    return this.newestConfigV;
  }
  /** The config in force at commitRev. */
  get committedConfig(): VolumeConfig {
    return this.committedConfigV;
  }
  epochAt(rev: Rev): Epoch | undefined {
    if (rev === this.baseV.rev) return this.baseV.epoch; // the log's base, as BrickStore's
    return this.entry(rev)?.epoch;
  }
  entry(rev: Rev): Entry | undefined {
    return rev >= this.firstRevV ? this.entries[rev - this.firstRevV] : undefined;
  }
  /**
   * The session clock of the last entry (DESIGN §5); when the log holds nothing after a
   * snapshot's base, the sclock the snapshot carried (§4.8). Without it the fallback of
   * lastSclockOf (the latest epoch-start's) lags by up to a whole epoch, and a new holder healed
   * from this brick would expire dead sessions that much later than DESIGN §5 bounds.
   */
  lastSclock(): number {
    if (this.last.rev === this.baseV.rev && this.baseSclock !== undefined) return this.baseSclock;
    return lastSclockOf(this.entry(this.last.rev), this.latestView());
  }

  // --- writes ---------------------------------------------------------------------------------

  /**
   * One atomic, durable change, applied in order: promise, truncation, append, commit. Unlike
   * BrickStore it does not check entry epochs against promisedEpoch, so a replay brick (no
   * promise) can be fed a committed log; the acceptor checks each entry against its message's
   * epoch. The log is trimmed separately (trimLog), so the simulator can check a write's commits
   * before their entries may go.
   */
  apply(w: BrickWrite): void {
    this.writes++;
    if (w.promise) {
      assert(w.promise.epoch >= this.promisedEpochV, `${this.brickId}: promise never falls: ${w.promise.epoch} < ${this.promisedEpochV}`);
      this.promisedEpochV = w.promise.epoch;
      this.granteeV = w.promise.grantee;
    }
    if (w.truncateFrom !== undefined) {
      const from = w.truncateFrom;
      assert(from > this.commitRevV, `${this.brickId}: truncate at ${from} must be above commitRev ${this.commitRevV}`);
      assert(from >= 2 && from <= this.last.rev && from >= this.firstRevV, `${this.brickId}: truncate at ${from} within the log (${this.firstRevV}..${this.last.rev})`);
      this.entries.length = from - this.firstRevV;
      const prev = asRev(from - 1);
      const e = this.entry(prev);
      const epoch = e?.epoch ?? (prev === this.baseV.rev ? this.baseV.epoch : undefined);
      assert(epoch !== undefined, `${this.brickId}: the entry before a truncation at ${from} is held`);
      this.lastV = { epoch, rev: prev };
      this.newestConfigV = this.findNewestConfig();
    }
    for (const e of w.append ?? []) {
      const last = this.last;
      if (!(e.rev === last.rev + 1)) assert(false, `${this.brickId}: append is contiguous: entry ${e.rev} after ${last.rev}`);
      if (!(e.epoch >= last.epoch)) assert(false, `${this.brickId}: epochs never fall in the log: ${e.epoch} after ${last.epoch}`);
      this.entries.push(e);
      this.lastV = { epoch: e.epoch, rev: e.rev };
      const c = configOf(e);
      if (c) this.newestConfigV = c;
    }
    if (w.commitRev !== undefined) {
      if (!(w.commitRev >= this.commitRevV)) assert(false, `${this.brickId}: commitRev never decreases: ${w.commitRev} < ${this.commitRevV}`);
      if (!(w.commitRev <= this.last.rev)) assert(false, `${this.brickId}: commitRev ${w.commitRev} ≤ lastRev ${this.last.rev}`);
      for (let r = this.commitRevV + 1; r <= w.commitRev; r++) {
        const e = this.entry(asRev(r));
        if (e === undefined) assert(false, `${this.brickId}: entry ${r} is held until it commits (log ${this.firstRevV}..${this.last.rev})`);
        this.applyEntry(e);
      }
      this.commitRevV = w.commitRev;
    }
  }

  /**
   * The holder's pin, as BrickStore.retainFrom: entries from `rev` on stay beyond the retention
   * window, at most pinRevsMax behind the commit point (further back, a snapshot heals).
   */
  retainFrom(rev: Rev): void {
    this.retainFloor = Math.max(rev, this.commitRevV - this.pinRevsMax);
  }

  /** Drops committed entries older than the retention window and the pin (BrickStore.issueLogTrim). */
  trimLog(): number {
    const keepFrom = Math.min(this.commitRevV - this.retainRevs + 1, this.retainFloor);
    if (!(keepFrom > this.firstRevV)) return 0;
    assert(keepFrom <= this.commitRevV, `${this.brickId}: trimming keeps entry ${this.commitRevV} and everything after it`);
    const n = keepFrom - this.firstRevV;
    this.entries.splice(0, n);
    this.firstRevV = asRev(keepFrom);
    this.trimmed += n;
    return n;
  }

  /**
   * The committed state at `rev` (default: commitRev) as a snapshot, with every version up to it
   * (copied). `rev` may be any committed rev at or above the log's base.
   */
  exportSnapshot(rev: Rev = this.commitRevV): SimSnapshot {
    assert(rev <= this.commitRevV && rev >= this.baseV.rev, `${this.brickId}: a snapshot at ${rev} lies in ${this.baseV.rev}..${this.commitRevV}`);
    const epoch = this.epochAt(rev);
    assert(epoch !== undefined, `${this.brickId}: the epoch of entry ${rev} is known (log ${this.firstRevV}..${this.last.rev}, base ${this.baseV.rev})`);
    const versions = new Map<string, Versions>();
    for (const [key, vs] of this.keys.entries()) {
      const n = countUpTo(vs, rev);
      if (n > 0) versions.set(key, { revs: vs.revs.slice(0, n), recs: vs.recs.slice(0, n) });
    }
    const sclock = rev === this.baseV.rev ? this.baseSclock : this.entry(rev)?.sclock;
    return { ...(sclock === undefined ? {} : { sclock }), from: this.brickId, at: { epoch, rev }, compactRev: changeAt(this.compactChanges, rev)?.compactRev ?? asRev(0), config: (changeAt(this.configChanges, rev) as { config: VolumeConfig }).config, versions };
  }

  /**
   * Swaps a snapshot in, in one durable step (DESIGN §4.8): the state becomes the snapshot's
   * (every version up to s), commitRev := s, the config and compactRev in force at s; if the log
   * holds entry (epoch_s, s) it keeps the entries after s, else it is dropped whole; the base
   * becomes (epoch_s, s). Returns the entries the log dropped.
   */
  installSnapshot(snap: SimSnapshot): Entry[] {
    const s = snap.at.rev;
    assert(s > this.commitRevV, `${this.brickId}: snapshot at ${s} is above commitRev ${this.commitRevV}`);
    this.writes++;
    this.installs++;
    const keep = s <= this.last.rev && this.epochAt(s) === snap.at.epoch;
    const dropped = keep ? this.entries.filter((e) => e.rev <= s) : this.entries.slice();
    this.entries = keep ? this.entries.filter((e) => e.rev > s) : [];
    if (!keep) this.lastV = snap.at;
    this.firstRevV = asRev(s + 1);
    this.baseV = snap.at;
    this.baseSclock = snap.sclock;
    this.commitRevV = s;
    this.compactRevV = snap.compactRev;
    this.committedConfigV = snap.config;
    this.configChanges = [{ rev: s, config: snap.config }];
    this.compactChanges = [{ rev: s, compactRev: snap.compactRev }];
    this.newestConfigV = this.findNewestConfig();
    this.versions = new Map();
    this.keys = sortedMap(asciiOrder);
    for (const [key, vs] of snap.versions) {
      const copy: Versions = { revs: vs.revs.slice(), recs: vs.recs.slice() };
      this.versions.set(key, copy);
      this.keys.set(key, copy);
    }
    return dropped;
  }

  /** The newest config effect in the uncommitted log, else the committed config. */
  private findNewestConfig(): VolumeConfig {
    for (let r = this.last.rev; r > this.commitRevV && r >= this.firstRevV; r--) {
      const c = configOf(this.entry(asRev(r)) as Entry);
      if (c) return c;
    }
    return this.committedConfigV;
  }

  // The hot assertions build their message only when they fail (`if (!c) assert(false, …)`).

  /** Applies a committed entry's effects, as BrickStore.applyToOverlay. */
  private applyEntry(e: Entry): void {
    for (const fx of e.effects) {
      switch (fx.t) {
        case 'put':
          this.addVersion(fx.key, e.rev, putRecord(fx, e.rev));
          break;
        case 'del':
          this.addVersion(fx.key, e.rev, undefined);
          break;
        case 'compact':
          assert(fx.rev > this.compactRevV && fx.rev < e.rev, `${this.brickId}: compact rev ${fx.rev} above ${this.compactRevV}, below its entry ${e.rev}`);
          this.compactRevV = fx.rev;
          this.compactChanges.push({ rev: e.rev, compactRev: fx.rev });
          break;
        case 'config':
          this.committedConfigV = fx.config;
          this.configChanges.push({ rev: e.rev, config: fx.config });
          break;
        case 'epoch-start':
          break;
      }
    }
  }

  private addVersion(key: string, rev: Rev, rec: KeyRecord | undefined): void {
    let vs = this.versions.get(key);
    if (!vs) {
      if (!ASCII.test(key)) assert(false, `${this.brickId}: simulated keys are ASCII (native string order is the engine's): ${key}`);
      vs = { revs: [], recs: [] };
      this.versions.set(key, vs);
      this.keys.set(key, vs);
    }
    const lastRev = vs.revs[vs.revs.length - 1];
    // As VersionOverlay.add: one effect per key per entry.
    if (!(lastRev === undefined || lastRev < rev)) assert(false, `${this.brickId}: versions of ${key} are added in rev order (${lastRev} then ${rev})`);
    vs.revs.push(rev);
    vs.recs.push(rec);
  }

  // --- reads ----------------------------------------------------------------------------------

  /** The committed state at `rev` (compactRev is ignored: the sim keeps all versions). */
  viewAt(rev: Rev): StateView {
    if (!(rev <= this.commitRevV)) assert(false, `${this.brickId}: view at ${rev} ≤ commitRev ${this.commitRevV}`);
    return { get: (key) => this.getAt(key, rev), scan: (range) => this.scanAt(range, rev) };
  }

  /** The committed state at commitRev, live: reflects later commits. */
  latestView(): StateView {
    return this.latest;
  }

  /**
   * The changes to keys in `range` at revs in [from, to), rebuilt from the versions kept — as
   * features/watch's historyWindow rebuilds them from the history tables for revs older than the
   * log — grouped by rev in rev order, each rev's keys in key order (a delete: record undefined).
   * Revs without a change in the range are absent. `to` ≤ commitRev + 1 (versions exist only up
   * to the commit point).
   */
  changesBetween(range: KeyRange, from: Rev, to: Rev): { rev: Rev; changes: { key: string; record: KeyRecord | undefined }[] }[] {
    if (!(to <= this.commitRevV + 1)) assert(false, `${this.brickId}: changes up to ${to - 1} ≤ commitRev ${this.commitRevV}`);
    const byRev = new Map<number, { key: string; record: KeyRecord | undefined }[]>();
    for (const [key, vs] of this.keys.entries(range.start)) {
      if (range.end !== undefined && asciiOrder(key, range.end) >= 0) break;
      for (let i = countUpTo(vs, asRev(from - 1)); i < vs.revs.length && (vs.revs[i] as Rev) < to; i++) {
        const rev = vs.revs[i] as Rev;
        let group = byRev.get(rev);
        if (!group) byRev.set(rev, (group = []));
        group.push({ key, record: vs.recs[i] });
      }
    }
    return [...byRev.entries()].sort((a, b) => a[0] - b[0]).map(([rev, changes]) => ({ rev: asRev(rev), changes }));
  }

  /** Entries firstRev..commitRev (a copy). */
  committedLog(): readonly Entry[] {
    return this.entries.slice(0, Math.max(0, this.commitRevV - this.firstRevV + 1));
  }

  /** Every entry held, firstRev..last (a copy). */
  log(): readonly Entry[] {
    return this.entries.slice();
  }

  private getAt(key: string, rev: Rev): KeyRecord | undefined {
    const vs = this.versions.get(key);
    return vs ? versionAt(vs, rev) : undefined;
  }

  private *scanAt(range: KeyRange, rev: Rev): Generator<ScanItem> {
    for (const [key, vs] of this.keys.entries(range.start)) {
      // An ASCII key is in the same order against any string natively as by compareKeys.
      if (range.end !== undefined && asciiOrder(key, range.end) >= 0) return;
      const record = versionAt(vs, rev);
      if (record) yield { key, record };
    }
  }
}

const ASCII = /^[\x00-\x7f]*$/;

/** String order, equal to compareKeys on ASCII keys. */
function asciiOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** How many of the key's versions are at or below `rev`. */
function countUpTo(vs: Versions, rev: Rev): number {
  let lo = 0;
  let hi = vs.revs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((vs.revs[mid] as Rev) <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The latest change at or below `rev` (changes in rev order). */
function changeAt<T extends { readonly rev: Rev }>(changes: readonly T[], rev: Rev): T | undefined {
  let found: T | undefined;
  for (const c of changes) {
    if (c.rev > rev) break;
    found = c;
  }
  return found;
}

/** The last config an entry sets, if any. */
export function configOf(e: Entry): VolumeConfig | undefined {
  let c: VolumeConfig | undefined;
  for (const fx of e.effects) if (fx.t === 'config') c = fx.config;
  return c;
}

/** The key's record as of `rev`: its latest version at or below it (binary search). */
function versionAt(vs: Versions, rev: Rev): KeyRecord | undefined {
  const n = countUpTo(vs, rev);
  return n === 0 ? undefined : vs.recs[n - 1];
}

/**
 * Where two snapshots differ (position, compactRev, sclock, config, or any key's versions), or undefined
 * if they hold the same state with the same history.
 */
export function snapshotDiff(a: SimSnapshot, b: SimSnapshot): string | undefined {
  if (a.at.rev !== b.at.rev || a.at.epoch !== b.at.epoch) return `at (${a.at.epoch}, ${a.at.rev}) vs (${b.at.epoch}, ${b.at.rev})`;
  if (a.compactRev !== b.compactRev) return `compactRev ${a.compactRev} vs ${b.compactRev}`;
  if (a.sclock !== b.sclock) return `sclock ${a.sclock ?? 'none'} vs ${b.sclock ?? 'none'}`;
  if (JSON.stringify(a.config) !== JSON.stringify(b.config)) return `config ${JSON.stringify(a.config)} vs ${JSON.stringify(b.config)}`;
  for (const key of new Set([...a.versions.keys(), ...b.versions.keys()])) {
    const x = a.versions.get(key);
    const y = b.versions.get(key);
    const n = Math.max(x?.revs.length ?? 0, y?.revs.length ?? 0);
    for (let i = 0; i < n; i++) {
      const rx = x?.revs[i];
      const ry = y?.revs[i];
      if (rx !== ry || !sameRecord(x?.recs[i], y?.recs[i])) return `key ${key}: version ${i} at rev ${rx ?? 'none'} vs ${ry ?? 'none'}`;
    }
  }
  return undefined;
}

function sameRecord(a: KeyRecord | undefined, b: KeyRecord | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return a.createRev === b.createRev && a.modRev === b.modRev && a.version === b.version && a.session === b.session && Buffer.from(a.value).equals(Buffer.from(b.value));
}
