// Where a watch's replay reads its past (DESIGN §6: "served from the committed log"):
//  - revs the brick's log still holds come from its entries;
//  - revs older than the log (it keeps log-retain-revs behind commitRev) but above the volume's
//    compactRev are rebuilt from the brick's history tables, which keep every version of every
//    key above the compactRev (compaction keeps the one live at it). A window of such revs is one
//    scan of the watched range's history, keeping the versions whose rev falls in the window,
//    grouped by rev. The design's alternative — end the watch `moved` so that the client resumes
//    on a brick whose log reaches further — has nowhere to go on a single-brick volume.
import { asRev, type Rev } from '../../src/common/ids.js';
import { compareKeys } from '../../src/common/keys.js';
import { sortedMap } from '../../src/common/sorted-map.js';
import type { BrickStore } from '../../store/index.js';
import { splitHistKey, shortKeyOf, tableBounds, tableKeyIsLong } from '../../store/keys.js';
import { asStoredVersion, decodeRecord, isTombstone, putRecord } from '../../store/records.js';
import type { Entry, KeyRange, KeyRecord } from '../../store/types.js';
import { inRange } from './watch-index.js';

/** One key's change at a rev: its new record, or undefined for a delete. */
export interface Change {
  readonly key: string;
  readonly record: KeyRecord | undefined;
}

export interface RevChanges {
  readonly rev: Rev;
  /** In key order. */
  readonly changes: readonly Change[];
}

/** History rows scanned between yields to the event loop. */
const SCAN_ROWS_PER_TURN = 20_000;
const CHANGE_OVERHEAD_BYTES = 64;

const byKey = (a: Change, b: Change): number => compareKeys(a.key, b.key);

/** The key changes of a log entry, in key order (other effects — compact, config — change no key). */
export function changesOf(e: Entry): Change[] {
  const out: Change[] = [];
  for (const fx of e.effects) {
    if (fx.t === 'put') out.push({ key: fx.key, record: putRecord(fx, e.rev) });
    else if (fx.t === 'del') out.push({ key: fx.key, record: undefined });
  }
  if (out.length > 1) out.sort(byKey);
  return out;
}

const yieldTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

export interface HistoryBudget {
  readonly events: number;
  readonly bytes: number;
}

/**
 * The changes to keys in `range` at revs in [from, to), rebuilt from the history tables (every rev
 * below `to` must be checkpointed: `to` ≤ the log's first rev). Returns whole revs in rev order
 * within the budget (more only when the first rev alone exceeds it), and `next`: the rev the
 * following window starts at (`to` when the window reached it). Revs in [from, next) without a
 * change in the range are simply absent. Physical compaction pauses while the scan runs; the
 * caller checks the compactRev again before it trusts the result.
 */
export async function historyWindow(store: BrickStore, range: KeyRange, from: Rev, to: Rev, budget: HistoryBudget): Promise<{ revs: RevChanges[]; next: Rev }> {
  const lock = await store.beginExport(asRev(to - 1));
  try {
    const byRev = sortedMap<number, Change[]>((a, b) => a - b);
    let limit: number = to;
    let events = 0;
    let bytes = 0;
    const { lo, hi, exact } = tableBounds(range.start, range.end);
    let start: Buffer = lo;
    for (;;) {
      let rows = 0;
      let resumeAfter: Buffer | undefined;
      for (const { key, value } of store.engine.range(lock.hist, hi === undefined ? { start } : { start, end: hi })) {
        const hk = key as Buffer;
        if (++rows > SCAN_ROWS_PER_TURN) {
          resumeAfter = Buffer.from(hk);
          break;
        }
        const { tk, rev } = splitHistKey(hk);
        if (rev < from || rev >= limit) continue;
        const sv = asStoredVersion(value);
        const long = tableKeyIsLong(tk);
        const k = long ? (sv.k as string) : shortKeyOf(tk);
        if ((!exact || long) && !inRange(k, range)) continue;
        const record = isTombstone(sv) ? undefined : decodeRecord(sv);
        let group = byRev.get(rev);
        if (!group) byRev.set(rev, (group = []));
        group.push({ key: k, record });
        events++;
        bytes += k.length + (record?.value.byteLength ?? 0) + CHANGE_OVERHEAD_BYTES;
        // Over budget: give up the highest revs whole (they come again in the next window).
        while ((events > budget.events || bytes > budget.bytes) && byRev.size > 1) {
          const top = byRev.entriesReversed().next();
          if (top.done) break;
          const [r, dropped] = top.value;
          byRev.delete(r);
          events -= dropped.length;
          for (const c of dropped) bytes -= c.key.length + (c.record?.value.byteLength ?? 0) + CHANGE_OVERHEAD_BYTES;
          limit = r;
        }
      }
      if (resumeAfter === undefined) break;
      // The smallest table key above the last one read.
      start = Buffer.concat([resumeAfter, Buffer.alloc(1)]);
      await yieldTurn();
    }
    const revs: RevChanges[] = [];
    for (const [r, changes] of byRev.entries()) revs.push({ rev: asRev(r), changes: changes.length > 1 ? changes.sort(byKey) : changes });
    return { revs, next: asRev(limit) };
  } finally {
    lock.release();
  }
}
