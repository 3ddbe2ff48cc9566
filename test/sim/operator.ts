// The operator (DESIGN §4.7; §4 "Required checks": config changes while some masters are stale):
// every so often it changes the volume's membership one step at a time through whichever master
// it believes holds the lock — add a spare brick as a learner, promote it, remove a voter (or,
// rarely, a learner), change quorum-count — moving on to another master when told `not-holder`
// (or given no answer), and asking again later on `config-pending` / `learner-behind`. It reads
// the committed config as an operator reads `volume info`, and decides each step from it, so a
// change that was applied though its answer was lost is not made twice. A brick removed from the
// volume is wiped once it is out (DESIGN §4: it rejoins only as a new learner): its master
// restarts with a fresh brick under a new id, a spare again.
import type { Random } from '../../src/common/random.js';
import type { ConfigChange } from '../../replication/config.js';
import type { VolumeConfig } from '../../store/types.js';

export interface OperatorHost {
  readonly rnd: Random;
  now(): number;
  after(ms: number, run: () => void): void;
  /** Each master's current brick id, and whether it is up and reachable from the others. */
  nodes(): readonly { readonly brickId: string; readonly up: boolean; readonly cut: boolean }[];
  /** The volume's config as committed (what `volume info` shows). */
  committedConfig(): VolumeConfig | undefined;
  /** Sends the change to master `node` as a client write; the answer comes to onReply. */
  send(node: number, opId: number, change: ConfigChange): void;
  /** Wipes master `node`'s brick: crash, a fresh brick under a new id, restart. */
  wipe(node: number): void;
  trace(line: string): void;
}

export interface OperatorOptions {
  /** Mean ms between changes. */
  readonly everyMs: number;
  /** No change is started from then on. */
  readonly untilMs: number;
  /** An unanswered request is given up after this long (another master is tried). */
  readonly attemptTimeoutMs: number;
}

export class Operator {
  private target = 0;
  private opSeq = 0;
  private pending: { readonly opId: number; readonly change: ConfigChange } | undefined;
  /** Every brick that has been a member (a removed one is wiped, never added again). */
  private readonly everMember = new Set<string>();
  private readonly wiping = new Set<string>();
  readonly counts = { proposed: 0, applied: 0, refused: 0, timeouts: 0, wipes: 0, appliedWhileStale: 0, hasty: 0 };

  constructor(
    private readonly h: OperatorHost,
    private readonly o: OperatorOptions,
  ) {}

  start(): void {
    this.h.after(this.o.everyMs * this.h.rnd(), () => this.step());
  }

  private later(ms: number): void {
    this.h.after(ms, () => this.step());
  }

  private step(): void {
    if (this.pending !== undefined) return;
    const c = this.h.committedConfig();
    if (c === undefined || this.h.now() >= this.o.untilMs) return;
    for (const b of [...c.bricks, ...(c.learners ?? [])]) this.everMember.add(b);
    this.wipeRemoved(c);
    const change = this.next(c);
    if (change === undefined) return this.later(this.o.everyMs * (0.5 + this.h.rnd()));
    const opId = ++this.opSeq;
    this.pending = { opId, change };
    this.counts.proposed++;
    this.h.trace(`operator asks m${this.target}: ${describe(change)}`);
    this.h.send(this.target, opId, change);
    // An impatient operator (or a second one) asks for another change right away: the holder
    // must refuse it while the first is uncommitted (config-pending). Its answer is not awaited.
    const q = majority(c.bricks.length) + Math.floor(this.h.rnd() * (c.bricks.length - majority(c.bricks.length) + 1));
    if (this.h.rnd() < 0.25) {
      this.counts.hasty++;
      this.h.send(this.target, ++this.opSeq, { op: 'quorum-count', count: q });
    }
    this.h.after(this.o.attemptTimeoutMs, () => {
      if (this.pending?.opId !== opId) return;
      this.pending = undefined;
      this.counts.timeouts++;
      this.moveOn();
      this.later(10);
    });
  }

