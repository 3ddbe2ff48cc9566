// What evaluation and reads need of a state: point lookups and ordered scans. The store provides
// it at a committed rev; the working state layers uncommitted entries over that.
import type { KeyRange, KeyRecord } from '../store/types.js';

export interface ScanItem {
  readonly key: string;
  readonly record: KeyRecord;
}

export interface StateView {
  get(key: string): KeyRecord | undefined;
  /** Keys in [start, end) in key order; lazy. */
  scan(range: KeyRange): Iterable<ScanItem>;
}
