// The holder's write path as a pure state machine (DESIGN §4.3–4.5): it queues client writes,
// evaluates them in batches against the working state (group commit), appends the resulting
// entries to every voter, advances commitRev by the quorum rule, and releases each reply once
// the rev it depends on has committed. Inputs are method calls; outputs are returned arrays that
// the caller (translators/cluster/replicate.ts) carries out. No clock, no I/O.
import { assert, AssertionError } from '../src/common/assert.js';
import { coordError, type CoordError } from '../src/common/errors.js';
import { asEpoch, asRev, NO_SESSION, type Epoch, type Rev } from '../src/common/ids.js';
import { appendBytesMax, batchesInFlightMax, batchOpsMax, pendingOpsMax } from '../src/common/limits.js';
import type { Entry, LogPosition, VolumeConfig } from '../store/types.js';
import { applyConfigChange, learnersOf, quorumOf, type ConfigChange } from './config.js';
import { evaluate } from './evaluate.js';
import { DedupeTable } from './dedupe.js';
import type { Origin, SessionInfo, SessionMark, WriteOp, WriteResult } from './ops.js';
import { SessionTable } from './session-table.js';
import { epochKey, encodeNumber } from './sessions.js';
import type { StateView } from './state-view.js';
import { WorkingState } from './working-state.js';

export type Outcome = { readonly ok: true; readonly result: WriteResult } | { readonly ok: false; readonly error: CoordError };

export type { AppendMessage } from './messages.js';
import { entryBytes, type AppendMessage, type AppendResult, type SnapshotResult } from './messages.js';

export type HolderOutput =
  | { readonly kind: 'append'; readonly to: string; readonly msg: AppendMessage }
  /** Ship the local brick's committed state to `to` (DESIGN §4.8): its next entries have left the local log. */
  | { readonly kind: 'snapshot'; readonly to: string }
  | { readonly kind: 'reply'; readonly id: number; readonly outcome: Outcome }
  /** The epoch-start entry committed: linearizable reads may be served from now on. */
  | { readonly kind: 'ready'; readonly commitRev: Rev }
  /** A linearizable read may be served at readRev (from state applied to at least readRev), or is refused. */
  | { readonly kind: 'read'; readonly id: number; readonly outcome: { readonly ok: true; readonly readRev: Rev } | { readonly ok: false; readonly error: CoordError } }
  | { readonly kind: 'stepped-down'; readonly reason: CoordError };

export interface HolderInit {
  readonly epoch: Epoch;
  /**
   * The newest config in the log the holder took over (DESIGN §4.1): its voters, learners and
   * quorum. Config entries the holder appends take effect when appended (DESIGN §4.7).
   */
  readonly config: VolumeConfig;
  /** Maps a config's brick (host:path) to its brick id. Default: identity. */
  readonly brickIdOf?: (brick: string) => string;
  /** The holder's own brick (a voter), whose log is the holder's. */
  readonly local: string;
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
  /** The volume's leaseMs (a config value, DESIGN §4). Default 500. */
  readonly leaseMs?: number;
  /** ρ: the documented bound on clock drift rate (DESIGN §4.6). Default 0.01. */
  readonly driftRho?: number;
  /** One tick of the monotonic clock, subtracted from the lease. Default 1 ms. */
  readonly clockTickMs?: number;
  /** An append unanswered this long is sent again from the voter's matched rev. Default leaseMs. */
  readonly retransmitMs?: number;
  /**
   * The local brick's durable log: entries the holder must resend to a lagging voter after it
   * dropped them from memory. Without it the holder keeps every entry until all voters ack it.
   */
  readonly entryAt?: (rev: Rev) => Entry | undefined;
  /** The epoch of the local brick's entry at `rev`, also for the base a snapshot install left (no entry there). */
  readonly epochAt?: (rev: Rev) => Epoch | undefined;
  /** Entries per append message (default batchOpsMax); the simulator makes it small to split heals. */
  readonly appendMaxEntries?: number;
  /** A snapshot heal unanswered this long is asked for again. Default 60 s. */
  readonly snapshotTimeoutMs?: number;
  /** Deliberately broken variants, only for the simulator's tests that show its checks bite. */
  readonly bugs?: HolderBugs | undefined;
}

/** Broken variants of the holder (test/sim proves each is caught). Never set in production. */
export interface HolderBugs {
  /** Count a commit as soon as the local brick has the entry, before a quorum acked it. */
  readonly commitBeforeQuorum?: boolean;
  /** Let healed entries of older epochs commit by counting acks, without an entry of this epoch. */
  readonly countHealedEntries?: boolean;
  /** Serve lease reads before the epoch-start entry has committed. */
  readonly leaseReadBeforeStart?: boolean;
  /** A new holder expires every session in the log at once (instead of turning active ones idle with a full ttl). */
  readonly expireSessionsAtFailover?: boolean;
  /** The epoch start gives every session, idle ones included, a fresh idleUntil := sclock + ttl. */
  readonly fullTtlAtFailover?: boolean;
  /** Ack a keepalive of an idle session (under the lease) before the entry marking it active has committed. */
  readonly ackKeepaliveOnUncommittedMark?: boolean;
  /** Ignore writes' origins: a retried (clientId, seq) is evaluated and applied again. */
  readonly ignoreOrigin?: boolean;
  /** Append a config entry while an earlier one is uncommitted, or before an entry of this epoch has committed. */
  readonly configBeforeCommit?: boolean;
  /** Count learners' acks toward commit and the lease like voters'. */
  readonly countLearners?: boolean;
}

