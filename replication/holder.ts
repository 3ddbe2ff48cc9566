// The holder's write path as a pure state machine (DESIGN §4.3–4.5): it queues client writes,
// evaluates them in batches against the working state (group commit), appends the resulting
// entries to every voter, advances commitRev by the quorum rule, and releases each reply once
// the rev it depends on has committed. Inputs are method calls; outputs are returned arrays that
// the caller (translators/cluster/replicate.ts) carries out. No clock, no I/O.
import { assert, AssertionError } from '../src/common/assert.js';
import { coordError, type CoordError } from '../src/common/errors.js';
import { asRev, NO_SESSION, type Epoch, type Rev } from '../src/common/ids.js';
import { batchesInFlightMax, batchOpsMax, pendingOpsMax } from '../src/common/limits.js';
import type { Entry, LogPosition } from '../store/types.js';
import { evaluate } from './evaluate.js';
import type { SessionInfo, SessionMark, WriteOp, WriteResult } from './ops.js';
import { SessionTable } from './session-table.js';
import { epochKey, encodeNumber } from './sessions.js';
import type { StateView } from './state-view.js';
import { WorkingState } from './working-state.js';

export type Outcome = { readonly ok: true; readonly result: WriteResult } | { readonly ok: false; readonly error: CoordError };

export interface AppendMessage {
  readonly epoch: Epoch;
  readonly prevEpoch: Epoch;
  readonly prevRev: Rev;
  readonly entries: readonly Entry[];
  readonly commitRev: Rev;
}

export type HolderOutput =
  | { readonly kind: 'append'; readonly to: string; readonly msg: AppendMessage }
  | { readonly kind: 'reply'; readonly id: number; readonly outcome: Outcome }
  /** The epoch-start entry committed: linearizable reads may be served from now on. */
  | { readonly kind: 'ready'; readonly commitRev: Rev }
  | { readonly kind: 'stepped-down'; readonly reason: CoordError };

export interface HolderInit {
  readonly epoch: Epoch;
  /** Brick ids of the voters; `local` is the holder's own brick, whose log is the holder's. */
  readonly voters: readonly string[];
  readonly local: string;
  readonly quorum: number;
  /** The holder's log after the heal on lock (DESIGN §4.3). */
  readonly last: LogPosition;
  readonly commitRev: Rev;
  readonly compactRev: Rev;
  /** The local brick's committed state at its latest durable commit point. */
  readonly base: () => StateView;
  /**
   * The session clock at the epoch-start entry (DESIGN §5): the sclock of the last log entry +
   * the source brick's quietMs + the time since that grant arrived. Never ahead of real time.
   */
  readonly sclock: number;
  /** The shortest session ttl: max(2 s, 4·leaseMs). */
  readonly sessionTtlMinMs: number;
}

interface VoterState {
  /** Highest rev this voter has durably acked. */
  matched: Rev;
  /** Last entry sent (pipelined appends go after it). */
  sent: LogPosition;
  inFlight: number;
}

/**
 * One request's evaluation never takes the batch (or the process) down with it: an unexpected
 * exception becomes that request's `internal` error. Assertion failures still propagate: a
 * broken invariant must stop the holder loudly.
 */
function evaluateSafely(...a: Parameters<typeof evaluate>): ReturnType<typeof evaluate> {
  try {
    return evaluate(...a);
  } catch (e) {
    if (e instanceof AssertionError) throw e;
    return { effects: [], outcome: { ok: false, error: coordError('internal', `evaluation failed: ${e instanceof Error ? e.message : String(e)}`) } };
  }
}

export class Holder {
  readonly epoch: Epoch;
  private readonly ws: WorkingState;
  private readonly voters = new Map<string, VoterState>();
  private readonly local: string;
  private readonly quorum: number;
  private readonly queue: { id: number; op: WriteOp; at: number }[] = [];
  /** Evaluated writes waiting for their rev to commit, in rev order. */
  private readonly waiting: { id: number; rev: Rev; outcome: Outcome }[] = [];
  private waitingHead = 0;
  /** Entries not yet acked by every voter, for pipelined sends. */
  private readonly unacked = new Map<number, Entry>();
  private last: LogPosition;
  private commitRevV: Rev;
  private startRev: Rev | undefined;
  private phase: 'new' | 'starting' | 'active' | 'down' = 'new';
  private readonly sessions: SessionTable;
  private readonly sclockStart: number;
  private readonly sessionTtlMinMs: number;
  /** Monotonic time of the epoch-start entry: sclock_now = sclockStart + (now − monoStart). */
  private monoStart = 0;
  /** Ids of the holder's own writes (marks, expiries): negative, so no caller waits on them. */
  private nextInternalId = -1;
  /** The latest time an input carried: flushes triggered by acks stamp entries with it (never ahead). */
  private lastNow = 0;

