// StorageEngine on LMDB (lmdb-js). Writes are asynchronous: every op of one write() is issued in
// one synchronous loop, so lmdb-js's event-turn batching puts them in one transaction, and
// concurrent write() calls share that transaction and its fsync (group commit). lmdb-js makes a
// commit visible before it is durable (overlappingSync); write() resolves only on `flushed`.
import { open, type Database, type RootDatabase } from 'lmdb';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { coordError } from '../src/common/errors.js';
import type { RangeOptions, StorageEngine, TableEntry, TableKey, TableName, WriteOp } from './engine.js';

export interface LmdbEngineOptions {
  readonly dir: string;
  /** fsync every commit (default). Off is a benchmark/test mode that voids durability. */
  readonly fsync?: boolean;
  /** Initial map size in bytes; LMDB grows it on demand. */
  readonly mapSizeBytes?: number;
}

const TABLES: readonly TableName[] = ['meta', 'log', 'kv0', 'hist0', 'kv1', 'hist1'];

export class LmdbEngine implements StorageEngine {
  readonly kind = 'lmdb' as const;
  private readonly root: RootDatabase;
  private readonly dbs: Map<TableName, Database<unknown, TableKey>>;
  private closed = false;

  private constructor(root: RootDatabase, dbs: Map<TableName, Database<unknown, TableKey>>) {
    this.root = root;
    this.dbs = dbs;
  }

  static open(opts: LmdbEngineOptions): LmdbEngine {
    mkdirSync(opts.dir, { recursive: true });
    const path = join(opts.dir, 'brick.mdb');
    let root: RootDatabase;
    try {
      root = open({
        path,
        // A brick's meta must survive a process kill exactly as acked; after an OS crash, never
        // trust a commit that was not flushed. (Not in lmdb-js's typings.)
        ...({ safeRestore: true } as object),
        maxDbs: 12,
        noSync: opts.fsync === false,
        mapSize: opts.mapSizeBytes ?? 64 * 1024 * 1024,
      });
      const dbs = new Map<TableName, Database<unknown, TableKey>>();
      for (const t of TABLES) {
        const binaryKeys = t.startsWith('kv') || t.startsWith('hist');
        dbs.set(t, root.openDB<unknown, TableKey>({ name: t, ...(binaryKeys ? { keyEncoding: 'binary' } : {}) }));
      }
      return new LmdbEngine(root, dbs);
    } catch (e) {
      throw coordError('store-invalid', `cannot open ${path} as an LMDB brick: ${(e as Error).message}`, { path });
    }
  }

  /** Names of the LMDB sub-databases that exist, to tell a foreign LMDB from an empty one. */
  subDatabaseNames(): string[] {
    return [...this.root.getKeys({})].map(String);
  }

  private db(t: TableName): Database<unknown, TableKey> {
    const d = this.dbs.get(t);
    if (!d) throw new Error(`no table ${t}`);
    return d;
  }

  get(table: TableName, key: TableKey): unknown {
    return this.db(table).get(key);
  }

  range(table: TableName, opts: RangeOptions): Iterable<TableEntry> {
    return this.db(table).getRange(opts as Parameters<Database['getRange']>[0]) as Iterable<TableEntry>;
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    let last: Promise<boolean> | undefined;
    for (const op of ops) {
      const db = this.db(op.table);
      last = op.op === 'put' ? db.put(op.key, op.value) : db.remove(op.key);
    }
    if (last) await last;
    await this.root.flushed;
  }

  async clear(table: TableName): Promise<void> {
    await this.db(table).clearAsync();
    await this.root.flushed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.flushed;
    await this.root.close();
  }
}
