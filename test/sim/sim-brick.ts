// A brick's durable state for the simulator: in memory, synchronous, durable at once (a crash
// loses nothing of it; the BrickAcceptor over it is the volatile part). It applies writes and
// effects exactly as store/brick-store.ts does, with the same assertions, and keeps every
// version of every key so a read at any committed rev is exact (the sim never trims or compacts
// physically; compactRev is recorded, not enforced).
import { assert } from '../../src/common/assert.js';
import { asRev, EPOCH_ZERO, type Epoch, type Rev } from '../../src/common/ids.js';
import { sortedMap, type SortedMap } from '../../src/common/sorted-map.js';
import { lastSclockOf, type BrickLog } from '../../replication/brick.js';
import type { ScanItem, StateView } from '../../replication/state-view.js';
import { putRecord } from '../../store/records.js';
import type { BrickWrite, Entry, KeyRange, KeyRecord, LogPosition, VolumeConfig } from '../../store/types.js';

/** A key's versions in rev order: from revs[i] on, the key is recs[i] (undefined: absent). */
interface Versions {
  readonly revs: Rev[];
  readonly recs: (KeyRecord | undefined)[];
}

export class SimBrick implements BrickLog {
  private promisedEpochV: Epoch = EPOCH_ZERO;
  private granteeV = '';
  /** entries[i] is the entry at rev i + 1. */
  private readonly entries: Entry[] = [];
  /** (epoch, rev) of the last entry; replaced, never mutated (callers may keep it). */
  private lastV: LogPosition;
  private commitRevV: Rev;
  private compactRevV: Rev = asRev(0);
  private configV: VolumeConfig;
  private readonly versions = new Map<string, Versions>();
  /**
   * Every key that ever had a version, in key order (for scans). The simulation's keys are
   * ASCII (checked as each is added), where the engine's order is plain string order: compared
   * natively, as every write of a dedupe record adds a key with a long common prefix.
   */
  private readonly keys: SortedMap<string, Versions> = sortedMap(asciiOrder);
  /** The committed state at commitRev, live (one object: the holder asks for it at every read). */
  private readonly latest: StateView = { get: (key) => this.getAt(key, this.commitRevV), scan: (range) => this.scanAt(range, this.commitRevV) };
  /** Writes applied (for the simulator's stats). */
  writes = 0;

  constructor(
    readonly brickId: string,
    config: VolumeConfig,
  ) {
    // Entry (0, 1) is the initial config, committed at creation (DESIGN §8), as BrickStore.create.
    const first: Entry = { epoch: EPOCH_ZERO, rev: asRev(1), effects: [{ t: 'config', config }] };
    this.entries.push(first);
    this.lastV = { epoch: first.epoch, rev: first.rev };
    this.configV = config;
    this.commitRevV = asRev(1);
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
  /** The sim never trims its log. */
  get firstRev(): Rev {
    return asRev(1);
  }
  /** The config in force at commitRev. */
  get config(): VolumeConfig {
    return this.configV;
  }
  epochAt(rev: Rev): Epoch | undefined {
    if (rev === 0) return EPOCH_ZERO; // the log's base, as BrickStore's base (0, 0)
    return this.entries[rev - 1]?.epoch;
  }
  entry(rev: Rev): Entry | undefined {
    return rev >= 1 ? this.entries[rev - 1] : undefined;
  }
  lastSclock(): number {
    return lastSclockOf(this.entry(this.last.rev), this.latestView());
  }

  // --- writes ---------------------------------------------------------------------------------

  /**
   * One atomic, durable change, applied in order: promise, truncation, append, commit. Unlike
   * BrickStore it does not check entry epochs against promisedEpoch, so a replay brick (no
   * promise) can be fed a committed log; the acceptor checks each entry against its message's epoch.
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
      assert(from >= 2 && from <= this.last.rev, `${this.brickId}: truncate at ${from} within the log (last ${this.last.rev})`);
      this.entries.length = from - 1;
      const e = this.entries[from - 2];
      assert(e !== undefined, `${this.brickId}: the entry before a truncation at ${from} is held`);
      this.lastV = { epoch: e.epoch, rev: e.rev };
    }
    for (const e of w.append ?? []) {
      const last = this.last;
      if (!(e.rev === last.rev + 1)) assert(false, `${this.brickId}: append is contiguous: entry ${e.rev} after ${last.rev}`);
      if (!(e.epoch >= last.epoch)) assert(false, `${this.brickId}: epochs never fall in the log: ${e.epoch} after ${last.epoch}`);
      this.entries.push(e);
      this.lastV = { epoch: e.epoch, rev: e.rev };
    }
    if (w.commitRev !== undefined) {
      if (!(w.commitRev >= this.commitRevV)) assert(false, `${this.brickId}: commitRev never decreases: ${w.commitRev} < ${this.commitRevV}`);
      if (!(w.commitRev <= this.last.rev)) assert(false, `${this.brickId}: commitRev ${w.commitRev} ≤ lastRev ${this.last.rev}`);
      for (let r = this.commitRevV + 1; r <= w.commitRev; r++) this.applyEntry(this.entries[r - 1] as Entry);
      this.commitRevV = w.commitRev;
    }
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
          break;
        case 'config':
          this.configV = fx.config;
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

  /** Entries 1..commitRev (a copy). */
  committedLog(): readonly Entry[] {
    return this.entries.slice(0, this.commitRevV);
  }

  /** Every entry, 1..last (a copy). */
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

/** The key's record as of `rev`: its latest version at or below it (binary search). */
function versionAt(vs: Versions, rev: Rev): KeyRecord | undefined {
  let lo = 0;
  let hi = vs.revs.length; // first index with revs[i] > rev
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((vs.revs[mid] as Rev) <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? undefined : vs.recs[lo - 1];
}