  constructor(init: HolderInit) {
    assert(init.voters.includes(init.local), 'the holder brick is a voter');
    assert(init.quorum >= 1 && init.quorum <= init.voters.length, `quorum ${init.quorum} of ${init.voters.length} voters`);
    assert(init.last.epoch < init.epoch, `holder epoch ${init.epoch} above its log's last epoch ${init.last.epoch}`);
    this.epoch = init.epoch;
    this.local = init.local;
    this.quorum = init.quorum;
    this.last = init.last;
    this.commitRevV = init.commitRev;
    for (const v of init.voters) this.voters.set(v, { matched: v === init.local ? init.commitRev : asRev(0), sent: init.last, inFlight: 0 });
    this.ws = new WorkingState(init.base, init.last.rev, init.commitRev, init.compactRev);
    this.sclockStart = init.sclock;
    this.sessionTtlMinMs = init.sessionTtlMinMs;
    this.sessions = new SessionTable();
  }

  /** The session clock now (DESIGN §5). */
  sclockNow(nowMs: number): number {
    return this.sclockStart + Math.max(0, nowMs - this.monoStart);
  }

  get commitRev(): Rev {
    return this.commitRevV;
  }
  /** Linearizable reads wait for this: the epoch-start entry has committed. */
  get isReady(): boolean {
    return this.phase === 'active';
  }
  get isDown(): boolean {
    return this.phase === 'down';
  }
  get lastRev(): Rev {
    return this.last.rev;
  }
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Appends the epoch-start entry (DESIGN §4.3): nothing of this epoch commits before it. It sets
   * the session clock and, by its epochs record, turns every session active in the log idle
   * (sessions.ts effectiveSession); the holder takes its session table from the result.
   */
  start(nowMs: number): HolderOutput[] {
    assert(this.phase === 'new', 'start once');
    this.phase = 'starting';
    this.monoStart = nowMs;
    this.lastNow = nowMs;
    const rev = asRev(this.last.rev + 1);
    const e: Entry = {
      epoch: this.epoch,
      rev,
      sclock: this.sclockStart,
      effects: [{ t: 'epoch-start' }, { t: 'put', key: epochKey(rev), value: encodeNumber(this.sclockStart), createRev: rev, version: 1, session: NO_SESSION }],
    };
    this.startRev = e.rev;
    this.ws.apply(e);
    this.appendLocal([e]);
    this.sessions.load(this.ws);
    return this.sendAll();
  }

  /** Queues a validated write; it is evaluated at the next flush. `nowMs`: its receipt time. */
  propose(id: number, op: WriteOp, nowMs = this.lastNow): HolderOutput[] {
    this.lastNow = Math.max(this.lastNow, nowMs);
    if (this.phase === 'down') return [{ kind: 'reply', id, outcome: { ok: false, error: coordError('no-quorum', 'this master no longer holds the volume lock') } }];
    if (this.queue.length >= pendingOpsMax) {
      return [{ kind: 'reply', id, outcome: { ok: false, error: coordError('too-large', `more than ${pendingOpsMax} writes are queued; retry later`) } }];
    }
    this.queue.push({ id, op, at: nowMs });
    return [];
  }

  /**
   * The session timer (DESIGN §5): marks idle the active sessions without a keepalive for ttl/2,
   * and expires active sessions at their deadline and idle ones once sclock_now ≥ idleUntil.
   * Judged on the working state; the entries it makes go through the queue like any write.
   */
  tick(nowMs: number): HolderOutput[] {
    if (this.phase !== 'active') return [];
    this.lastNow = Math.max(this.lastNow, nowMs);
    const { expire, marks } = this.sessions.due(nowMs, this.sclockNow(nowMs));
    for (const id of expire) this.queue.push({ id: this.nextInternalId--, op: { type: 'session-expire', args: { id } }, at: nowMs });
    if (marks.length > 0) this.queue.push({ id: this.nextInternalId--, op: { type: 'session-mark', args: { marks } }, at: nowMs });
    return this.flush(nowMs);
  }

