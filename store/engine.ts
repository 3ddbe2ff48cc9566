// The storage engine under a brick: a few ordered tables and atomic, durable batches. LMDB in
// production (lmdb-engine.ts), a sorted in-memory map for simulation and tests
// (memory-engine.ts). The brick's logic (brick-store.ts) is written once, over this interface.
//
// Tables live in two groups that commit independently: the log group (the promise, the log,
// commitRev) and the state group (the state tables and their checkpoint). One write() touches
// one group only, so a large state checkpoint never holds up a log commit.

/** meta/smeta: string keys; log: rev numbers; kv/hist: binary keys, two sets for snapshot swaps. */
export type TableName = 'meta' | 'log' | 'smeta' | 'kv0' | 'hist0' | 'kv1' | 'hist1';
export type TableGroup = 'log' | 'state';

export const TABLES: readonly TableName[] = ['meta', 'log', 'smeta', 'kv0', 'hist0', 'kv1', 'hist1'];

export function groupOf(t: TableName): TableGroup {
  return t === 'meta' || t === 'log' ? 'log' : 'state';
}
export type TableKey = string | number | Buffer;

export type WriteOp =
  | { readonly table: TableName; readonly op: 'put'; readonly key: TableKey; readonly value: unknown }
  | { readonly table: TableName; readonly op: 'del'; readonly key: TableKey };

export interface RangeOptions {
  readonly start?: TableKey;
  /** Exclusive. */
  readonly end?: TableKey;
  readonly reverse?: boolean;
  readonly limit?: number;
}

export interface TableEntry {
  readonly key: TableKey;
  readonly value: unknown;
}

export interface StorageEngine {
  readonly kind: 'lmdb' | 'memory';
  get(table: TableName, key: TableKey): unknown;
  /** Lazily iterates [start, end) in key order (or reverse: from below `start` down to `end`). */
  range(table: TableName, opts: RangeOptions): Iterable<TableEntry>;
  /**
   * Applies every op (all of one table group) in one transaction. The change may become visible to reads before the
   * promise resolves; the promise resolves only once it is durable (fsync), unless the engine
   * was opened with fsync off.
   */
  write(ops: readonly WriteOp[]): Promise<void>;
  /** Removes every key of a table (not atomic with other writes). */
  clear(table: TableName): Promise<void>;
  close(): Promise<void>;
}
