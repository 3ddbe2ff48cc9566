// storage/lmdb: a brick on LMDB (DESIGN §2). Option `directory` holds the environment; the
// brick is created on first start from the identity options (the volume's entry (0, 1)).
import { hostname } from 'node:os';
import { resolve } from 'node:path';
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
    this.setStore(await openLmdbBrick({ dir: this.dir, fsync: this.o.fsync, config, brick, create: true, ...brickStoreOptionsOf(this.o) }));
    await super.init();
  }

  protected brickPath(): string {
    return this.dir;
  }
}

export const lmdbStorageClass: TranslatorClass = {
  type: 'storage/lmdb',
  options,
  subvolumes: { min: 0, max: 0 },
  create: (spec) => new LmdbStorage(spec),
};
