// The simulator's log invariants (DESIGN §4 "Required checks"), checked as the run goes:
// - no two different entries ever share an (epoch, rev), a snapshot's base (epoch_s, s) included;
// - a committed entry is never lost: every brick's committed prefix (the part its trimmed log
//   still holds), and every holder's commit point, agree with one volume-wide committed log; no
//   brick truncates an entry that is committed, nor drops one installing a snapshot;
// - a snapshot (DESIGN §4.8) is the committed state at its rev s: every key's history up to s,
//   the compactRev and the config at s equal the committed log replayed to s;
// - configs (DESIGN §4.7): each committed config differs from the one before by one step (one
//   learner added, promoted or removed, one voter removed, or quorum-count alone, within range);
//   a config entry is appended only once an entry of its epoch has committed and no earlier
//   config entry is uncommitted; every commit a holder makes is durably held by a quorum of the
//   voters of the newest config in its log (commitCounted).
// A violation throws SimViolation at once, with what was seen, so the seed's trace ends there.
import { Buffer } from 'node:buffer';
import { asRev, type Epoch, type Rev } from '../../src/common/ids.js';
import { configProblem, quorumOf } from '../../replication/config.js';
import type { StateView } from '../../replication/state-view.js';
import type { BrickWrite, Entry, LogPosition, VolumeConfig } from '../../store/types.js';
import { configOf, SimBrick, snapshotDiff, type SimSnapshot } from './sim-brick.js';

export class SimViolation extends Error {
  constructor(
    readonly check: string,
    message: string,
  ) {
    super(`${check}: ${message}`);
    this.name = 'SimViolation';
  }
}