/** A brick the holder sends entries to: a voter, or a learner (DESIGN §4.7). */
interface VoterState {
  /** It votes: its acks count toward commit and lease. A learner's never do. */
  voting: boolean;
  /** Highest rev this voter has durably acked. */
  matched: Rev;
  /** Last entry sent (pipelined appends go after it). */
  sent: LogPosition;
  inFlight: number;
  /** Monotonic time, taken before sending, of the latest append or heartbeat this voter acked (DESIGN §4.6). */
  ackedSentAt: number;
  /** When anything was last sent to it (heartbeats go after leaseMs/3 of silence). */
  lastSendAt: number;
  /** When its matched rev last rose, or when entries went out to it with none unacked (for retransmission). */
  progressAt: number;
  /** It promised a higher epoch: it no longer counts toward commit or lease. */
  fenced: boolean;
  /** The commit point the last message to it carried. */
  told: Rev;
  /**
   * It needs entries the local log no longer holds: only a snapshot heal (DESIGN §4.8) can bring
   * it back. It still gets heartbeats (its acks count toward the lease, not toward commit).
   */
  needsSnapshot: boolean;
  /** When the snapshot heal now in flight to it was asked for (undefined: none). */
  snapshotAt: number | undefined;
  /** Since when it has stayed within one batch of the holder's last rev (a learner may be promoted after a heartbeat interval). */
  caughtUpSince: number | undefined;
}

/**
 * An evaluated write waiting for its rev to commit. `checked`: it wrote nothing (a failed or
 * read-only txn, an error), so its answer is a read of the working state and must also pass the
 * read check of DESIGN §4.4/§4.6 — a deposed holder must not answer from a stale state.
 */
interface Waiting {
  readonly id: number;
  readonly rev: Rev;
  readonly outcome: Outcome;
  readonly checked: boolean;
}

/** A linearizable read waiting for a quorum to ack a heartbeat sent after it arrived. */
interface PendingRead {
  readonly id: number;
  readonly readRev: Rev;
  readonly arrivedAt: number;
  /** A write's answer that waited for the read check (see Waiting), not a read. */
  readonly outcome?: Outcome;
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
  /** Every brick entries go to: the voters and learners of the newest config (and the local brick, even once removed). */
  private readonly voters = new Map<string, VoterState>();
  private readonly local: string;
  private quorum: number;
  /** The newest config in the holder's log, and the rev of its entry (0: the log it took over). */
  private config: VolumeConfig;
  private configRev: Rev = asRev(0);
  private readonly brickIdOf: (brick: string) => string;
  /** The rev of a config entry that removed the holder's own brick: it steps down once that commits. */
  private removedAt: Rev | undefined;
  private readonly snapshotTimeoutMs: number;
  private readonly queue: { id: number; op: WriteOp; at: number; origin?: Origin | undefined }[] = [];
  /** Clients' ackedSeqs and recorded seqs, in step with the working state (DESIGN §3). */
  private readonly dedupe = new DedupeTable();
  /** Evaluated writes waiting for their rev to commit, in rev order. */
  private readonly waiting: Waiting[] = [];
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
  private readonly leaseMs: number;
  private readonly leaseSpanMs: number;
  private readonly retransmitMs: number;
  private readonly entryAt: ((rev: Rev) => Entry | undefined) | undefined;
  private readonly epochAt: ((rev: Rev) => Epoch | undefined) | undefined;
  private readonly bugs: HolderBugs;
  private readonly appendMaxEntries: number;
  private readonly pendingReads: PendingRead[] = [];
  /** quorumSentAt(), while no answer or fence has changed it. */
  private quorumSentAtV: number | undefined;
  /** Replies the ackKeepaliveOnUncommittedMark bug sends from flush without waiting. */
  private readonly early: HolderOutput[] = [];
  /** The highest epoch a brick fenced this holder with (the next lock goes above it). */
  fencedBy = 0;
  /** The last entry of the log the holder took over (the heal's end): named by heartbeats before anything new is acked. */
  private readonly healedLast: LogPosition;

