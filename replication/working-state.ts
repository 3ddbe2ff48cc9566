// The holder's working state (DESIGN §4.4): the committed state plus every entry appended since,
// in rev order. Evaluation reads it; it never answers a client read. Changes leave the overlay
// once their entry has committed (the base view then holds them).
import { assert } from '../src/common/assert.js';
import { asRev, type Rev } from '../src/common/ids.js';
import { putRecord } from '../store/records.js';
import type { Entry } from '../store/types.js';
import { OverlayView } from './overlay.js';
import type { StateView } from './state-view.js';

export class WorkingState extends OverlayView {
  /** (rev, key) of every overlaid change, in rev order, for pruning at commit. */
  private readonly byRev: { rev: number; key: string }[] = [];
  private head = 0;
  private lastRevV: Rev;
  private compactRevV: Rev;
  private commitRevV: Rev;

  /**
   * @param base the committed state at the latest durable commit point
   * @param lastRev the last rev of the log the holder holds
   */
  constructor(base: () => StateView, lastRev: Rev, commitRev: Rev, compactRev: Rev) {
    super(base);
    this.lastRevV = lastRev;
    this.commitRevV = commitRev;
    this.compactRevV = compactRev;
  }

  /** The rev the next entry takes is lastRev + 1. */
  get lastRev(): Rev {
    return this.lastRevV;
  }
  get compactRev(): Rev {
    return this.compactRevV;
  }
  get commitRev(): Rev {
    return this.commitRevV;
  }

  /** Layers an appended entry's effects over the state. */
  apply(e: Entry): void {
    assert(e.rev === this.lastRevV + 1, `working state applies entry ${e.rev} right after ${this.lastRevV}`);
    for (const fx of e.effects) {
      if (fx.t === 'put') {
        this.set(fx.key, { rev: e.rev, record: putRecord(fx, e.rev) });
        this.byRev.push({ rev: e.rev, key: fx.key });
      } else if (fx.t === 'del') {
        this.set(fx.key, { rev: e.rev, record: undefined });
        this.byRev.push({ rev: e.rev, key: fx.key });
      } else if (fx.t === 'compact') {
        this.compactRevV = fx.rev;
      }
    }
    this.lastRevV = e.rev;
  }

  /** Entries up to `rev` are committed and visible in the base view: drop their changes. */
  committed(rev: Rev): void {
    assert(rev >= this.commitRevV, `commit point never falls: ${rev} < ${this.commitRevV}`);
    assert(rev <= this.lastRevV, `commit ${rev} ≤ lastRev ${this.lastRevV}`);
    this.commitRevV = rev;
    while (this.head < this.byRev.length) {
      const c = this.byRev[this.head] as { rev: number; key: string };
      if (c.rev > rev) break;
      const cur = this.changes.get(c.key);
      if (cur && cur.rev === c.rev) this.changes.delete(c.key);
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.byRev.length) {
      this.byRev.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Appended entries past the commit point (held in the overlay). */
  get uncommittedRevs(): number {
    return this.lastRevV - this.commitRevV;
  }
}

export const revAfter = (r: Rev): Rev => asRev(r + 1);
