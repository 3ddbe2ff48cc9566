// An ordered map (sorted-btree), behind the narrow interface we use. sorted-btree is CommonJS with
// its class on `default`, and loaders disagree on what an ESM default import of it is (Node: the
// module object; vitest: the class), so it is loaded with require(), which is unambiguous.
import { createRequire } from 'node:module';

export interface SortedMap<K, V> {
  readonly size: number;
  get(key: K): V | undefined;
  set(key: K, value: V): boolean;
  delete(key: K): boolean;
  clear(): void;
  /** Ascending from `lowest` (inclusive), or from the first key. */
  entries(lowest?: K): IterableIterator<[K, V]>;
  /** Descending from `highest` (inclusive), or from the last key. */
  entriesReversed(highest?: K): IterableIterator<[K, V]>;
}

type Ctor = new <K, V>(entries: undefined, compare: (a: K, b: K) => number) => SortedMap<K, V>;
const require = createRequire(import.meta.url);
const BTree = (require('sorted-btree') as { default: Ctor }).default;

export function sortedMap<K, V>(compare: (a: K, b: K) => number): SortedMap<K, V> {
  return new BTree<K, V>(undefined, compare);
}
