// store/: the brick's storage engine. Opening a brick checks that the directory holds this
// volume's brick, an empty store, or refuses (corrupt, foreign LMDB, another volume).
import { mkdirSync } from 'node:fs';
import { coordError } from '../src/common/errors.js';
import { BrickStore, type BrickStoreOptions } from './brick-store.js';
import type { StorageEngine } from './engine.js';
import { brickIdOf, configDiff, volumeIdOf } from './identity.js';
import { lockDir } from './dir-lock.js';
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

export interface OpenBrickOptions extends BrickStoreOptions {
  /** The volume this brick belongs to, from the volfile. */
  readonly config: VolumeConfig;
  /** This brick's host:path, one of config.bricks. */
  readonly brick: string;
  /** Create the brick if the store is empty (first start of a master from its volfile). */
  readonly create: boolean;
  /** Why an empty store must not be created after all (a brick that lost its store: see openLmdbBrick). */
  readonly refuseCreate?: string;
  /**
   * The brick joins a running volume (DESIGN §8, peer probe): it is created with the volume's
   * initial config, which does not name it; a config entry the holder sends makes it a learner.
   */
  readonly joining?: boolean;
}

/** Opens (or creates) a brick on any engine, checking it belongs to the configured volume. */
export async function openBrick(engine: StorageEngine, opts: OpenBrickOptions): Promise<BrickStore> {
  const volumeId = volumeIdOf(opts.config);
  const brickId = brickIdOf(volumeId, opts.brick);
  let store = await BrickStore.open(engine, opts);
  if (!store) {
    if (!opts.create) throw coordError('store-invalid', 'the store holds no brick (empty); a brick is created only from its volfile');
    if (opts.refuseCreate !== undefined) throw coordError('store-invalid', opts.refuseCreate);
    if (opts.joining !== true && !opts.config.bricks.includes(opts.brick)) {
      throw coordError('store-invalid', `brick ${opts.brick} is not in the volume's brick list [${opts.config.bricks.join(', ')}]`);
    }
    store = await BrickStore.create(engine, { volumeId, brickId, volumeName: opts.config.volumeName }, opts.config, opts);
  }
  if (store.identity.volumeId !== volumeId) {
    const diff = configDiff(store.config, opts.config);
    throw coordError('store-invalid', `the brick belongs to volume ${store.identity.volumeId}, the volfile describes ${volumeId}${diff.length ? ` (${diff.join('; ')})` : ''}`, {
      brickVolumeId: store.identity.volumeId,
      volfileVolumeId: volumeId,
    });
  }
  if (store.identity.brickId !== brickId) {
    throw coordError('store-invalid', `the brick is ${store.identity.brickId}, the volfile names ${opts.brick} (${brickId})`);
  }
  return store;
}

/** Opens a brick on LMDB in `dir`, refusing a corrupt or foreign LMDB environment. */
export async function openLmdbBrick(opts: OpenBrickOptions & { readonly dir: string; readonly fsync?: boolean }): Promise<BrickStore> {
  mkdirSync(opts.dir, { recursive: true });
  const lock = lockDir(opts.dir);
  let engine: LmdbEngine | undefined;
  try {
    engine = LmdbEngine.open({ dir: opts.dir, ...(opts.fsync !== undefined ? { fsync: opts.fsync } : {}) });
    const store = await openBrick(engine, opts);
    store.onClose(() => lock.release());
    return store;
  } catch (e) {
    await engine?.close().catch(() => undefined);
    lock.release();
    throw e;
  }
}

export async function openMemoryBrick(opts: OpenBrickOptions): Promise<BrickStore> {
  return openBrick(new MemoryEngine(), opts);
}
