// debug/io-stats: counts every fop that passes through it, with errors and latency percentiles
// (GlusterFS's io-stats). Placed at several points of a graph, `profile` shows each layer. Not
// carried by a graph switch: an edit of its options (or of the stack) builds a new one, whose
// counts start from zero.
import { latencySamplesMax } from '../../src/common/limits.js';
import type { FopArgs, FopContext, FopName, FopResult, FopStats, ProfileEntry } from '../fops.js';
import type { OptionSchema, OptionValues } from '../options.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';

const options = {
  'latency-measurement': { type: 'bool', default: true, description: 'time every fop (off: counts and errors only, latencies 0)' },
} as const satisfies OptionSchema;
const UNCOUNTED = new Set<FopName>(['status', 'statedump', 'profile']);

/** Counts and a ring of recent latencies for one fop. */
class FopCounter {
  count = 0;
  errors = 0;
  maxMs = 0;
  sumMs = 0;
  private readonly ring = new Float64Array(latencySamplesMax);
  private filled = 0;
  private at = 0;

  record(ms: number, failed: boolean): void {
    this.count++;
    if (failed) this.errors++;
    if (ms > this.maxMs) this.maxMs = ms;
    this.sumMs += ms;
    this.ring[this.at] = ms;
    this.at = (this.at + 1) % this.ring.length;
    if (this.filled < this.ring.length) this.filled++;
  }

  stats(): FopStats {
    const s = Array.from(this.ring.subarray(0, this.filled)).sort((a, b) => a - b);
    const q = (p: number): number => (s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.floor(p * s.length))] as number));
    return { count: this.count, errors: this.errors, latencyMsP50: round(q(0.5)), latencyMsP99: round(q(0.99)), latencyMsMax: round(this.maxMs), latencyMsSum: round(this.sumMs) };
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

export class IoStatsTranslator extends Translator {
  private readonly counters = new Map<FopName, FopCounter>();
  private readonly now: () => number;

  constructor(spec: TranslatorSpec) {
    super(spec);
    // Built outside a volfile (connect()'s client graph) it has no options: timed, the default.
    const timed = (spec.options as Partial<OptionValues<typeof options>>)['latency-measurement'] !== false;
    this.now = timed ? () => performance.now() : () => 0;
    this.handlers.profile = async (ctx) => {
      const below = await Promise.all(this.children.map((c) => c.call('profile', ctx, {})));
      return [this.profile(), ...below.flat()];
    };
  }

  override call<F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
    if (UNCOUNTED.has(fop)) return super.call(fop, ctx, args);
    let c = this.counters.get(fop);
    if (!c) this.counters.set(fop, (c = new FopCounter()));
    const counter = c;
    // Counted for a graph switch in the reaction it has anyway (not super.call's own).
    const settled = this.countFop();
    const t0 = this.now();
    let p: Promise<FopResult<F>>;
    try {
      p = this.dispatch(fop, ctx, args);
    } catch (e) {
      counter.record(this.now() - t0, true);
      settled?.();
      return Promise.reject(e);
    }
    return p.then(
      (r) => (counter.record(this.now() - t0, false), settled?.(), r),
      (e: unknown) => {
        counter.record(this.now() - t0, true);
        settled?.();
        throw e;
      },
    );
  }

  profile(): ProfileEntry {
    const fops: Record<string, FopStats> = {};
    for (const [name, c] of this.counters) fops[name] = c.stats();
    return { name: this.name, fops };
  }

  override dump(): Readonly<Record<string, unknown>> {
    return this.profile().fops;
  }
}

export const ioStatsClass: TranslatorClass = {
  type: 'debug/io-stats',
  options,
  subvolumes: { min: 1, max: 1 },
  create: (spec) => new IoStatsTranslator(spec),
};
