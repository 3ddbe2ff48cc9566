// storage/lmdb: a brick on LMDB (DESIGN §2). Option `directory` holds the environment; the
// brick is created on first start from the identity options (the volume's entry (0, 1)).
import { existsSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { openLmdbBrick } from '../../store/index.js';
import type { OptionSchema, OptionValues } from '../options.js';
import type { TranslatorClass, TranslatorSpec } from '../translator.js';
import { brickIdentityOptions, brickStoreOptionsOf, StorageTranslator, volumeConfigOf, type BrickIdentityValues } from './brick.js';

const options = {
  directory: { type: 'path', description: 'the brick directory (LMDB environment)' },
  fsync: { type: 'bool', default: true, description: 'fsync every commit; off voids durability (benchmarks, tests)' },
  ...brickIdentityOptions,
} as const satisfies OptionSchema;

type Values = OptionValues<typeof options> & BrickIdentityValues;

/**
 * The file beside a replicated brick's directory that says the brick was created there. DESIGN
 * §4: a brick whose store is missing or empty never grants or acks as a voter — its empty log
 * would vote as if it had never acked the entries it had, and a quorum counting it could lose
 * committed writes. So once a brick of a replicated volume has been created, an empty store in
 * its place is refused rather than created again as a voter: the way back is as a new learner.
 */
export function createdMarkerOf(dir: string): string {
  return join(dirname(dir), `.${basename(dir)}.coordvol-brick`);
}

export class LmdbStorage extends StorageTranslator {
  private readonly o: Values;
  private readonly dir: string;
  protected readonly readWaitMs: number;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.o = spec.options as unknown as Values;
    this.dir = resolve(spec.env.baseDir, this.o.directory ?? 'brick');
    this.readWaitMs = this.o['read-wait-ms'];
  }

  override async init(): Promise<void> {
    const { config, brick } = volumeConfigOf(this.o, `${hostname()}:${this.dir}`);
    const marker = createdMarkerOf(this.dir);
    const replicated = config.bricks.length > 1 || this.o.join;
    const refuseCreate =
      replicated && existsSync(marker)
        ? `brick ${brick} was created before (${marker}), but its store in ${this.dir} is missing or empty. A brick that lost its store rejoins only as a new learner (DESIGN §4): ` +
          `from another master, \`coordvol volume reconfigure remove ${brick}\`; then delete ${marker}, start this master again, \`coordvol volume reconfigure add-learner ${brick}\`, and \`promote\` it once healed`
        : undefined;
    const store = await openLmdbBrick({ dir: this.dir, fsync: this.o.fsync, config, brick, create: true, ...(refuseCreate === undefined ? {} : { refuseCreate }), ...brickStoreOptionsOf(this.o) });
    this.setStore(store, config, brick);
    if (replicated && !existsSync(marker)) writeFileSync(marker, `${JSON.stringify({ volumeId: store.identity.volumeId, brickId: store.identity.brickId, brick })}\n`);
    await super.init();
  }

  protected brickPath(): string {
    return this.dir;
  }

  /** The brick's directory (absolute). */
  get brickDirectory(): string {
    return this.dir;
  }

  get fsyncOn(): boolean {
    return this.o.fsync;
  }
}

export const lmdbStorageClass: TranslatorClass = {
  type: 'storage/lmdb',
  options,
  // The brick's store: a graph switch keeps it open. Every option change is refused live.
  carried: true,
  subvolumes: { min: 0, max: 0 },
  create: (spec) => new LmdbStorage(spec),
};