  constructor(init: HolderInit) {
    this.brickIdOf = init.brickIdOf ?? ((b) => b);
    assert(init.config.bricks.map(this.brickIdOf).includes(init.local), 'the holder brick is a voter');
    assert(init.last.epoch < init.epoch, `holder epoch ${init.epoch} above its log's last epoch ${init.last.epoch}`);
    this.epoch = init.epoch;
    this.local = init.local;
    this.last = init.last;
    this.healedLast = init.last;
    this.commitRevV = init.commitRev;
    this.config = init.config;
    this.quorum = quorumOf(init.config);
    // The local brick durably holds the healed log (DESIGN §4.3); the others are found by appending.
    this.adoptConfig(init.config);
    (this.voters.get(this.local) as VoterState).matched = init.last.rev;
    this.leaseMs = init.leaseMs ?? 500;
    // The lease holds until leaseMs·(1−2ρ) minus one clock tick after the quorum-th sentAt.
    this.leaseSpanMs = this.leaseMs * (1 - 2 * (init.driftRho ?? 0.01)) - (init.clockTickMs ?? 1);
    this.retransmitMs = init.retransmitMs ?? this.leaseMs;
    this.entryAt = init.entryAt;
    this.epochAt = init.epochAt;
    this.bugs = init.bugs ?? {};
    this.appendMaxEntries = init.appendMaxEntries ?? batchOpsMax;
    this.snapshotTimeoutMs = init.snapshotTimeoutMs ?? 60_000;
    // Healed entries past the commit point are not in the base view yet: layer them over it, so
    // writes are evaluated against the whole log the holder took over.
    this.ws = new WorkingState(init.base, init.entryAt ? init.commitRev : init.last.rev, init.commitRev, init.compactRev);
    if (init.entryAt) {
      for (let r = init.commitRev + 1; r <= init.last.rev; r++) {
        const e = init.entryAt(asRev(r));
        assert(e !== undefined, `the local brick holds healed entry ${r}`);
        this.ws.apply(e);
      }
    }
    this.sclockStart = init.sclock;
    this.sessionTtlMinMs = init.sessionTtlMinMs;
    this.sessions = new SessionTable(this.bugs);
  }

  /**
   * Makes `config` the membership entries go to and count by (DESIGN §4.7: a config takes effect
   * for the holder when appended). New bricks start unmatched — the first append finds where
   * their logs are; removed ones get nothing more, except the local brick, which keeps the
   * holder's log until it steps down.
   */
  private adoptConfig(config: VolumeConfig): void {
    const voting = new Set(config.bricks.map(this.brickIdOf));
    const members = [...voting, ...learnersOf(config).map(this.brickIdOf)];
    for (const id of members) {
      if (this.voters.has(id)) continue;
      this.voters.set(id, {
        voting: false,
        matched: asRev(0),
        sent: this.last,
        inFlight: 0,
        ackedSentAt: Number.NEGATIVE_INFINITY,
        lastSendAt: Number.NEGATIVE_INFINITY,
        progressAt: this.lastNow,
        fenced: false,
        told: asRev(0),
        needsSnapshot: false,
        snapshotAt: undefined,
        caughtUpSince: undefined,
      });
    }
    for (const [id, v] of this.voters) {
      v.voting = voting.has(id);
      if (!members.includes(id) && id !== this.local) this.voters.delete(id);
    }
    this.config = config;
    this.quorum = quorumOf(config);
    this.quorumSentAtV = undefined;
    assert(this.quorum >= 1 && this.quorum <= voting.size, `quorum ${this.quorum} of ${voting.size} voters`);
  }

  /** The voters (not learners) that have not fenced this holder. */
  private *countedVoters(): Iterable<VoterState> {
    for (const v of this.voters.values()) if ((v.voting || this.bugs.countLearners === true) && !v.fenced) yield v;
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
    this.sessions.load(this.ws, this.sclockStart);
    return this.sendAll();
  }

  /**
   * Queues a validated write; it is evaluated at the next flush. `nowMs`: its receipt time;
   * `origin`: its client's (clientId, seq, ackedSeq), for exactly-once retries (DESIGN §3).
   */
  propose(id: number, op: WriteOp, nowMs = this.lastNow, origin?: Origin): HolderOutput[] {
    this.lastNow = Math.max(this.lastNow, nowMs);
    if (this.phase === 'down') return [{ kind: 'reply', id, outcome: { ok: false, error: coordError('no-quorum', 'this master no longer holds the volume lock') } }];
    if (this.queue.length >= pendingOpsMax) {
      return [{ kind: 'reply', id, outcome: { ok: false, error: coordError('too-large', `more than ${pendingOpsMax} writes are queued; retry later`) } }];
    }
    this.queue.push({ id, op, at: nowMs, origin });
    return [];
  }

  /**
   * The session timer (DESIGN §5): marks idle the active sessions without a keepalive for ttl/2,
   * and expires active sessions at their deadline and idle ones once sclock_now ≥ idleUntil.
   * Judged on the working state; the entries it makes go through the queue like any write.
   */
  tick(nowMs: number): HolderOutput[] {
    if (this.phase === 'new' || this.phase === 'down') return [];
    this.lastNow = Math.max(this.lastNow, nowMs);
    // Check quorum (etcd's CheckQuorum): a holder no quorum has answered for two leases steps
    // down. Cut off, it could commit nothing, yet its appends to its own brick would keep that
    // brick's lease record fresh — its watches would never end with `moved` (DESIGN §6) while a
    // majority elsewhere moves on. Stepping down lets the brick's lease lapse.
    const heardAt = Math.max(this.quorumSentAt(), this.monoStart);
    if (this.quorum > 1 && nowMs - heardAt > 2 * this.leaseMs) {
      return this.stepDown(coordError('no-quorum', `no quorum of voters answered for ${Math.round(nowMs - heardAt)} ms`));
    }
    const out = this.keepVotersUp(nowMs);
    if (this.phase !== 'active') return out;
    const { expire, marks } = this.sessions.due(nowMs, this.sclockNow(nowMs));
    for (const id of expire) this.queue.push({ id: this.nextInternalId--, op: { type: 'session-expire', args: { id } }, at: nowMs });
    if (marks.length > 0) this.queue.push({ id: this.nextInternalId--, op: { type: 'session-mark', args: { marks } }, at: nowMs });
    out.push(...this.flush(nowMs));
    return out;
  }

