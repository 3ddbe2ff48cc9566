// Committed versions not yet checkpointed into the tables, in memory (an LSM memtable): the
// brick applies each committed entry here at once and writes the tables later, in checkpoints
// that cover many batches, so the synced write of a batch is an append to the log alone.
import { assert } from '../src/common/assert.js';
import type { Rev } from '../src/common/ids.js';
import { compareKeys } from '../src/common/keys.js';
import { sortedMap } from '../src/common/sorted-map.js';
import type { KeyRange, KeyRecord } from './types.js';

/** A key's state from `rev` on: its record, or null once deleted. */
export interface Version {
  readonly rev: Rev;
  readonly record: KeyRecord | null;
}

export class VersionOverlay {
  private readonly byKey = sortedMap<string, Version[]>(compareKeys);
  /** (rev, key) in rev order, for pruning. */
  private readonly queue: { rev: Rev; key: string }[] = [];
  private head = 0;

  add(key: string, v: Version): void {
    let vs = this.byKey.get(key);
    if (!vs) this.byKey.set(key, (vs = []));
    const last = vs[vs.length - 1];
    assert(!last || last.rev < v.rev, `versions of ${key} are added in rev order`);
    vs.push(v);
    this.queue.push({ rev: v.rev, key });
  }

  /** The latest version of `key` at or below `rev`, if the overlay holds one. */
  latest(key: string, rev: Rev): Version | undefined {
    const vs = this.byKey.get(key);
    if (!vs) return undefined;
    for (let i = vs.length - 1; i >= 0; i--) {
      const v = vs[i] as Version;
      if (v.rev <= rev) return v;
    }
    return undefined;
  }

  /** Keys in range with a version at or below `rev`, in key order, with that version. */
  *scan(range: KeyRange, rev: Rev): Generator<{ key: string; version: Version }> {
    for (const [key] of this.byKey.entries(range.start)) {
      if (range.end !== undefined && compareKeys(key, range.end) >= 0) return;
      const v = this.latest(key, rev);
      if (v) yield { key, version: v };
    }
  }

  /** Versions at or below `rev` are in the tables now: forget them. */
  prune(rev: Rev): void {
    while (this.head < this.queue.length) {
      const q = this.queue[this.head] as { rev: Rev; key: string };
      if (q.rev > rev) break;
      const vs = this.byKey.get(q.key);
      if (vs) {
        let n = 0;
        while (n < vs.length && (vs[n] as Version).rev <= rev) n++;
        if (n === vs.length) this.byKey.delete(q.key);
        else if (n > 0) vs.splice(0, n);
      }
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.byKey.clear();
    this.queue.length = 0;
    this.head = 0;
  }

  get keys(): number {
    return this.byKey.size;
  }
}
