// store/: the brick's storage engine. Opening a brick checks that the directory holds this
// volume's brick, an empty store, or refuses (corrupt, foreign LMDB, another volume).
import { coordError } from '../src/common/errors.js';
import { BrickStore, type BrickStoreOptions } from './brick-store.js';
import type { StorageEngine } from './engine.js';
import { brickIdOf, configDiff, volumeIdOf } from './identity.js';
import { LmdbEngine } from './lmdb-engine.js';
import { MemoryEngine } from './memory-engine.js';
import type { VolumeConfig } from './types.js';

export { BrickStore } from './brick-store.js';
export type { ScanItem, BrickStoreOptions } from './brick-store.js';
export { LmdbEngine } from './lmdb-engine.js';
export { MemoryEngine } from './memory-engine.js';
export type { StorageEngine } from './engine.js';
export { exportSnapshot, importSnapshot, type SnapshotChunk } from './snapshot.js';
export { volumeIdOf, brickIdOf, canonicalConfig } from './identity.js';
export type * from './types.js';

const OWN_TABLES = new Set(['meta', 'log', 'kv0', 'hist0', 'kv1', 'hist1']);

export interface OpenBrickOptions extends BrickStoreOptions {
  /** The volume this brick belongs to, from the volfile. */
  readonly config: VolumeConfig;
  /** This brick's host:path, one of config.bricks. */
  readonly brick: string;
  /** Create the brick if the store is empty (first start of a master from its volfile). */
  readonly create: boolean;
}

/** Opens (or creates) a brick on any engine, checking it belongs to the configured volume. */
export async function openBrick(engine: StorageEngine, opts: OpenBrickOptions): Promise<BrickStore> {
  const volumeId = volumeIdOf(opts.config);
  const brickId = brickIdOf(volumeId, opts.brick);
  let store = BrickStore.open(engine, opts);
  if (!store) {
    if (!opts.create) throw coordError('store-invalid', 'the store holds no brick (empty); a brick is created only from its volfile');
    if (!opts.config.bricks.includes(opts.brick)) {
      throw coordError('store-invalid', `brick ${opts.brick} is not in the volume's brick list [${opts.config.bricks.join(', ')}]`);
    }
    store = await BrickStore.create(engine, { volumeId, brickId, volumeName: opts.config.volumeName }, opts.config, opts);
  }
  if (store.identity.volumeId !== volumeId) {
    await engine.close();
    const diff = configDiff(store.config, opts.config);
    throw coordError('store-invalid', `the brick belongs to volume ${store.identity.volumeId}, the volfile describes ${volumeId}${diff.length ? ` (${diff.join('; ')})` : ''}`, {
      brickVolumeId: store.identity.volumeId,
      volfileVolumeId: volumeId,
    });
  }
  if (store.identity.brickId !== brickId) {
    await engine.close();
    throw coordError('store-invalid', `the brick is ${store.identity.brickId}, the volfile names ${opts.brick} (${brickId})`);
  }
  return store;
}

/** Opens a brick on LMDB in `dir`, refusing a corrupt or foreign LMDB environment. */
export async function openLmdbBrick(opts: OpenBrickOptions & { readonly dir: string; readonly fsync?: boolean }): Promise<BrickStore> {
  const engine = LmdbEngine.open({ dir: opts.dir, ...(opts.fsync !== undefined ? { fsync: opts.fsync } : {}) });
  const foreign = engine.subDatabaseNames().filter((n) => !OWN_TABLES.has(n));
  if (foreign.length > 0) {
    await engine.close();
    throw coordError('store-invalid', `${opts.dir} holds an LMDB environment that is not a coordvol brick (found ${foreign.slice(0, 5).join(', ')})`, { dir: opts.dir });
  }
  return openBrick(engine, opts);
}

export async function openMemoryBrick(opts: OpenBrickOptions): Promise<BrickStore> {
  return openBrick(new MemoryEngine(), opts);
}