  /**
   * Retransmission and heartbeats (DESIGN §4.6). An append unanswered for retransmitMs is taken
   * as lost: the voter is sent everything after its matched rev again (bricks skip what they
   * hold). A voter sent nothing for leaseMs/3 gets a heartbeat: an append with no entries at its
   * matched position, carrying commitRev.
   */
  private keepVotersUp(nowMs: number): HolderOutput[] {
    const out: HolderOutput[] = [];
    for (const [to, v] of this.voters) {
      if (v.fenced) continue;
      if (v.needsSnapshot && (v.snapshotAt === undefined || nowMs - v.snapshotAt >= this.snapshotTimeoutMs)) {
        // Its next entries have left the local log: the carrier ships the local brick's state.
        v.snapshotAt = nowMs;
        out.push({ kind: 'snapshot', to });
      }
      // Heartbeat answers do not count: a voter can ack heartbeats while every append to it is lost.
      if ((v.sent.rev > v.matched || v.inFlight > 0) && nowMs - v.progressAt >= this.retransmitMs) {
        v.inFlight = 0;
        this.resendFrom(v, v.matched);
      }
      const sent = v.inFlight === 0 && v.sent.rev < this.last.rev ? this.sendTo(to, v, nowMs) : [];
      out.push(...sent);
      // Heartbeats go on while a brick waits for a snapshot (DESIGN §4.6): its lease record stays
      // fresh, so its master does not stand against a live holder.
      if (sent.length === 0 && nowMs - v.lastSendAt >= this.leaseMs / 3) out.push(this.heartbeat(to, v, nowMs));
    }
    return out;
  }

  private heartbeat(to: string, v: VoterState, nowMs: number): HolderOutput {
    // At the voter's matched position; if the local log no longer holds it, at the commit point
    // (a mismatch answer still renews the voter's lease record and tells where it is).
    const prev = this.knownAt(v.matched) ?? this.knownAt(this.commitRevV) ?? this.healedLast;
    v.lastSendAt = nowMs;
    v.told = this.commitFor(to);
    return { kind: 'append', to, msg: { epoch: this.epoch, prevEpoch: prev.epoch, prevRev: prev.rev, entries: [], commitRev: v.told } };
  }

  /** (epoch, rev) of the holder's entry at rev (rev 0: the empty log), if its log still holds it. */
  private knownAt(rev: Rev): LogPosition | undefined {
    if (rev === 0) return { epoch: asEpoch(0), rev };
    if (rev === this.healedLast.rev) return this.healedLast;
    const e = this.entry(rev);
    if (e !== undefined) return { epoch: e.epoch, rev };
    // A snapshot install left the local log based at rev with no entry there: its epoch is known.
    const epoch = rev <= this.last.rev ? this.epochAt?.(rev) : undefined;
    return epoch === undefined ? undefined : { epoch, rev };
  }

  /** The next append to `v` goes after `rev`; below the local log, the voter needs a snapshot. */
  private resendFrom(v: VoterState, rev: Rev): void {
    const p = this.knownAt(rev);
    if (p === undefined) v.needsSnapshot = true;
    else v.sent = p;
  }

  private entry(rev: Rev): Entry | undefined {
    return this.unacked.get(rev) ?? this.entryAt?.(rev);
  }

  /**
   * A linearizable read (DESIGN §4.6): readRev := commitRev when it arrives. Served at once while
   * the lease holds; otherwise once a quorum has acked a heartbeat sent after it arrived.
   */
  read(id: number, nowMs: number): HolderOutput[] {
    this.lastNow = Math.max(this.lastNow, nowMs);
    const ready = this.phase === 'active' || (this.bugs.leaseReadBeforeStart === true && this.phase === 'starting');
    if (!ready) {
      const why = this.phase === 'down' ? 'this master no longer holds the volume lock' : 'the holder has not committed its epoch-start entry yet';
      return [{ kind: 'read', id, outcome: { ok: false, error: coordError('no-quorum', why) } }];
    }
    const readRev = this.commitRevV;
    if (this.leaseHolds(nowMs)) return [{ kind: 'read', id, outcome: { ok: true, readRev } }];
    this.pendingReads.push({ id, readRev, arrivedAt: nowMs });
    const out: HolderOutput[] = [];
    for (const [to, v] of this.voters) if (!v.fenced) out.push(this.heartbeat(to, v, nowMs));
    return out;
  }

  /** The lease holds until leaseMs·(1−2ρ) − one tick after the quorum-th largest acked sentAt. */
  leaseHolds(nowMs: number): boolean {
    if (this.phase !== 'active' && !(this.bugs.leaseReadBeforeStart === true && this.phase === 'starting')) return false;
    return nowMs < this.quorumSentAt() + this.leaseSpanMs;
  }

