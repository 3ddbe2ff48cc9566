// The watch checks (DESIGN §4 "Required checks": every watch stream is gap-free, duplicate-free
// and in rev order; DESIGN §6), on what each watch client receives, against the volume's
// committed log as LogChecks records it — with their own matching (a key under the prefix; a key
// under /_coordvol/ only for a prefix inside it), not the service's:
//  - events: each message is one rev, above every rev the client has accounted for (no
//    duplicate, rev order); every committed rev between the last accounted for and it has no
//    event for the prefix (no gap); its events are exactly the committed entry's changes under
//    the prefix, in key order, with the records the entry wrote;
//  - progress p: never below what the stream has accounted for, never past the volume's commit
//    point, and every committed event at or below p has been delivered;
//  - resync (after `compacted`): at or above what the client has accounted for, and exactly the
//    committed state of the range at its rev; `compacted` only at or below the compact rev;
//    `moved` with a cursor past everything delivered;
//  - at the end of the quiet period (finish): every watcher is streaming from a brick at the
//    volume's final commit point, and has every event up to it.
// A violation throws SimViolation at once.
import { Buffer } from 'node:buffer';
import { asRev, type Rev } from '../../src/common/ids.js';
import { prefixEnd, RESERVED_PREFIX } from '../../src/common/keys.js';
import type { Entry, KeyRecord } from '../../store/types.js';
import { type LogChecks, SimViolation } from './log-checks.js';

/** A change as the client receives it: a key and its new record (undefined: deleted). */
export interface SeenChange {
  readonly key: string;
  readonly record: KeyRecord | undefined;
}

interface Watched {
  readonly prefix: string;
  /** Every committed rev up to here is accounted for: delivered, or known to have no event. */
  to: number | undefined;
}

export class WatchChecks {
  private readonly watched = new Map<number, Watched>();
  readonly counts = { events: 0, revs: 0, progress: 0, resyncs: 0, resyncKeys: 0, revsScanned: 0 };

  constructor(private readonly log: LogChecks) {}

  /** Watcher `id` watches `prefix` from `fromRev` (undefined: from where its first watch says). */
  watcher(id: number, prefix: string, fromRev: Rev | undefined): void {
    this.watched.set(id, { prefix, to: fromRev === undefined ? undefined : fromRev - 1 });
  }

  /** The first watch of a watcher without fromRev answered: its stream starts at `fromRev`. */
  started(id: number, fromRev: Rev): void {
    const w = this.get(id);
    w.to ??= fromRev - 1;
  }

  events(id: number, rev: Rev, changes: readonly SeenChange[]): void {
    const w = this.get(id);
    const to = this.accounted(id, w);
    if (rev <= to) throw new SimViolation('watch-order', `watcher ${id} (${show(w.prefix)}) got rev ${rev} after it had every rev up to ${to}: a duplicate or out of order`);
    this.noEventsIn(id, w, to + 1, rev - 1, `it got rev ${rev} next: a gap`);
    const want = this.expected(rev, w.prefix);
    const diff = changesDiff(changes, want);
    if (diff !== undefined) throw new SimViolation('watch-events', `watcher ${id} (${show(w.prefix)}) at rev ${rev}: ${diff}`);
    w.to = rev;
    this.counts.revs++;
    this.counts.events += changes.length;
  }

  progress(id: number, rev: Rev): void {
    const w = this.get(id);
    const to = this.accounted(id, w);
    if (rev < to) throw new SimViolation('watch-progress', `watcher ${id} (${show(w.prefix)}) got progress ${rev}, below rev ${to} it had already reached`);
    if (rev > this.log.maxCommitted) throw new SimViolation('watch-progress', `watcher ${id} (${show(w.prefix)}) got progress ${rev}, past the volume's commit point ${this.log.maxCommitted}`);
    this.noEventsIn(id, w, to + 1, rev, `progress ${rev} claimed it`);
    w.to = rev;
    this.counts.progress++;
  }

  /** `compacted`: the cursor is at or below the compact rev, which the volume has committed. */
  compacted(id: number, cursor: Rev, compactRev: Rev | undefined): void {
    const w = this.get(id);
    if (compactRev === undefined || cursor > compactRev || compactRev > this.log.committedCompactRev) {
      throw new SimViolation('watch-compacted', `watcher ${id} (${show(w.prefix)}) was told compacted at cursor ${cursor} with compact rev ${compactRev ?? 'none'} (the volume's: ${this.log.committedCompactRev})`);
    }
  }

  /** `moved`: its cursor is the next rev the stream would deliver, past everything delivered. */
  moved(id: number, cursor: Rev): void {
    const w = this.get(id);
    if (w.to !== undefined && cursor <= w.to) throw new SimViolation('watch-moved', `watcher ${id} (${show(w.prefix)}) was moved at cursor ${cursor}, though it had every rev up to ${w.to}`);
  }