  /** The answer to request `opId`: ok, or a refusal code. */
  onReply(opId: number, ok: boolean, code: string | undefined): void {
    const p = this.pending;
    if (p === undefined || p.opId !== opId) return;
    this.pending = undefined;
    if (ok) {
      this.counts.applied++;
      if (this.h.nodes().some((n) => !n.up || n.cut)) this.counts.appliedWhileStale++;
      this.h.trace(`operator: ${describe(p.change)} appended`);
      return this.later(this.o.everyMs * (0.5 + this.h.rnd()));
    }
    this.counts.refused++;
    switch (code) {
      case 'not-holder':
      case 'no-quorum':
      case 'indeterminate':
        this.moveOn();
        return this.later(20 + 80 * this.h.rnd());
      case 'config-pending':
      case 'learner-behind':
        return this.later(100 + 200 * this.h.rnd());
      default:
        // invalid-argument (the step was made already, or the config moved on): decide again.
        this.h.trace(`operator: ${describe(p.change)} refused ${code ?? ''}`);
        return this.later(50 + 100 * this.h.rnd());
    }
  }

  private moveOn(): void {
    const n = this.h.nodes().length;
    this.target = (this.target + 1 + Math.floor(this.h.rnd() * (n - 1))) % n;
  }

  /** The next step from config `c`, or undefined (nothing to do now). */
  private next(c: VolumeConfig): ConfigChange | undefined {
    const rnd = this.h.rnd;
    const voters = c.bricks;
    const learners = c.learners ?? [];
    const spares = this.h.nodes().map((n) => n.brickId).filter((b) => !this.everMember.has(b));
    const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(rnd() * xs.length)];
    const remove = (): ConfigChange | undefined => {
      if (voters.length < 3) return undefined;
      // A removal must leave quorum-count within the voters left: lower it first.
      if (c.quorumCount > voters.length - 1) return { op: 'quorum-count', count: majority(voters.length) };
      const victim = pick(voters);
      return victim === undefined ? undefined : { op: 'remove', brick: victim };
    };
    const add = (): ConfigChange | undefined => {
      const b = pick(spares);
      return b === undefined ? undefined : { op: 'add-learner', brick: b };
    };
    const quorum = (): ConfigChange | undefined => {
      const options: number[] = [];
      for (let q = majority(voters.length); q <= voters.length; q++) if (q !== c.quorumCount) options.push(q);
      const q = pick(options);
      return q === undefined ? undefined : { op: 'quorum-count', count: q };
    };
    const learner = learners[0];
    if (learner !== undefined) return rnd() < 0.1 ? { op: 'remove', brick: learner } : { op: 'promote', brick: learner };
    if (voters.length >= 4) return rnd() < 0.2 ? quorum() ?? remove() : remove();
    if (voters.length <= 2) return add() ?? quorum();
    const x = rnd();
    if (x < 0.2) return quorum();
    if (x < 0.65) return add() ?? remove();
    return remove();
  }

  /** Bricks that were members and are no longer: wiped, after a while (they stay stale meanwhile). */
  private wipeRemoved(c: VolumeConfig): void {
    const members = new Set([...c.bricks, ...(c.learners ?? [])]);
    for (const [i, n] of this.h.nodes().entries()) {
      if (!this.everMember.has(n.brickId) || members.has(n.brickId) || this.wiping.has(n.brickId)) continue;
      const id = n.brickId;
      this.wiping.add(id);
      this.h.after(1_500 * this.h.rnd(), () => {
        if (this.h.nodes()[i]?.brickId !== id) return;
        this.counts.wipes++;
        this.h.trace(`operator wipes removed brick ${id} (m${i})`);
        this.h.wipe(i);
      });
    }
  }
}

const majority = (n: number): number => Math.floor(n / 2) + 1;

function describe(c: ConfigChange): string {
  return c.op === 'quorum-count' ? `quorum-count ${c.count}` : `${c.op} ${c.brick}`;
}