  /**
   * The quorum-th largest acked sentAt among voters not fenced. Linearizable reads ask for it on
   * every call, so it is kept, and computed again only after an answer or a fence changed it.
   */
  private quorumSentAt(): number {
    if (this.quorumSentAtV === undefined) {
      const acked = [...this.countedVoters()].map((v) => v.ackedSentAt).sort((a, b) => b - a);
      this.quorumSentAtV = acked[this.quorum - 1] ?? Number.NEGATIVE_INFINITY;
    }
    return this.quorumSentAtV;
  }

  private releaseReads(): HolderOutput[] {
    if (this.pendingReads.length === 0) return [];
    const q = this.quorumSentAt();
    const out: HolderOutput[] = [];
    while (this.pendingReads.length > 0 && (this.pendingReads[0] as PendingRead).arrivedAt <= q) {
      const r = this.pendingReads.shift() as PendingRead;
      out.push(r.outcome ? { kind: 'reply', id: r.id, outcome: r.outcome } : { kind: 'read', id: r.id, outcome: { ok: true, readRev: r.readRev } });
    }
    return out;
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
    for (const { id, op: queued, at, origin } of batch) {
      if (queued.type === 'session-expire' && !this.sessions.expiryStillDue(queued.args.id, nowMs, sclock)) continue;
      const op: WriteOp = queued.type === 'session-mark' ? { type: 'session-mark', args: { marks: this.sessions.stillDue(queued.args.marks, at) } } : queued;
      const rev = asRev(this.ws.lastRev + 1);
      const ev = op.type === 'config-change' ? this.evaluateConfig(op.args, rev, nowMs) : this.evaluateOne(op, rev, origin);
      if (ev.outcome.ok) this.sessions.evaluated(op, ev.outcome.result, at);
      if (ev.effects.length > 0) {
        const e: Entry = { epoch: this.epoch, rev, sclock, effects: ev.effects };
        this.ws.apply(e);
        entries.push(e);
        for (const fx of ev.effects) if (fx.t === 'config') this.configAppended(fx.config, rev);
        if (this.bugs.ackKeepaliveOnUncommittedMark === true && op.type === 'keepalive' && ev.outcome.ok && this.phase === 'active') {
          // Bug: the mark is taken as a side effect; the lease alone vouches for the ack.
          if (this.leaseHolds(nowMs)) this.early.push({ kind: 'reply', id, outcome: ev.outcome });
          else this.pendingReads.push({ id, readRev: this.commitRevV, arrivedAt: nowMs, outcome: ev.outcome });
          continue;
        }
        this.waiting.push({ id, rev, outcome: ev.outcome, checked: false });
      } else {
        this.waiting.push({ id, rev: this.ws.lastRev, outcome: ev.outcome, checked: true });
      }
    }
    const out: HolderOutput[] = this.early.splice(0);
    if (entries.length > 0) {
      this.appendLocal(entries);
      out.push(...this.sendAll());
    }
    out.push(...this.releaseReplies());
    return out;
  }

  /**
   * One write against the working state. With an origin, the dedupe table answers retries and
   * records the result (DESIGN §3); a session's end forgets its table.
   */
  private evaluateOne(op: WriteOp, rev: Rev, given: Origin | undefined): ReturnType<typeof evaluate> {
    const origin = this.bugs.ignoreOrigin === true ? undefined : given;
    const answered = origin === undefined ? undefined : this.dedupe.check(this.ws, origin);
    if (answered !== undefined) return answered;
    const ev = evaluateSafely(this.ws, op, rev, { commitRev: this.commitRevV, compactRev: this.ws.compactRev, sessionTtlMinMs: this.sessionTtlMinMs });
    if ((op.type === 'session-close' || op.type === 'session-expire') && ev.effects.length > 0) this.dedupe.ended(op.args.id);
    return origin === undefined ? ev : this.dedupe.recorded(this.ws, origin, op, ev, rev);
  }

