// StorageEngine in memory, for the replication simulator and for tests: the same tables and
// orderings as LMDB (binary keys by byte order), writes applied at once.
import { sortedMap, type SortedMap } from '../src/common/sorted-map.js';
import { assert } from '../src/common/assert.js';
import { groupOf, TABLES, type RangeOptions, type StorageEngine, type TableEntry, type TableKey, type TableName, type WriteOp } from './engine.js';

function compareTableKeys(a: TableKey, b: TableKey): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return Buffer.compare(a, b);
  throw new Error(`mixed key types in one table: ${typeof a} and ${typeof b}`);
}

type Tree = SortedMap<TableKey, unknown>;


export class MemoryEngine implements StorageEngine {
  readonly kind = 'memory' as const;
  private readonly tables = new Map<TableName, Tree>();
  private closed = false;

  constructor() {
    for (const t of TABLES) this.tables.set(t, sortedMap<TableKey, unknown>(compareTableKeys));
  }

  private t(name: TableName): Tree {
    const t = this.tables.get(name);
    if (!t || this.closed) throw new Error(`memory engine: table ${name} unavailable`);
    return t;
  }

  get(table: TableName, key: TableKey): unknown {
    return this.t(table).get(key);
  }

  *range(table: TableName, opts: RangeOptions): Iterable<TableEntry> {
    const t = this.t(table);
    const limit = opts.limit ?? Infinity;
    let n = 0;
    if (!opts.reverse) {
      const it = opts.start === undefined ? t.entries() : t.entries(opts.start);
      for (const [key, value] of it) {
        if (n >= limit) return;
        if (opts.end !== undefined && compareTableKeys(key, opts.end) >= 0) return;
        n++;
        yield { key, value };
      }
    } else {
      const it = opts.start === undefined ? t.entriesReversed() : t.entriesReversed(opts.start);
      for (const [key, value] of it) {
        if (n >= limit) return;
        if (opts.end !== undefined && compareTableKeys(key, opts.end) <= 0) return;
        n++;
        yield { key, value };
      }
    }
  }

  write(ops: readonly WriteOp[]): Promise<void> {
    const group = ops[0] && groupOf(ops[0].table);
    assert(ops.every((op) => groupOf(op.table) === group), 'one write touches one table group (as on LMDB)');
    for (const op of ops) {
      const t = this.t(op.table);
      // Copy like a real store would serialize: callers may reuse their buffers afterwards.
      if (op.op === 'put') t.set(op.key, structuredClone(op.value));
      else t.delete(op.key);
    }
    return Promise.resolve();
  }

  clear(table: TableName): Promise<void> {
    this.t(table).clear();
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
