// The simulator's log invariants (DESIGN §4 "Required checks"), checked as the run goes:
// - no two different entries ever share an (epoch, rev);
// - a committed entry is never lost: every brick's committed prefix, and every holder's
//   commit point, agree with one volume-wide committed log, and no brick truncates an entry
//   that is committed.
// A violation throws SimViolation at once, with what was seen, so the seed's trace ends there.
import { Buffer } from 'node:buffer';
import type { Rev } from '../../src/common/ids.js';
import type { BrickWrite, Entry } from '../../store/types.js';

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
  entry(rev: Rev): Entry | undefined;
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
  /** Entries 1..drained have been passed to onCommit, in rev order. */
  private drained = 0;

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
      }
      else if (!same(prior, e)) throw new SimViolation('unique-entry', `two different entries share (epoch ${e.epoch}, rev ${e.rev}): ${entryText(prior).slice(0, 200)} vs ${entryText(e).slice(0, 200)}`);
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
      if (c === undefined) this.committed[r] = e;
      else if (!same(c, e)) {
        throw new SimViolation('committed-lost', `${who} has (${e.epoch}, ${r}) committed where the volume committed (${c.epoch}, ${r})`);
      }
    }
    this.maxCommitted = Math.max(this.maxCommitted, commitRev);
    if (this.onCommit) {
      for (let r = this.drained + 1; this.committed[r] !== undefined; r++) {
        const e = this.committed[r] as Entry;
        this.drained = r;
        this.onCommit(e, this.seenAt.get(`${e.epoch}:${e.rev}`) ?? 0, this.clock());
      }
    }
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
