// StorageEngine on LMDB (lmdb-js), as two environments: log.mdb (the promise, the log,
// commitRev) and state.mdb (the state tables and their checkpoint), so the big checkpoint
// transactions and their fsyncs never hold up the small log commits a write's ack waits for.
// Writes are asynchronous: every op of one write() is issued in one synchronous loop, so
// lmdb-js's event-turn batching puts them in one transaction, and concurrent write() calls share
// that transaction and its fsync (group commit). lmdb-js makes a commit visible before it is
// durable (overlappingSync); write() resolves only on `flushed`.
import { open, type Database, type RootDatabase } from 'lmdb';
import { closeSync, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '../src/common/assert.js';
import { coordError } from '../src/common/errors.js';
import { groupOf, TABLES, type RangeOptions, type StorageEngine, type TableEntry, type TableGroup, type TableKey, type TableName, type WriteOp } from './engine.js';

export interface LmdbEngineOptions {
  readonly dir: string;
  /** fsync every commit (default). Off is a benchmark/test mode that voids durability. */
  readonly fsync?: boolean;
  /** Initial map size in bytes; LMDB grows it on demand. */
  readonly mapSizeBytes?: number;
}

export const ENV_FILES: Readonly<Record<TableGroup, string>> = { log: 'log.mdb', state: 'state.mdb' };

/** LMDB's meta page magic, at byte 24 of a data file (after the 16-byte page header and mm_version). */
const LMDB_MAGIC = 0xbeefc0de;

/** lmdb-js crashes the process on a file that is not LMDB: look before opening. */
function checkLmdbFile(path: string): void {
  if (!existsSync(path)) return;
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(28);
    const n = readSync(fd, head, 0, head.length, 0);
    if (n === 0) return; // empty: LMDB initialises it
    if (n < head.length || head.readUInt32LE(24) !== LMDB_MAGIC) {
      throw coordError('store-invalid', `${path} is not an LMDB file (corrupt or foreign); refusing to open it`, { path });
    }
  } finally {
    closeSync(fd);
  }
}

/** The root of our environments holds only our named tables; anything else is foreign data. */
function checkRootKeys(root: RootDatabase, path: string): void {
  const names = new Set<string>(TABLES);
  for (const key of root.getKeys({})) {
    // A named table's entry reads as undefined through lmdb-js; a plain key reads as its value.
    if (typeof key !== 'string' || !names.has(key) || root.get(key) !== undefined) {
      throw coordError('store-invalid', `${path} holds an LMDB environment that is not a coordvol brick (found key ${JSON.stringify(String(key))})`, { path });
    }
  }
}

export class LmdbEngine implements StorageEngine {
  readonly kind = 'lmdb' as const;
  private closed = false;

  private constructor(
    private readonly roots: ReadonlyMap<TableGroup, RootDatabase>,
    private readonly dbs: ReadonlyMap<TableName, Database<unknown, TableKey>>,
  ) {}

  static open(opts: LmdbEngineOptions): LmdbEngine {
    mkdirSync(opts.dir, { recursive: true });
    const roots = new Map<TableGroup, RootDatabase>();
    const dbs = new Map<TableName, Database<unknown, TableKey>>();
    let path = '';
    try {
      for (const group of ['log', 'state'] as const) {
        path = join(opts.dir, ENV_FILES[group]);
        checkLmdbFile(path);
        const root = open({
            path,
            maxDbs: 8,
            noSync: opts.fsync === false,
            mapSize: opts.mapSizeBytes ?? 64 * 1024 * 1024,
            // After an OS crash, never trust a commit that was not flushed. (Not in the typings.)
            ...({ safeRestore: true } as object),
          });
        roots.set(group, root);
        checkRootKeys(root, path);
      }
      for (const t of TABLES) {
        const binaryKeys = t.startsWith('kv') || t.startsWith('hist');
        const root = roots.get(groupOf(t)) as RootDatabase;
        dbs.set(t, root.openDB<unknown, TableKey>({ name: t, ...(binaryKeys ? { keyEncoding: 'binary' } : {}) }));
      }
      return new LmdbEngine(roots, dbs);
    } catch (e) {
      for (const r of roots.values()) void r.close();
      if (e instanceof Error && 'code' in e && (e as { code: unknown }).code === 'store-invalid') throw e;
      throw coordError('store-invalid', `cannot open ${path} as an LMDB brick: ${(e as Error).message}`, { path });
    }
  }

  private db(t: TableName): Database<unknown, TableKey> {
    const d = this.dbs.get(t);
    assert(d !== undefined, `table ${t} exists`);
    return d;
  }

  private root(g: TableGroup): RootDatabase {
    return this.roots.get(g) as RootDatabase;
  }

  get(table: TableName, key: TableKey): unknown {
    return this.db(table).get(key);
  }

  range(table: TableName, opts: RangeOptions): Iterable<TableEntry> {
    return this.db(table).getRange(opts as Parameters<Database['getRange']>[0]) as Iterable<TableEntry>;
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    const first = ops[0];
    if (!first) return;
    const group = groupOf(first.table);
    let last: Promise<boolean> | undefined;
    for (const op of ops) {
      assert(groupOf(op.table) === group, 'one write touches one table group');
      const db = this.db(op.table);
      last = op.op === 'put' ? db.put(op.key, op.value) : db.remove(op.key);
    }
    // Ask for the flush now, while this write's batch is the pending one: lmdb-js resolves
    // `flushed` for the batch current when `then` is called, so asking after the commit would
    // also wait for the flush of whatever batch was issued meanwhile (a convoy).
    const flushed = new Promise<unknown>((resolve, reject) => {
      void this.root(group).flushed.then(resolve, reject);
    });
    if (last) await last;
    await flushed;
  }

  async clear(table: TableName): Promise<void> {
    await this.db(table).clearAsync();
    await this.root(groupOf(table)).flushed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.roots.values()) {
      await r.flushed;
      await r.close();
    }
  }
}