  /** The sessions as this holder sees them (remaining time from its deadlines and sclock). */
  sessionsInfo(nowMs: number): SessionInfo[] {
    return this.sessions.info(this.ws, nowMs, this.sclockNow(nowMs));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Group commit: when a voter can take another batch, evaluate up to batchOpsMax queued writes
   * into entries and send them. Writes that change nothing wait for the rev they were evaluated at.
   */
  flush(nowMs = this.lastNow): HolderOutput[] {
    this.lastNow = Math.max(this.lastNow, nowMs);
    if (this.phase === 'new' || this.phase === 'down' || this.queue.length === 0) return [];
    const localV = this.voters.get(this.local) as VoterState;
    if (localV.inFlight >= batchesInFlightMax) return [];
    const batch = this.queue.splice(0, batchOpsMax);
    const entries: Entry[] = [];
    const sclock = this.sclockNow(nowMs);
    for (const { id, op: queued, at } of batch) {
      if (queued.type === 'session-expire' && !this.sessions.expiryStillDue(queued.args.id, nowMs, sclock)) continue;
      const op: WriteOp = queued.type === 'session-mark' ? { type: 'session-mark', args: { marks: this.sessions.stillDue(queued.args.marks, at) } } : queued;
      const rev = asRev(this.ws.lastRev + 1);
      const ev = evaluateSafely(this.ws, op, rev, { commitRev: this.commitRevV, compactRev: this.ws.compactRev, sessionTtlMinMs: this.sessionTtlMinMs });
      if (ev.outcome.ok) this.sessions.evaluated(op, ev.outcome.result, at);
      if (ev.effects.length > 0) {
        const e: Entry = { epoch: this.epoch, rev, sclock, effects: ev.effects };
        this.ws.apply(e);
        entries.push(e);
        this.waiting.push({ id, rev, outcome: ev.outcome });
      } else {
        this.waiting.push({ id, rev: this.ws.lastRev, outcome: ev.outcome });
      }
    }
    const out: HolderOutput[] = [];
    if (entries.length > 0) {
      this.appendLocal(entries);
      out.push(...this.sendAll());
    }
    out.push(...this.releaseReplies());
    return out;
  }

  private appendLocal(entries: readonly Entry[]): void {
    for (const e of entries) {
      assert(e.rev === this.last.rev + 1 && e.epoch === this.epoch, `holder log grows by one entry of its epoch: ${e.rev}`);
      this.unacked.set(e.rev, e);
      this.last = { epoch: e.epoch, rev: e.rev };
    }
  }

  /** Sends every voter the entries after what it was last sent, within its pipeline depth. */
  private sendAll(): HolderOutput[] {
    const out: HolderOutput[] = [];
    for (const [to, v] of this.voters) {
      if (v.inFlight >= batchesInFlightMax || v.sent.rev >= this.last.rev) continue;
      const entries: Entry[] = [];
      for (let r = v.sent.rev + 1; r <= this.last.rev; r++) {
        const e = this.unacked.get(r);
        assert(e !== undefined, `entry ${r} is held until every voter acks it`);
        entries.push(e);
      }
      out.push({ kind: 'append', to, msg: { epoch: this.epoch, prevEpoch: v.sent.epoch, prevRev: v.sent.rev, entries, commitRev: this.commitFor(to) } });
      v.sent = this.last;
      v.inFlight++;
    }
    return out;
  }

  /**
   * The commitRev a message carries. With a quorum of one, the only voter's durable ack of this
   * append is the commit itself, so the holder lets that brick apply the batch in the same
   * transaction (one fsync per batch instead of two). Otherwise: the holder's commitRev.
   */
  private commitFor(to: string): Rev {
    if (this.quorum === 1 && this.voters.size === 1 && to === this.local) return this.last.rev;
    return this.commitRevV;
  }

  /** A voter durably acked an append up to `lastRev`; its store has applied up to `appliedRev`. */
  onAppendAck(from: string, lastRev: Rev, appliedRev: Rev): HolderOutput[] {
    if (this.phase === 'down') return [];
    const v = this.voters.get(from);
    assert(v !== undefined, `ack from a voter: ${from}`);
    assert(v.inFlight > 0, `ack from ${from} matches an append in flight`);
    v.inFlight--;
    if (lastRev > v.matched) v.matched = lastRev;
    if (from === this.local) this.ws.committed(asRev(Math.min(appliedRev, this.ws.lastRev)));
    const out = this.advanceCommit();
    out.push(...this.sendAll(), ...this.flush(this.lastNow));
    return out;
  }

  /** The quorum rule: the highest r acked by a quorum whose entry is of this epoch. */
  private advanceCommit(): HolderOutput[] {
    const matched = [...this.voters.values()].map((v) => v.matched).sort((a, b) => b - a);
    const r = matched[this.quorum - 1] as Rev;
    const out: HolderOutput[] = [];
    if (this.startRev === undefined || r < this.startRev || r <= this.commitRevV) return out;
    // Every entry from startRev on is of this epoch; older ones commit only with it.
    assert(r <= this.last.rev, `commit ${r} within the log ${this.last.rev}`);
    this.commitRevV = r;
    const minMatched = matched[matched.length - 1] as Rev;
    for (const rev of [...this.unacked.keys()]) if (rev <= minMatched) this.unacked.delete(rev);
    if (this.phase === 'starting') {
      this.phase = 'active';
      out.push({ kind: 'ready', commitRev: r });
    }
    out.push(...this.releaseReplies());
    return out;
  }

  private releaseReplies(): HolderOutput[] {
    const out: HolderOutput[] = [];
    while (this.waitingHead < this.waiting.length) {
      const w = this.waiting[this.waitingHead] as { id: number; rev: Rev; outcome: Outcome };
      if (w.rev > this.commitRevV) break;
      out.push({ kind: 'reply', id: w.id, outcome: w.outcome });
      this.waitingHead++;
    }
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
    return out;
  }

  /** A voter refused (fenced) or failed. With one voter, that leaves no quorum. */
  onAppendFailure(from: string, reason: CoordError): HolderOutput[] {
    if (this.phase === 'down') return [];
    const v = this.voters.get(from);
    assert(v !== undefined, `failure from a voter: ${from}`);
    v.inFlight = Math.max(0, v.inFlight - 1);
    const reachable = [...this.voters.keys()].filter((k) => k !== from).length;
    if (reachable >= this.quorum) return [];
    return this.stepDown(reason);
  }

  /**
   * Gives up the lock: queued writes fail `no-quorum` (never appended); writes appended but not
   * known committed fail `indeterminate` (they may still commit under the next holder).
   */
  stepDown(reason: CoordError): HolderOutput[] {
    if (this.phase === 'down') return [];
    this.phase = 'down';
    const out: HolderOutput[] = [{ kind: 'stepped-down', reason }];
    for (let i = this.waitingHead; i < this.waiting.length; i++) {
      const w = this.waiting[i] as { id: number; rev: Rev };
      out.push({ kind: 'reply', id: w.id, outcome: { ok: false, error: coordError('indeterminate', `the write at rev ${w.rev} may or may not have committed: ${reason.message}`, { rev: w.rev }) } });
    }
    this.waiting.length = 0;
    this.waitingHead = 0;
    for (const q of this.queue.splice(0)) out.push({ kind: 'reply', id: q.id, outcome: { ok: false, error: coordError('no-quorum', `write not applied: ${reason.message}`) } });
    return out;
  }

  stats(): Record<string, unknown> {
    return {
      epoch: this.epoch,
      phase: this.phase,
      lastRev: this.last.rev,
      commitRev: this.commitRevV,
      startRev: this.startRev,
      queued: this.queue.length,
      waitingReplies: this.waiting.length - this.waitingHead,
      workingStateKeys: this.ws.size,
      voters: Object.fromEntries([...this.voters].map(([k, v]) => [k, { matched: v.matched, sent: v.sent.rev, inFlight: v.inFlight }])),
    };
  }
}
