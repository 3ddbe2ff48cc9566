// The storage engine under a brick: a few ordered tables and atomic, durable batches. LMDB in
// production (lmdb-engine.ts), a sorted in-memory map for simulation and tests
// (memory-engine.ts). The brick's logic (brick-store.ts) is written once, over this interface.

/** meta: string keys; log: rev numbers; kv/hist: binary keys, two sets for snapshot swaps. */
export type TableName = 'meta' | 'log' | 'kv0' | 'hist0' | 'kv1' | 'hist1';
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
   * Applies every op in one transaction. The change may become visible to reads before the
   * promise resolves; the promise resolves only once it is durable (fsync), unless the engine
   * was opened with fsync off.
   */
  write(ops: readonly WriteOp[]): Promise<void>;
  /** Removes every key of a table (not atomic with other writes). */
  clear(table: TableName): Promise<void>;
  close(): Promise<void>;
}
