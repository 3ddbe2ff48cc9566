// Running seeds: one seed is one whole simulated run plus its end checks. Shared by the tests
// (test/sim/sim.test.ts) and `npm run sim` (test/sim/run.ts), so a failing seed from either is
// reproduced by the command this prints.
import type { BrickBugs } from '../../replication/brick.js';
import type { MasterBugs } from '../../replication/master.js';
import { checkRun } from './history-checks.js';
import { SimViolation } from './log-checks.js';
import { Simulation, type CarrierBugs, type SimOptions } from './simulation.js';

/** The deliberately broken variants the checker must catch (issue 5, "The checker must be shown to bite"). */
export const BUGS = {
  'commit-before-quorum': { master: { commitBeforeQuorum: true } },
  'count-healed-entries': { master: { countHealedEntries: true } },
  'skip-epoch-fence': { brick: { skipEpochFence: true } },
  'grant-during-lease': { brick: { grantDuringLease: true } },
  'truncate-on-short-append': { brick: { truncateOnShortAppend: true } },
  'fall-back-heal-source': { master: { fallBackToOtherSource: true } },
  'lease-read-before-start': { master: { leaseReadBeforeStart: true } },
  'expire-sessions-at-failover': { master: { expireSessionsAtFailover: true } },
  'full-ttl-at-failover': { master: { fullTtlAtFailover: true } },
  'ack-keepalive-on-uncommitted-mark': { master: { ackKeepaliveOnUncommittedMark: true } },
  'ignore-origin': { master: { ignoreOrigin: true } },
  'config-before-commit': { master: { configBeforeCommit: true } },
  'count-learners': { master: { countLearners: true } },
  'stale-snapshot': { carrier: { staleSnapshot: true } },
  'snapshot-keeps-watches': { carrier: { snapshotKeepsWatches: true } },
} as const satisfies Record<string, { master?: MasterBugs; brick?: BrickBugs; carrier?: CarrierBugs }>;
export type BugName = keyof typeof BUGS;

export interface SeedOutcome {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation?: SimViolation;
  readonly stats: Readonly<Record<string, number>>;
  readonly trace: readonly string[];
  readonly ms: number;
}

export function reproduceCommand(seed: number, bug?: BugName): string {
  return `npm run sim -- --seeds 1 --from ${seed}${bug ? ` --bug ${bug}` : ''} --trace`;
}

export function runSeed(seed: number, opts: { bug?: BugName | undefined; trace?: boolean } & Partial<SimOptions> = {}): SeedOutcome {
  const t0 = performance.now();
  const bug = opts.bug ? (BUGS[opts.bug] as { master?: MasterBugs; brick?: BrickBugs; carrier?: CarrierBugs }) : undefined;
  const { bug: _bug, ...simOpts } = opts;
  const sim = new Simulation({ ...simOpts, seed, trace: opts.trace ?? false, ...(bug?.master ? { masterBugs: bug.master } : {}), ...(bug?.brick ? { brickBugs: bug.brick } : {}), ...(bug?.carrier ? { carrierBugs: bug.carrier } : {}) });
  // Refusals (`not-holder` to a client that picked another master, …) are CoordErrors by the
  // thousand per seed: without --trace their stacks are not captured (a fifth of a run's time
  // went to them and their garbage). A violation names its invariant, not a stack; an unexpected
  // exception has its stack again when the seed is reproduced with --trace.
  const stackTraceLimit = Error.stackTraceLimit;
  if (opts.trace !== true) Error.stackTraceLimit = 0;
  try {
    const r = sim.run();
    checkRun(r);
    return { seed, ok: true, stats: r.stats, trace: r.trace, ms: performance.now() - t0 };
  } catch (e) {
    if (!(e instanceof SimViolation)) throw e;
    return { seed, ok: false, violation: e, stats: { simMs: sim.agenda.nowMs }, trace: sim.traceSoFar(), ms: performance.now() - t0 };
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}
