// storage/memory: a brick in memory with the same semantics as storage/lmdb (tests, simulation).
// Nothing survives the process.
import { openMemoryBrick } from '../../store/index.js';
import type { OptionSchema, OptionValues } from '../options.js';
import type { TranslatorClass, TranslatorSpec } from '../translator.js';
import { brickIdentityOptions, brickStoreOptionsOf, StorageTranslator, volumeConfigOf, type BrickIdentityValues } from './brick.js';

const options = { ...brickIdentityOptions } as const satisfies OptionSchema;
type Values = OptionValues<typeof options> & BrickIdentityValues;

export class MemoryStorage extends StorageTranslator {
  private readonly o: Values;
  protected readonly readWaitMs: number;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.o = spec.options as unknown as Values;
    this.readWaitMs = this.o['read-wait-ms'];
  }

  override async init(): Promise<void> {
    const { config, brick } = volumeConfigOf(this.o, `memory:/${this.name}`);
    this.setStore(await openMemoryBrick({ config, brick, create: true, ...brickStoreOptionsOf(this.o) }), config, brick);
    await super.init();
  }

  protected brickPath(): string {
    return `memory:/${this.name}`;
  }
}

export const memoryStorageClass: TranslatorClass = {
  type: 'storage/memory',
  options,
  // The brick's store: a graph switch keeps it (and so its contents). Every option change is refused live.
  carried: true,
  subvolumes: { min: 0, max: 0 },
  create: (spec) => new MemoryStorage(spec),
};