/** A canonical text of an entry, to compare entries that are not the same object. */
export function entryText(e: Entry): string {
  return JSON.stringify(e, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
}

function same(a: Entry, b: Entry): boolean {
  return a === b || (a.epoch === b.epoch && a.rev === b.rev && entryText(a) === entryText(b));
}

/** Read access the checks need of a brick's log. */
export interface CheckedLog {
  readonly brickId: string;
  readonly commitRev: Rev;
  readonly last: LogPosition;
  entry(rev: Rev): Entry | undefined;
  epochAt(rev: Rev): Epoch | undefined;
}

export class LogChecks {
  /** Every entry ever appended anywhere, by `epoch:rev`. */
  private readonly seen = new Map<string, Entry>();
  /** committed[r] is the entry at rev r, once any brick or holder has it committed. */
  readonly committed: (Entry | undefined)[] = [];
  maxCommitted = 0;
  private readonly checked = new Map<string, number>();
  /** When each entry (by `epoch:rev`) was first appended to any brick: its creation, in simulated ms. */
  private readonly seenAt = new Map<string, number>();
  /** Entries 1..drained have been passed to onCommit, in rev order, and applied to `replay`. */
  private drained = 0;
  /** The committed log replayed (every version kept): what a snapshot at s must equal. */
  private replay: SimBrick | undefined;
  /** The config in force at `drained`. */
  private configNow: VolumeConfig | undefined;
  /** Epochs with an entry known committed (a config entry of epoch e waits for one). */
  private readonly committedEpochs = new Set<number>();
  /** Config entries appended, snapshots checked, commits counted by a quorum (for the stats). */
  readonly counts = { configsAppended: 0, configsCommitted: 0, snapshotsChecked: 0, commitsCounted: 0 };

  constructor(
    /** The simulated time, for seenAt and onCommit. */
    private readonly clock: () => number = () => 0,
    /** Called once per committed entry, in rev order, as the committed prefix grows. */
    private readonly onCommit?: (e: Entry, seenAtMs: number, nowMs: number) => void,
  ) {}

  /** Before a brick applies `w`: it never truncates a committed entry; appended entries are unique per (epoch, rev). */
  beforeWrite(log: CheckedLog, w: BrickWrite): void {
    if (w.truncateFrom !== undefined) {
      for (let r = w.truncateFrom; r <= this.maxCommitted; r++) {
        const mine = log.entry(r as Rev);
        const c = this.committed[r];
        if (mine && c && same(mine, c)) {
          throw new SimViolation('committed-lost', `brick ${log.brickId} truncates from ${w.truncateFrom}, deleting committed entry (${c.epoch}, ${r})`);
        }
      }
    }
    for (const e of w.append ?? []) {
      const k = `${e.epoch}:${e.rev}`;
      const prior = this.seen.get(k);
      if (prior === undefined) {
        this.seen.set(k, e);
        this.seenAt.set(k, this.clock());
        if (configOf(e) !== undefined) this.configAppended(log, w, e);
      } else if (!same(prior, e)) throw new SimViolation('unique-entry', `two different entries share (epoch ${e.epoch}, rev ${e.rev}): ${entryText(prior).slice(0, 200)} vs ${entryText(e).slice(0, 200)}`);
    }
  }

  /** After a brick's write, or a holder's commit: entries up to `commitRev` of `log` are committed. */
  committedUpTo(log: CheckedLog, commitRev: Rev, who: string): void {
    // A committed entry never changes on a brick (a truncation of one is caught before it
    // happens), so each observer is checked from where it was last checked.
    const from = (this.checked.get(who) ?? 0) + 1;
    if (commitRev >= from) this.checked.set(who, commitRev);
    for (let r = from; r <= commitRev; r++) {
      const e = log.entry(r as Rev);
      if (e === undefined) continue; // below a trimmed log: compared when it was committed
      const c = this.committed[r];
      if (c === undefined) {
        this.committed[r] = e;
        this.committedEpochs.add(e.epoch);
      } else if (!same(c, e)) {
        throw new SimViolation('committed-lost', `${who} has (${e.epoch}, ${r}) committed where the volume committed (${c.epoch}, ${r})`);
      }
    }
    this.maxCommitted = Math.max(this.maxCommitted, commitRev);
    for (let r = this.drained + 1; this.committed[r] !== undefined; r++) {
      const e = this.committed[r] as Entry;
      this.drained = r;
      this.replayCommitted(e);
      this.onCommit?.(e, this.seenAt.get(`${e.epoch}:${e.rev}`) ?? 0, this.clock());
    }
  }

  /** The committed prefix grew by `e`: replay it and check a config it sets is one step from the last. */
  private replayCommitted(e: Entry): void {
    const next = configOf(e);
    if (e.rev === 1) {
      if (next === undefined) throw new SimViolation('config-step', 'entry 1 is not the initial config');
      this.replay = new SimBrick('replay', next);
      this.configNow = next;
      return;
    }
    (this.replay as SimBrick).apply({ append: [e], commitRev: e.rev });
    if (next === undefined) return;
    const why = configStepProblem(this.configNow as VolumeConfig, next);
    if (why !== undefined) throw new SimViolation('config-step', `the config committed at rev ${e.rev} (epoch ${e.epoch}) ${why}: ${JSON.stringify(this.configNow)} → ${JSON.stringify(next)}`);
    this.configNow = next;
    this.counts.configsCommitted++;
  }

  /** The committed log replayed to `rev` (within the committed prefix), as a snapshot. */
  committedState(rev: Rev): SimSnapshot {
    if (this.replay === undefined || rev > this.drained) throw new SimViolation('committed-lost', `the committed prefix ends at ${this.drained}, below ${rev}`);
    return this.replay.exportSnapshot(rev);
  }

  /** The committed state at `rev` (within the committed prefix), every version kept: what a read at `rev` must return. */
  committedView(rev: Rev): StateView {
    if (this.replay === undefined || rev > this.drained) throw new SimViolation('committed-lost', `the committed prefix ends at ${this.drained}, below ${rev}`);
    return this.replay.viewAt(rev);
  }

  /** The compactRev at the end of the committed prefix drained so far. */
  get committedCompactRev(): Rev {
    return this.replay?.compactRev ?? asRev(0);
  }

  /** The config in force at the end of the committed prefix drained so far. */
  get committedConfig(): VolumeConfig | undefined {
    return this.configNow;
  }

  /**
   * A config entry `e` is seen for the first time, written to `log` by `w` (DESIGN §4.7): an entry
   * of its epoch has committed, and the config entry before it in the log (every log that takes
   * `e` holds the same prefix) is committed. Scans back from e to the first entry that is known
   * committed (or no longer held: trimmed, so committed).
   */
  private configAppended(log: CheckedLog, w: BrickWrite, e: Entry): void {
    this.counts.configsAppended++;
    if (!this.committedEpochs.has(e.epoch)) {
      throw new SimViolation('config-rule', `config entry (${e.epoch}, ${e.rev}) was appended before any entry of epoch ${e.epoch} committed`);
    }
    const written = new Map((w.append ?? []).map((x) => [x.rev as number, x]));
    for (let r = e.rev - 1; r >= 1; r--) {
      const x = written.get(r) ?? (w.truncateFrom !== undefined && r >= w.truncateFrom ? undefined : log.entry(asRev(r)));
      if (x === undefined) return; // below the log: committed
      const c = this.committed[r];
      const committed = c !== undefined && same(c, x);
      if (configOf(x) !== undefined) {
        if (!committed) throw new SimViolation('config-rule', `config entry (${e.epoch}, ${e.rev}) was appended while the config entry (${x.epoch}, ${r}) before it was uncommitted`);
        return;
      }
      if (committed) return;
    }
  }

  /**
   * A holder advanced its commit point from `from` to `to` with `config` the newest in its log
   * (DESIGN §4.5, §4.7): each entry in between is durably held by a quorum of that config's voters
   * — it is in their logs, or below their commit point (trimmed, or under a snapshot). `configs`:
   * the holder's newest config before and after the input that advanced it (an input may count
   * a commit, then append a config entry); the commit must satisfy one of them.
   */
  commitCounted(who: string, from: Rev, to: Rev, configs: readonly VolumeConfig[], brick: (id: string) => CheckedLog | undefined, idOf: (b: string) => string = (b) => b): void {
    for (let r = from + 1; r <= to; r++) {
      const c = this.committed[r];
      if (c === undefined) continue; // recorded once some brick has it (the checks that follow catch a loss)
      const holds = (b: CheckedLog | undefined): boolean => {
        if (b === undefined) return false;
        const mine = b.entry(asRev(r));
        return mine !== undefined ? same(mine, c) : b.commitRev >= r;
      };
      const ok = configs.some((cfg) => cfg.bricks.filter((v) => holds(brick(idOf(v)))).length >= quorumOf(cfg));
      if (!ok) {
        const held = configs.map((cfg) => `${cfg.bricks.filter((v) => holds(brick(idOf(v)))).join('+') || 'none'} of voters ${cfg.bricks.join(',')} (quorum ${quorumOf(cfg)})`);
        throw new SimViolation('commit-quorum', `${who} committed (${c.epoch}, ${r}) held by ${held.join(' / ')}`);
      }
      this.counts.commitsCounted++;
    }
  }

  /**
   * Before `log` installs `snap` (DESIGN §4.8): s is committed with entry s of epoch epoch_s; the
   * state equals the committed log replayed to s (histories, compactRev, config); and the log it
   * drops (all of it unless it holds (epoch_s, s)) holds no committed entry above s.
   */
  beforeInstall(log: CheckedLog, snap: SimSnapshot): void {
    const s = snap.at.rev;
    const c = this.committed[s];
    if (c === undefined || s > this.drained) throw new SimViolation('snapshot', `brick ${log.brickId} installs a snapshot at ${s} from ${snap.from}, beyond the committed prefix ${this.drained}`);
    if (c.epoch !== snap.at.epoch) throw new SimViolation('unique-entry', `a snapshot from ${snap.from} names entry (${snap.at.epoch}, ${s}); the committed entry at ${s} is of epoch ${c.epoch}`);
    const diff = snapshotDiff(snap, (this.replay as SimBrick).exportSnapshot(asRev(s)));
    if (diff !== undefined) throw new SimViolation('snapshot-state', `the snapshot at ${s} from ${snap.from} to ${log.brickId} is not the committed state at ${s}: ${diff}`);
    const keeps = s <= log.last.rev && log.epochAt(asRev(s)) === snap.at.epoch;
    if (!keeps) {
      for (let r = s + 1; r <= Math.min(log.last.rev, this.maxCommitted); r++) {
        const mine = log.entry(asRev(r));
        const cr = this.committed[r];
        if (mine && cr && same(mine, cr)) throw new SimViolation('committed-lost', `brick ${log.brickId} drops its whole log installing a snapshot at ${s}, committed entry (${cr.epoch}, ${r}) with it`);
      }
    }
    this.counts.snapshotsChecked++;
  }

  /** The committed log as a contiguous prefix (entries 1..n with no hole). */
  committedPrefix(): Entry[] {
    const out: Entry[] = [];
    for (let r = 1; r < this.committed.length; r++) {
      const e = this.committed[r];
      if (e === undefined) break;
      out.push(e);
    }
    return out;
  }
}

/**
 * Why `next` is not one step from `prev` (DESIGN §4.7), or undefined: one learner added (not a
 * member before), promoted, or removed; one voter removed; or quorum-count alone changed (or
 * set to its own value) — and `next` is well formed, with quorum-count from a majority to the
 * number of voters.
 */
export function configStepProblem(prev: VolumeConfig, next: VolumeConfig): string | undefined {
  const bad = configProblem(next);
  if (bad !== undefined) return `is malformed (${bad})`;
  if (next.volumeName !== prev.volumeName) return 'renames the volume';
  const majority = Math.floor(next.bricks.length / 2) + 1;
  if (next.quorumCount > next.bricks.length || (next.quorumCount !== prev.quorumCount && next.quorumCount < majority)) return `has quorum-count ${next.quorumCount} outside ${majority}..${next.bricks.length}`;
  const pv = new Set(prev.bricks);
  const pl = new Set(prev.learners ?? []);
  const nv = new Set(next.bricks);
  const nl = new Set(next.learners ?? []);
  const minus = (a: Set<string>, b: Set<string>): string[] => [...a].filter((x) => !b.has(x));
  const votersIn = minus(nv, pv);
  const votersOut = minus(pv, nv);
  const learnersIn = minus(nl, pl);
  const learnersOut = minus(pl, nl);
  const changes = votersIn.length + votersOut.length + learnersIn.length + learnersOut.length;
  if (next.quorumCount !== prev.quorumCount) return changes === 0 ? undefined : 'changes quorum-count and members at once';
  // A change that changes nothing (quorum-count set to its value: an operator's request that
  // raced an equal one) is still one step.
  if (changes === 0) return undefined;
  const one = (xs: string[]): boolean => xs.length === 1;
  const none = (xs: string[]): boolean => xs.length === 0;
  // add-learner: a brick that was no member.
  if (one(learnersIn) && none(learnersOut) && none(votersIn) && none(votersOut) && !pv.has(learnersIn[0] as string)) return undefined;
  // promote: a learner becomes a voter.
  if (one(votersIn) && one(learnersOut) && votersIn[0] === learnersOut[0] && none(learnersIn) && none(votersOut)) return undefined;
  // remove a voter, or a learner.
  if (one(votersOut) && none(votersIn) && none(learnersIn) && none(learnersOut)) return undefined;
  if (one(learnersOut) && none(votersIn) && none(votersOut) && none(learnersIn)) return undefined;
  return `changes more than one member (voters +${votersIn.join(',')} −${votersOut.join(',')}, learners +${learnersIn.join(',')} −${learnersOut.join(',')})`;
}
