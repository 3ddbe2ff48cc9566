// The translator framework: one interface for every layer. A translator overrides the fops it
// changes (in `handlers`) and every other fop winds to its first child, as GlusterFS's default
// fops do. Lifecycle: constructed by the graph builder, init() bottom-up, fini() top-down.
//
// A graph switch (graph-switch.ts) carries the stateful translators (the brick, the lock keeper,
// watch streams, the replication engine, the listener) into the new graph: it relinks them to
// their new subvolumes and hands them their new options, instead of building them again. The
// translators it builds anew count the fops inside them, so the switch knows when the old ones
// have drained and may be torn down.
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
  readonly env: GraphEnv;
  protected readonly handlers: FopHandlers = {};
  private state: 'new' | 'up' | 'down' = 'new';
  /** Replaced only by relink(); read through `children`. */
  private childrenV: readonly Translator[];
  /** The parsed options it runs with (reconfigure compares new ones against them). */
  private optionsV: Readonly<Record<string, RawOptionValue>>;
  /** Whether call() counts the fops inside (set by the graph builder: see countInFlight). */
  private countsFops = false;
  private fopsInFlightV = 0;
  /** whenIdle() callers, woken when fopsInFlightV drops to 0. */
  private idleWaiters: (() => void)[] = [];
  /** One closure for every counted call, not one per call. */
  private readonly fopSettled = (): void => {
    if (--this.fopsInFlightV === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  };

  constructor(spec: TranslatorSpec) {
    this.name = spec.name;
    this.type = spec.type;
    this.childrenV = spec.children;
    this.optionsV = spec.options;
    this.env = spec.env;
  }

  /** Its subvolumes, in volfile order. */
  get children(): readonly Translator[] {
    return this.childrenV;
  }

  /** The parsed options (defaults filled in) it was built or last reconfigured with. */
  get rawOptions(): Readonly<Record<string, RawOptionValue>> {
    return this.optionsV;
  }

  /**
   * Calls a fop on this translator: its own handler, or the default (wind to the child). A
   * counting translator adds one reaction to the call's promise; the others pay one branch.
   */
  call<F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
    if (!this.countsFops) return this.dispatch(fop, ctx, args);
    this.fopsInFlightV++;
    let p: Promise<FopResult<F>>;
    try {
      p = this.dispatch(fop, ctx, args);
    } catch (e) {
      this.fopSettled();
      throw e;
    }
    // The derived promise handles the rejection; the caller still gets (and handles) `p`.
    p.then(this.fopSettled, this.fopSettled);
    return p;
  }

  /**
   * For an override of call() that settles each call's promise in a reaction of its own anyway
   * (io-stats): counts the fop without adding another. Returns what to call once it settles, or
   * undefined when this translator does not count. The override then calls dispatch(), not
   * super.call().
   */
  protected countFop(): (() => void) | undefined {
    if (!this.countsFops) return undefined;
    this.fopsInFlightV++;
    return this.fopSettled;
  }

  /** The fop's handler here, or the default: call() without the counting. */
  protected dispatch<F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
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

  /**
   * Makes call() count the fops inside this translator. The graph builder sets it on the
   * translators a graph switch builds anew (and so tears down), never on carried ones.
   */
  countInFlight(): void {
    this.countsFops = true;
  }

  /** Fops inside this translator now (0 unless it counts them). */
  get fopsInFlight(): number {
    return this.fopsInFlightV;
  }

  /** Resolves once no fop is inside this translator (at once if none is, or it does not count). */
  whenIdle(): Promise<void> {
    if (this.fopsInFlightV === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * A graph switch carried this translator into a new graph: these are its subvolumes there
   * (new instances where the old ones were rebuilt). Called after every new translator is up,
   * before any old one is torn down; fops already wound to the old subvolumes finish there. An
   * override that keeps references to its subvolumes (or to translators below them) updates them
   * here. It may refuse by throwing: the switch is then undone (this and every translator relinked
   * before it get their old subvolumes back through relink). The default sets them.
   */
  relink(children: readonly Translator[]): void {
    this.childrenV = children;
  }

  /**
   * A graph switch carried this translator into a new graph whose volfile gives it other
   * options (parsed, defaults filled in). The default refuses every change: what a translator
   * set up from its options at init (a listener, a lease, a store) cannot follow them live, and
   * a refusal leaves the running graph exactly as it was. An override that can apply some
   * options live applies them, refuses the rest with refuseOptions(), then adoptOptions(). It
   * must also take the old options back: a switch refused later (another translator's refusal,
   * a failed init) reconfigures it with them again.
   */
  reconfigure(options: Readonly<Record<string, RawOptionValue>>): void {
    this.refuseOptions(options, []);
  }

  /** Throws volfile-invalid naming the first option, not among `live`, that `options` changes. */
  protected refuseOptions(options: Readonly<Record<string, RawOptionValue>>, live: readonly string[]): void {
    const option = changedOptions(this.optionsV, options).find((k) => !live.includes(k));
    if (option === undefined) return;
    throw coordError(
      'volfile-invalid',
      `option ${option} of volume ${this.name} (${this.type}) cannot change while running; restart the master`,
      { volume: this.name, option },
    );
  }

  /** Records options an override of reconfigure() has applied. */
  protected adoptOptions(options: Readonly<Record<string, RawOptionValue>>): void {
    this.optionsV = options;
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

/** The keys whose values differ between two parsed option sets, in sorted order. */
export function changedOptions(
  a: Readonly<Record<string, RawOptionValue>>,
  b: Readonly<Record<string, RawOptionValue>>,
): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => a[k] !== b[k]).sort();
}

/** A translator type: its volfile name, option table, and how to build one. */
export interface TranslatorClass {
  readonly type: string;
  readonly options: OptionSchema;
  /**
   * Its instances hold process state (a store, a lease, watch streams, the replication engine, a
   * listener): a graph switch carries a running one into the new graph (same name and type)
   * instead of building it again. Translators without it are built anew and the old ones torn
   * down once their fops have drained.
   */
  readonly carried?: true;
  /** How many subvolumes it takes (inclusive bounds). */
  readonly subvolumes: { readonly min: number; readonly max: number };
  create(spec: TranslatorSpec): Translator;
}
