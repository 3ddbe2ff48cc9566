// A StateView with changes layered over a base view: the holder's working state (committed
// state + appended entries, DESIGN §4.4) and a txn's view of its own writes are both overlays.
import { compareKeys } from '../src/common/keys.js';
import { sortedMap, type SortedMap } from '../src/common/sorted-map.js';
import type { KeyRange, KeyRecord } from '../store/types.js';
import type { ScanItem, StateView } from './state-view.js';

/** An overlaid key: its record, or undefined when deleted. */
export interface Change {
  readonly rev: number;
  readonly record: KeyRecord | undefined;
}

export class OverlayView implements StateView {
  protected readonly changes: SortedMap<string, Change> = sortedMap<string, Change>(compareKeys);

  constructor(protected readonly base: () => StateView) {}

  set(key: string, change: Change): void {
    this.changes.set(key, change);
  }

  get(key: string): KeyRecord | undefined {
    const c = this.changes.get(key);
    return c ? c.record : this.base().get(key);
  }

  *scan(range: KeyRange): Generator<ScanItem> {
    const inRange = (k: string): boolean => range.end === undefined || compareKeys(k, range.end) < 0;
    const over = this.changes.entries(range.start);
    let o = over.next();
    const overNext = (): [string, Change] | undefined => {
      if (o.done) return undefined;
      const [k] = o.value;
      return inRange(k) ? o.value : undefined;
    };
    for (const item of this.base().scan(range)) {
      // Emit overlay keys that sort before this base key.
      for (let ov = overNext(); ov && compareKeys(ov[0], item.key) < 0; ov = overNext()) {
        if (ov[1].record) yield { key: ov[0], record: ov[1].record };
        o = over.next();
      }
      const ov = overNext();
      if (ov && ov[0] === item.key) {
        if (ov[1].record) yield { key: ov[0], record: ov[1].record };
        o = over.next();
      } else {
        yield item;
      }
    }
    for (let ov = overNext(); ov; ov = overNext()) {
      if (ov[1].record) yield { key: ov[0], record: ov[1].record };
      o = over.next();
    }
  }

  get size(): number {
    return this.changes.size;
  }
}