  /**
   * A membership change (DESIGN §4.7). Appended only once an entry of this epoch has committed
   * (the epoch-start) and no earlier config entry is uncommitted, so configs change one at a
   * time and each is known to every later holder; a learner is promoted only after it has
   * stayed within one batch of the holder's log for a heartbeat interval.
   */
  private evaluateConfig(change: ConfigChange, rev: Rev, nowMs: number): ReturnType<typeof evaluate> {
    const refuse = (error: CoordError): ReturnType<typeof evaluate> => ({ effects: [], outcome: { ok: false, error } });
    const rules = this.bugs.configBeforeCommit !== true;
    if (rules && this.phase !== 'active') return refuse(coordError('config-pending', 'the holder has not committed an entry of its epoch yet: retry'));
    if (rules && this.configRev > this.commitRevV) return refuse(coordError('config-pending', `the config entry at rev ${this.configRev} has not committed yet: retry`, { rev: this.configRev }));
    const next = applyConfigChange(this.config, change);
    if (!('bricks' in next)) return refuse(next);
    // A change of the voters or the quorum takes effect at once: refuse one whose quorum does not
    // answer now, or the volume would be stuck until the missing voters return (its entry could
    // not commit, and no later entry either).
    if (change.op !== 'add-learner' && !(change.op === 'remove' && learnersOf(this.config).includes(change.brick))) {
      const voters = next.bricks.map(this.brickIdOf);
      const answering = voters.filter((id) => {
        const v = this.voters.get(id);
        return v !== undefined && !v.fenced && nowMs - v.ackedSentAt < this.leaseMs;
      });
      const need = quorumOf(next);
      if (answering.length < need) {
        return refuse(coordError('no-quorum', `after this change the volume needs ${need} of its voters ${next.bricks.join(', ')}, but only ${answering.length} answer now: bring the others back first`, { need, answering: answering.length }));
      }
    }
    if (change.op === 'promote') {
      const v = this.voters.get(this.brickIdOf(change.brick));
      const interval = this.leaseMs / 3;
      const behind = v === undefined || v.caughtUpSince === undefined || nowMs - v.caughtUpSince < interval;
      if (behind) {
        const where = v === undefined ? 'has not answered' : `has acked rev ${v.matched} of ${this.last.rev}`;
        return refuse(coordError('learner-behind', `learner ${change.brick} ${where}; it is promoted once it stays within ${batchOpsMax} revs for ${Math.round(interval)} ms: retry`, { matched: v?.matched ?? 0, lastRev: this.last.rev }));
      }
    }
    return { effects: [{ t: 'config', config: next }], outcome: { ok: true, result: { type: 'config-change', result: { rev, config: next } } } };
  }

  /** A config entry was appended at `rev`: it takes effect now (DESIGN §4.7). */
  private configAppended(config: VolumeConfig, rev: Rev): void {
    this.adoptConfig(config);
    this.configRev = rev;
    if (!config.bricks.map(this.brickIdOf).includes(this.local)) this.removedAt ??= rev;
  }

  /** Learners within one batch of the holder's log, since when (promotion waits a heartbeat interval of it). */
  private trackCatchUp(v: VoterState, nowMs: number): void {
    if (v.voting) return;
    const within = !v.needsSnapshot && this.last.rev - v.matched <= batchOpsMax;
    if (!within) v.caughtUpSince = undefined;
    else v.caughtUpSince ??= nowMs;
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
    for (const [to, v] of this.voters) out.push(...this.sendTo(to, v, this.lastNow));
    return out;
  }

  private sendTo(to: string, v: VoterState, nowMs: number): HolderOutput[] {
    if (v.fenced || v.needsSnapshot || v.inFlight >= batchesInFlightMax || v.sent.rev >= this.last.rev) return [];
    const entries: Entry[] = [];
    // A count and a byte budget, so one append always fits in a wire message.
    let bytes = 0;
    for (let r = v.sent.rev + 1; r <= this.last.rev && entries.length < this.appendMaxEntries && (entries.length === 0 || bytes < appendBytesMax); r++) {
      const e = this.entry(asRev(r));
      if (e === undefined) {
        // Trimmed from the local log (the voter was away longer than the log keeps): a snapshot heal.
        assert(this.entryAt !== undefined && r < this.last.rev, `entry ${r} is held until every voter acks it`);
        v.needsSnapshot = true;
        return [];
      }
      entries.push(e);
      bytes += entryBytes(e);
    }
    v.told = this.commitFor(to);
    const msg: AppendMessage = { epoch: this.epoch, prevEpoch: v.sent.epoch, prevRev: v.sent.rev, entries, commitRev: v.told };
    const lastSent = entries[entries.length - 1] as Entry;
    if (v.sent.rev <= v.matched) v.progressAt = nowMs;
    v.sent = { epoch: lastSent.epoch, rev: lastSent.rev };
    v.inFlight++;
    v.lastSendAt = nowMs;
    return [{ kind: 'append', to, msg }];
  }

  /**
   * The commitRev a message carries. With a quorum of one, the only voter's durable ack of this
   * append is the commit itself, so the holder lets that brick apply the batch in the same
   * transaction (one fsync per batch instead of two). Otherwise: the holder's commitRev.
   */
  private commitFor(to: string): Rev {
    if (this.quorum === 1 && to === this.local && this.voters.get(to)?.voting === true) return this.last.rev;
    return this.commitRevV;
  }