  /** A resync (after `compacted`): the whole range at `rev`, not behind the stream, equal to the committed state. */
  resync(id: number, rev: Rev, kvs: readonly { key: string; record: KeyRecord }[]): void {
    const w = this.get(id);
    if (w.to !== undefined && rev < w.to) throw new SimViolation('watch-resync', `watcher ${id} (${show(w.prefix)}) got a resync at rev ${rev}, below rev ${w.to} it had reached`);
    const want: SeenChange[] = [];
    for (const kv of this.log.committedView(rev).scan({ start: w.prefix, end: w.prefix === '' ? undefined : prefixEnd(w.prefix) })) if (matches(w.prefix, kv.key)) want.push(kv);
    const diff = changesDiff(kvs, want);
    if (diff !== undefined) throw new SimViolation('watch-resync', `watcher ${id} (${show(w.prefix)}) resync at rev ${rev} is not the committed state: ${diff}`);
    w.to = rev;
    this.counts.resyncs++;
    this.counts.resyncKeys += kvs.length;
  }

  /** The first committed rev in (accounted, top] with an event watcher `id` has not had, if any. */
  missing(id: number, top: number): number | undefined {
    const w = this.get(id);
    for (let r = (w.to ?? top) + 1; r <= top; r++) if (this.expected(asRev(r), w.prefix).length > 0) return r;
    return undefined;
  }

  /** What the watcher has accounted for, for a report. */
  accountedTo(id: number): number | undefined {
    return this.get(id).to;
  }

  private get(id: number): Watched {
    const w = this.watched.get(id);
    if (w === undefined) throw new SimViolation('watch-order', `watcher ${id} received a message before it watched anything`);
    return w;
  }

  private accounted(id: number, w: Watched): number {
    if (w.to === undefined) throw new SimViolation('watch-order', `watcher ${id} (${show(w.prefix)}) received a message before its watch said where it starts`);
    return w.to;
  }

  private noEventsIn(id: number, w: Watched, from: number, to: number, what: string): void {
    for (let r = from; r <= to; r++) {
      this.counts.revsScanned++;
      const want = this.expected(asRev(r), w.prefix);
      if (want.length > 0) throw new SimViolation('watch-gap', `watcher ${id} (${show(w.prefix)}) never got rev ${r} (${want.map((c) => c.key).join(', ')}) though ${what}`);
    }
  }

  /** The committed entry's changes under `prefix`, in key order. */
  private expected(rev: Rev, prefix: string): SeenChange[] {
    const e: Entry | undefined = this.log.committed[rev];
    if (e === undefined) throw new SimViolation('watch-events', `a watch stream passed rev ${rev}, which the volume has not committed (committed up to ${this.log.maxCommitted})`);
    const out: SeenChange[] = [];
    for (const fx of e.effects) {
      if (fx.t === 'put' && matches(prefix, fx.key)) out.push({ key: fx.key, record: { value: fx.value, createRev: fx.createRev, modRev: rev, version: fx.version, session: fx.session } });
      else if (fx.t === 'del' && matches(prefix, fx.key)) out.push({ key: fx.key, record: undefined });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

/** A key a watch of `prefix` reports: under the prefix, and under /_coordvol/ only if the prefix is. */
function matches(prefix: string, key: string): boolean {
  return key.startsWith(prefix) && (!key.startsWith(RESERVED_PREFIX) || prefix.startsWith(RESERVED_PREFIX));
}

const show = (prefix: string): string => (prefix === '' ? 'everything' : JSON.stringify(prefix));

/** Where two lists of changes differ (keys in order, deletes, records), or undefined. */
function changesDiff(got: readonly SeenChange[], want: readonly SeenChange[]): string | undefined {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    const g = got[i];
    const w = want[i];
    if (g === undefined || w === undefined || g.key !== w.key) return `change ${i} is ${g?.key ?? 'none'}, the committed one ${w?.key ?? 'none'} (got ${got.map((c) => c.key).join(', ')}; committed ${want.map((c) => c.key).join(', ')})`;
    const why = recordDiff(g.record, w.record);
    if (why !== undefined) return `${g.key}: ${why}`;
  }
  return undefined;
}

function recordDiff(a: KeyRecord | undefined, b: KeyRecord | undefined): string | undefined {
  if (a === undefined || b === undefined) return a === b ? undefined : `${a ? 'a put' : 'a delete'}, committed ${b ? 'a put' : 'a delete'}`;
  if (a.modRev !== b.modRev || a.createRev !== b.createRev || a.version !== b.version || a.session !== b.session) {
    return `record (mod ${a.modRev}, create ${a.createRev}, version ${a.version}, session ${a.session}), committed (mod ${b.modRev}, create ${b.createRev}, version ${b.version}, session ${b.session})`;
  }
  return Buffer.from(a.value).equals(Buffer.from(b.value)) ? undefined : 'another value';
}
