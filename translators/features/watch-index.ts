// Which watchers a changed key concerns, without looking at every watcher (DESIGN §6: "matching
// uses a prefix index"). A single-key watch sits in a map by its key. Any other range [start, end)
// sits under its anchor: the longest common prefix of start and end ('' when end is open), since
// every key in the range starts with it. A changed key then looks up only its own prefixes whose
// lengths some anchor has — usually a handful — and checks the range of the watchers found there.
import { compareKeys } from '../../src/common/keys.js';
import type { KeyRange } from '../../store/types.js';

export interface Indexed {
  readonly range: KeyRange;
  /** Set for a single-key watch. */
  readonly exactKey: string | undefined;
}

function commonPrefix(a: string, b: string | undefined): string {
  if (b === undefined) return '';
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return a.slice(0, i);
}

export function inRange(key: string, r: KeyRange): boolean {
  return compareKeys(key, r.start) >= 0 && (r.end === undefined || compareKeys(key, r.end) < 0);
}

export class RangeIndex<T extends Indexed> {
  private readonly exact = new Map<string, Set<T>>();
  private readonly byAnchor = new Map<string, Set<T>>();
  /** Anchor length → how many anchors of that length are in use. */
  private readonly lengthUse = new Map<number, number>();
  /** The lengths in use, ascending (rebuilt when an anchor length appears or goes). */
  private lengths: number[] = [];
  private sizeV = 0;

  get size(): number {
    return this.sizeV;
  }

  add(t: T): void {
    this.sizeV++;
    if (t.exactKey !== undefined) return void addTo(this.exact, t.exactKey, t);
    const anchor = commonPrefix(t.range.start, t.range.end);
    if (addTo(this.byAnchor, anchor, t)) {
      const n = (this.lengthUse.get(anchor.length) ?? 0) + 1;
      this.lengthUse.set(anchor.length, n);
      if (n === 1) this.lengths = [...this.lengthUse.keys()].sort((a, b) => a - b);
    }
  }

  remove(t: T): void {
    if (t.exactKey !== undefined) {
      if (!this.exact.get(t.exactKey)?.has(t)) return;
      this.sizeV--;
      removeFrom(this.exact, t.exactKey, t);
      return;
    }
    const anchor = commonPrefix(t.range.start, t.range.end);
    const set = this.byAnchor.get(anchor);
    if (!set?.has(t)) return;
    this.sizeV--;
    if (!removeFrom(this.byAnchor, anchor, t)) return;
    const n = (this.lengthUse.get(anchor.length) ?? 1) - 1;
    if (n > 0) this.lengthUse.set(anchor.length, n);
    else {
      this.lengthUse.delete(anchor.length);
      this.lengths = [...this.lengthUse.keys()].sort((a, b) => a - b);
    }
  }

  /** Every watcher whose range holds `key`. */
  *match(key: string): Generator<T> {
    const ex = this.exact.get(key);
    if (ex) yield* ex;
    for (const len of this.lengths) {
      if (len > key.length) return;
      const set = this.byAnchor.get(len === key.length ? key : key.slice(0, len));
      if (!set) continue;
      for (const t of set) if (inRange(key, t.range)) yield t;
    }
  }
}

/** Adds to a set in a map; true when the set is new (its key was unused). */
function addTo<T>(m: Map<string, Set<T>>, k: string, t: T): boolean {
  const set = m.get(k);
  if (set) {
    set.add(t);
    return false;
  }
  m.set(k, new Set([t]));
  return true;
}

/** Removes from a set in a map; true when the set emptied (and went). */
function removeFrom<T>(m: Map<string, Set<T>>, k: string, t: T): boolean {
  const set = m.get(k);
  if (!set) return false;
  set.delete(t);
  if (set.size > 0) return false;
  m.delete(k);
  return true;
}