  /**
   * A voter's answer to an append of `carried` entries (0: a heartbeat) that left at `sentAt` (the
   * sender's clock, taken before sending). Late and duplicated answers are harmless: matched and
   * ackedSentAt only rise.
   */
  onAppendReply(from: string, res: AppendResult, sentAt: number, nowMs: number, carried: number): HolderOutput[] {
    if (this.phase === 'down') return [];
    this.lastNow = Math.max(this.lastNow, nowMs);
    const v = this.voters.get(from);
    if (v === undefined || v.fenced) return []; // a brick removed from the volume since
    if (carried > 0) v.inFlight = Math.max(0, v.inFlight - 1);
    if (!res.ok && res.reason === 'fenced') {
      assert(res.promisedEpoch > this.epoch || this.epoch === 0, `a brick fences only a lower epoch: ${res.promisedEpoch} vs ${this.epoch}`);
      return this.fenced(from, v, res.promisedEpoch);
    }
    if (sentAt > v.ackedSentAt) {
      v.ackedSentAt = sentAt;
      this.quorumSentAtV = undefined;
    }
    if (!res.ok) {
      // Log mismatch (DESIGN §4.5): resend from the brick's hint. Nothing in flight to it matters.
      v.inFlight = 0;
      // A late answer to an older append may hint below what the voter has acked since: it holds its matched rev.
      this.resendFrom(v, asRev(Math.max(this.resendAfter(res.hintEpoch, res.hintFirstRev, res.lastRev), v.matched)));
      v.progressAt = nowMs;
      const out = this.sendTo(from, v, nowMs);
      out.push(...this.releaseReads());
      return out;
    }
    if (res.lastRev > v.matched) {
      v.matched = asRev(Math.min(res.lastRev, this.last.rev));
      v.progressAt = nowMs;
      // A late answer to an append sent before a retransmission: nothing at or below it needs resending.
      if (v.sent.rev < v.matched) this.resendFrom(v, v.matched);
    }
    this.trackCatchUp(v, nowMs);
    // The local brick's applied point (answers may arrive out of order: it only rises).
    const applied = asRev(Math.min(res.commitRev, this.ws.lastRev));
    if (from === this.local && applied > this.ws.commitRev) this.ws.committed(applied);
    const out = this.advanceCommit();
    out.push(...this.releaseReads(), ...this.sendAll(), ...this.flush(this.lastNow));
    // A voter that was busy when the commit point moved learns it now (its watches wait for it).
    if (this.quorum > 1 && !v.fenced && v.told < this.commitRevV && v.inFlight === 0 && v.sent.rev >= this.last.rev) out.push(this.heartbeat(from, v, nowMs));
    return out;
  }

  /** A brick promised a higher epoch: it counts no more; without a quorum left, the holder steps down. */
  private fenced(from: string, v: VoterState, promisedEpoch: Epoch): HolderOutput[] {
    assert(promisedEpoch > this.epoch || this.epoch === 0, `a brick fences only a lower epoch: ${promisedEpoch} vs ${this.epoch}`);
    v.fenced = true;
    this.quorumSentAtV = undefined;
    this.fencedBy = Math.max(this.fencedBy, promisedEpoch);
    if ([...this.countedVoters()].length < this.quorum) return this.stepDown(coordError('fenced', `brick ${from} promised epoch ${promisedEpoch}, above this holder's ${this.epoch}`));
    return [];
  }

  /**
   * The answer to a snapshot heal asked of the carrier (DESIGN §4.8). Installed (or held
   * already): the brick holds the committed state at lastRev, so appends go on from there; its
   * ack counts for the lease like an append's. Failed: asked again after retransmitMs.
   */
  onSnapshotReply(from: string, res: SnapshotResult, sentAt: number, nowMs: number): HolderOutput[] {
    if (this.phase === 'down') return [];
    this.lastNow = Math.max(this.lastNow, nowMs);
    const v = this.voters.get(from);
    if (v === undefined || v.fenced) return [];
    v.snapshotAt = undefined;
    if (!res.ok && res.reason === 'fenced') return this.fenced(from, v, res.promisedEpoch);
    if (!res.ok) {
      // Try again once a retransmission interval has passed (keepVotersUp asks when snapshotAt is due).
      v.snapshotAt = nowMs - this.snapshotTimeoutMs + this.retransmitMs;
      return [];
    }
    if (sentAt > v.ackedSentAt) {
      v.ackedSentAt = sentAt;
      this.quorumSentAtV = undefined;
    }
    const at = this.knownAt(asRev(Math.min(res.lastRev, this.last.rev)));
    // The local log may have moved past s while the snapshot travelled: then another is needed.
    if (at === undefined) return [];
    v.needsSnapshot = false;
    v.inFlight = 0;
    if (at.rev > v.matched) v.matched = at.rev;
    v.sent = at;
    v.progressAt = nowMs;
    this.trackCatchUp(v, nowMs);
    const out = this.advanceCommit();
    out.push(...this.releaseReads(), ...this.sendTo(from, v, nowMs));
    return out;
  }

  /**
   * Where to resend from after a mismatch: after the holder's own last entry of the brick's epoch
   * at prevRev (entries of one epoch at one rev are identical, so the brick holds those), or
   * from the first rev the brick holds of that epoch; with no entry at prevRev, from its lastRev.
   * Never below the holder's commit point of the voter's matched rev.
   */
  private resendAfter(hintEpoch: Epoch | undefined, hintFirstRev: Rev | undefined, lastRev: Rev): Rev {
    let after: number;
    if (hintEpoch === undefined || hintFirstRev === undefined) after = Math.min(lastRev, this.last.rev);
    else {
      let mine = -1;
      for (let r = Math.min(this.last.rev, lastRev); r >= hintFirstRev; r--) {
        const e = this.entry(asRev(r));
        if (e === undefined || e.epoch < hintEpoch) break;
        if (e.epoch === hintEpoch) {
          mine = r;
          break;
        }
      }
      after = mine >= 0 ? mine : hintFirstRev - 1;
    }
    return asRev(Math.max(0, Math.min(after, this.last.rev)));
  }

