// The translator framework: one interface for every layer. A translator overrides the fops it
// changes (in `handlers`) and every other fop winds to its first child, as GlusterFS's default
// fops do. Lifecycle: constructed by the graph builder, init() bottom-up, fini() top-down.
import { coordError } from '../src/common/errors.js';
import type { FopArgs, FopContext, FopHandlers, FopName, FopResult, ProfileEntry, TranslatorDump } from './fops.js';
import type { OptionSchema, RawOptionValue } from './options.js';

/** A monotonic clock in ms. Injected so tests and the simulator control time. */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => performance.now() };

/** What the process gives every translator of a graph. */
export interface GraphEnv {
  readonly clock: Clock;
  /** Directory a relative `directory` option resolves against (the volfile's folder). */
  readonly baseDir: string;
}

export interface TranslatorSpec {
  readonly name: string;
  readonly type: string;
  readonly options: Readonly<Record<string, RawOptionValue>>;
  readonly children: readonly Translator[];
  readonly env: GraphEnv;
}

export abstract class Translator {
  readonly name: string;
  readonly type: string;
  readonly children: readonly Translator[];
  readonly env: GraphEnv;
  protected readonly handlers: FopHandlers = {};
  private state: 'new' | 'up' | 'down' = 'new';

  constructor(spec: TranslatorSpec) {
    this.name = spec.name;
    this.type = spec.type;
    this.children = spec.children;
    this.env = spec.env;
  }

  /** Calls a fop on this translator: its own handler, or the default (wind to the child). */
  call<F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
    const h = this.handlers[fop] as ((c: FopContext, a: FopArgs<F>) => Promise<FopResult<F>>) | undefined;
    if (h) return h.call(this, ctx, args);
    if (fop === 'statedump') return this.defaultStatedump(ctx) as Promise<FopResult<F>>;
    if (fop === 'profile') return this.defaultProfile(ctx) as Promise<FopResult<F>>;
    return this.wind(fop, ctx, args);
  }

  /** Passes a fop down to the first child (GlusterFS STACK_WIND to FIRST_CHILD). */
  protected wind<F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
    const child = this.children[0];
    if (!child) return Promise.reject(coordError('invalid-argument', `translator ${this.name} (${this.type}) does not implement ${fop} and has no subvolume`));
    return child.call(fop, ctx, args);
  }

  /** statedump gathers every translator's dump, top-down. */
  private async defaultStatedump(ctx: FopContext): Promise<readonly TranslatorDump[]> {
    const own: TranslatorDump = { name: this.name, type: this.type, state: this.dump() };
    const below = await Promise.all(this.children.map((c) => c.call('statedump', ctx, {})));
    return [own, ...below.flat()];
  }

  /** profile gathers every io-stats instance below (and including) this translator. */
  private async defaultProfile(ctx: FopContext): Promise<readonly ProfileEntry[]> {
    const below = await Promise.all(this.children.map((c) => c.call('profile', ctx, {})));
    return below.flat();
  }

  /** Called once, after every child is up. */
  async init(): Promise<void> {
    this.state = 'up';
  }

  /** Called once, before children are torn down. */
  async fini(): Promise<void> {
    this.state = 'down';
  }

  get isUp(): boolean {
    return this.state === 'up';
  }

  /** The translator's own state for statedump. */
  dump(): Readonly<Record<string, unknown>> {
    return {};
  }

  /** Finds the first translator of `type` at or below this one (depth-first). */
  find<T extends Translator>(type: string): T | undefined {
    if (this.type === type) return this as unknown as T;
    for (const c of this.children) {
      const t = c.find<T>(type);
      if (t) return t;
    }
    return undefined;
  }
}

/** A translator type: its volfile name, option table, and how to build one. */
export interface TranslatorClass {
  readonly type: string;
  readonly options: OptionSchema;
  /** How many subvolumes it takes (inclusive bounds). */
  readonly subvolumes: { readonly min: number; readonly max: number };
  create(spec: TranslatorSpec): Translator;
}