  /** The quorum rule: the highest r acked by a quorum whose entry is of this epoch. */
  private advanceCommit(): HolderOutput[] {
    const counted = [...this.countedVoters()].map((v) => v.matched).sort((a, b) => b - a);
    // The broken variant counts the local brick alone as a quorum.
    const r = (this.bugs.commitBeforeQuorum === true ? this.voters.get(this.local)?.matched : counted[this.quorum - 1]) ?? asRev(0);
    const out: HolderOutput[] = [];
    const floor = this.bugs.countHealedEntries === true ? this.commitRevV : this.startRev;
    if (floor === undefined || r < floor || r <= this.commitRevV) return out;
    // Every entry from startRev on is of this epoch; older ones commit only with it.
    assert(r <= this.last.rev, `commit ${r} within the log ${this.last.rev}`);
    this.commitRevV = r;
    // Entries leave memory once every voter has them, or, with the local log to resend from, once the local brick does.
    const pruneTo = this.entryAt ? (this.voters.get(this.local) as VoterState).matched : Math.min(...[...this.voters.values()].filter((v) => !v.fenced).map((v) => v.matched));
    for (const rev of [...this.unacked.keys()]) if (rev < pruneTo) this.unacked.delete(rev); // keep pruneTo's: heartbeats name it
    if (this.phase === 'starting' && r >= (this.startRev ?? Infinity)) {
      this.phase = 'active';
      out.push({ kind: 'ready', commitRev: r });
    }
    out.push(...this.releaseReplies());
    // A config that removed the holder's own brick has committed: the volume goes on without it.
    if (this.removedAt !== undefined && r >= this.removedAt) {
      out.push(...this.stepDown(coordError('not-holder', `this master's brick left the volume by the config entry at rev ${this.removedAt}`)));
      return out;
    }
    // Tell the bricks the new commit point promptly: a heartbeat to voters with nothing in flight.
    for (const [to, v] of this.voters) if (!v.fenced && v.inFlight === 0 && v.sent.rev >= this.last.rev && this.quorum > 1) out.push(this.heartbeat(to, v, this.lastNow));
    return out;
  }

  private releaseReplies(): HolderOutput[] {
    const out: HolderOutput[] = [];
    let heartbeat = false;
    while (this.waitingHead < this.waiting.length) {
      const w = this.waiting[this.waitingHead] as Waiting;
      if (w.rev > this.commitRevV) break;
      this.waitingHead++;
      if (!w.checked || this.leaseHolds(this.lastNow)) out.push({ kind: 'reply', id: w.id, outcome: w.outcome });
      else {
        this.pendingReads.push({ id: w.id, readRev: w.rev, arrivedAt: this.lastNow, outcome: w.outcome });
        heartbeat = true;
      }
    }
    if (heartbeat) for (const [to, v] of this.voters) if (!v.fenced) out.push(this.heartbeat(to, v, this.lastNow));
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
    return out;
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
    for (const r of this.pendingReads.splice(0)) {
      const error = coordError('no-quorum', `${r.outcome ? 'answer' : 'read'} not served (it changed nothing): ${reason.message}`);
      out.push(r.outcome ? { kind: 'reply', id: r.id, outcome: { ok: false, error } } : { kind: 'read', id: r.id, outcome: { ok: false, error } });
    }
    return out;
  }

  /** Each voter as the holder sees it (heal info): what it has acked, and whether it answers. */
  voterViews(nowMs: number): { brickId: string; role: 'voter' | 'learner'; matched: Rev; reachable: boolean; fenced: boolean; needsSnapshot: boolean; snapshotting: boolean }[] {
    return [...this.voters].map(([brickId, v]) => ({
      brickId,
      role: v.voting ? 'voter' : 'learner',
      matched: v.matched,
      reachable: !v.fenced && nowMs - v.ackedSentAt < this.leaseMs,
      fenced: v.fenced,
      needsSnapshot: v.needsSnapshot,
      snapshotting: v.snapshotAt !== undefined,
    }));
  }

  /** The newest config in the holder's log (in force for it: DESIGN §4.7) and the rev of its entry. */
  get membership(): { readonly config: VolumeConfig; readonly rev: Rev; readonly committed: boolean } {
    return { config: this.config, rev: this.configRev, committed: this.configRev <= this.commitRevV };
  }

  /**
   * The oldest rev the holder may still need from the local log (it keeps it: DESIGN §3): a
   * lagging brick's next entry, and the entry before it, which a resend or heartbeat names as prev.
   */
  neededFrom(): Rev {
    let min: number = this.last.rev;
    for (const v of this.voters.values()) if (!v.fenced && !v.needsSnapshot) min = Math.min(min, v.matched);
    return asRev(min);
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
      voters: Object.fromEntries([...this.voters].map(([k, v]) => [k, { role: v.voting ? 'voter' : 'learner', matched: v.matched, sent: v.sent.rev, inFlight: v.inFlight, needsSnapshot: v.needsSnapshot }])),
    };
  }
}
