// A master's replication engine (DESIGN §4.2–4.6) as a pure state machine: it stands for
// election when its local brick's lease has lapsed (probe first, then lock), heals its local
// brick from the best grant, and then runs a Holder for its epoch. Inputs are method calls with
// the master's monotonic time; outputs are returned arrays the caller carries out (messages to
// bricks, replies to clients). Randomness is injected. No clock, no I/O.
import { assert, unreachable } from '../src/common/assert.js';
import { coordError, type CoordError } from '../src/common/errors.js';
import { asEpoch, asRev, type Epoch, type Rev } from '../src/common/ids.js';
import type { Random } from '../src/common/random.js';
import type { Entry, LogPosition, VolumeConfig } from '../store/types.js';
import { quorumOf } from './config.js';
import { Holder, type HolderBugs, type HolderOutput } from './holder.js';
import type { AppendResult, BrickReply, BrickRequest, FetchResult, LockResult, ProbeResult } from './messages.js';
import type { Origin, WriteOp } from './ops.js';
import type { StateView } from './state-view.js';

/** What the master reads of its own brick (same process: no message needed). */
export interface LocalBrick {
  readonly brickId: string;
  readonly promisedEpoch: Epoch;
  readonly last: LogPosition;
  readonly commitRev: Rev;
  readonly compactRev: Rev;
  /** The newest config in the brick's log. */
  readonly config: VolumeConfig;
  entry(rev: Rev): Entry | undefined;
  /** The epoch of the entry at `rev`, also where the log holds only that position (a snapshot's base). */
  epochAt(rev: Rev): Epoch | undefined;
  /** The brick's committed state at its commit point (the holder's working-state base). */
  latestView(): StateView;
  /** Its lease record has lapsed: no holder has appended for leaseMs (DESIGN §4.2). */
  leaseLapsed(nowMs: number): boolean;
}

/** The durable side of a brick a LocalBrick reads (BrickStore, and the simulator's SimBrick). */
export type BrickLogState = Pick<LocalBrick, 'promisedEpoch' | 'last' | 'commitRev' | 'compactRev' | 'entry' | 'epochAt'>;

/**
 * A LocalBrick over a brick's durable state, its committed view, its lease record and the
 * newest config in its log (committed or not: elections and quorums go by it, DESIGN §4.1).
 */
export function localBrickOver(log: BrickLogState, brickId: string, latestView: () => StateView, leaseLapsed: (nowMs: number) => boolean, newestConfig: () => VolumeConfig): LocalBrick {
  return {
    brickId,
    get promisedEpoch() {
      return log.promisedEpoch;
    },
    get last() {
      return log.last;
    },
    get commitRev() {
      return log.commitRev;
    },
    get compactRev() {
      return log.compactRev;
    },
    get config() {
      return newestConfig();
    },
    entry: (rev) => log.entry(rev),
    epochAt: (rev) => log.epochAt(rev),
    latestView,
    leaseLapsed,
  };
}

/** Broken variants (test/sim proves each is caught). Never set in production. */
export interface MasterBugs extends HolderBugs {
  /** When the heal source stops answering, heal from the next-best grant instead of locking again. */
  readonly fallBackToOtherSource?: boolean;
}

export interface MasterOptions {
  /** This master's id: the candidate in locks, the sender in appends. */
  readonly id: string;
  readonly leaseMs: number;
  /** ρ, the documented bound on clock drift rate. */
  readonly driftRho: number;
  /** How long a probe, lock or fetch round waits for answers. */
  readonly roundTimeoutMs: number;
  readonly random: Random;
  /** Maps a config's brick (host:path) to its brick id. Default: identity. */
  readonly brickIdOf?: (brick: string) => string;
  /** Entries per heal fetch. */
  readonly fetchMaxEntries?: number;
  /** Entries per append message (default: the batch cap). */
  readonly appendMaxEntries?: number;
  /** A snapshot heal unanswered this long is asked for again (default: the holder's, 60 s). */
  readonly snapshotTimeoutMs?: number;
  readonly bugs?: MasterBugs;
}

export type MasterOutput =
  | { readonly kind: 'send'; readonly to: string; readonly reqId: number; readonly req: BrickRequest }
  | Exclude<HolderOutput, { readonly kind: 'append' | 'snapshot' }>
  /** The master became a candidate, the holder, or a follower again (for logs and inspection). */
  | { readonly kind: 'role'; readonly role: Role; readonly epoch: Epoch };

export type Role = 'follower' | 'probing' | 'locking' | 'healing' | 'holder';

type Grant = Extract<LockResult, { granted: true }> & { readonly from: string; readonly at: number };

interface Outstanding {
  readonly to: string;
  readonly req: BrickRequest;
  readonly sentAt: number;
  /** The election round or holder it belongs to: answers to an abandoned one are dropped. */
  readonly round: number;
}

const positionAbove = (a: LogPosition, b: LogPosition): boolean => a.epoch > b.epoch || (a.epoch === b.epoch && a.rev > b.rev);

export { quorumOf };

export class Master {
  private roleV: Role = 'follower';
  private round = 0;
  private epochTry: Epoch = asEpoch(0);
  private roundStart = 0;
  private backoffUntil = 0;
  /** The highest epoch any brick told us of: the next lock goes above it. */
  private highestSeen = 0;
  private readonly probes = new Map<string, ProbeResult>();
  private readonly grants = new Map<string, Grant>();
  private readonly refused = new Set<string>();
  private source: Grant | undefined;
  /** Sources tried in this round (the broken fallback variant moves down this list). */
  private readonly triedSources = new Set<string>();
  private healFrom: Rev = asRev(0);
  private healAwait: 'fetch' | 'append' | undefined;
  private holderV: Holder | undefined;
  private nextReqId = 1;
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly brickIdOf: (brick: string) => string;
  private readonly fetchMax: number;
  private readonly bugs: MasterBugs;
  private elections = 0;
  private promiseSeen: Epoch;

  constructor(
    private readonly opts: MasterOptions,
    private readonly local: LocalBrick,
    nowMs: number,
  ) {
    this.brickIdOf = opts.brickIdOf ?? ((b) => b);
    this.fetchMax = opts.fetchMaxEntries ?? 256;
    this.bugs = opts.bugs ?? {};
    // A restarted master waits as its brick does: one lease before it stands (DESIGN §4).
    this.backoffUntil = nowMs;
    this.promiseSeen = local.promisedEpoch;
  }

  get role(): Role {
    return this.roleV;
  }
  get holder(): Holder | undefined {
    return this.roleV === 'holder' ? this.holderV : undefined;
  }
  get epoch(): Epoch {
    return this.epochTry;
  }

  private voters(config: VolumeConfig): string[] {
    return config.bricks.map(this.brickIdOf);
  }

  // ── inputs ───────────────────────────────────────────────────────────────────────────────

  /** Timers: stand for election, give up stalled rounds, and drive the holder. */
  tick(nowMs: number): MasterOutput[] {
    switch (this.roleV) {
      case 'follower':
        return this.maybeStand(nowMs);
      case 'probing':
      case 'locking':
        if (nowMs - this.roundStart >= this.opts.roundTimeoutMs) return this.backOff(nowMs, `no quorum answered ${this.roleV === 'probing' ? 'the probe' : 'the lock'} at epoch ${this.epochTry}`);
        return [];
      case 'healing':
        if (nowMs - this.roundStart >= this.opts.roundTimeoutMs) return this.sourceLost(nowMs);
        return [];
      case 'holder': {
        const h = this.holderV as Holder;
        if (h.fencedBy > h.epoch) {
          // A failed candidacy left a voter promised above this epoch: it would stay out of the
          // volume for this holder's whole life. Re-lock above it at once; the bricks whose lease
          // record names this master grant it again (DESIGN §4.2, renewal).
          this.highestSeen = Math.max(this.highestSeen, h.fencedBy);
          const out = this.fromHolder(h, h.stepDown(coordError('fenced', `a voter promised epoch ${h.fencedBy}: re-locking above it`)), nowMs);
          out.push(...this.maybeStand(nowMs, true));
          return out;
        }
        return this.fromHolder(h, h.tick(nowMs), nowMs);
      }
      default:
        return unreachable(this.roleV, 'role');
    }
  }

  /**
   * A client write. Only the holder takes it; elsewhere it is refused unapplied. `flush: false`
   * leaves it queued for the caller's next flushHolder (group commit of a whole turn's writes).
   */
  propose(id: number, op: WriteOp, nowMs: number, flush = true, origin?: Origin): MasterOutput[] {
    const h = this.holder;
    if (!h || h.isDown) return [{ kind: 'reply', id, outcome: { ok: false, error: this.notHolder() } }];
    const out = this.fromHolder(h, h.propose(id, op, nowMs, origin), nowMs);
    if (flush) out.push(...this.fromHolder(h, h.flush(nowMs), nowMs));
    return out;
  }

  /** Evaluates the holder's queued writes into entries (group commit). */
  flushHolder(nowMs: number): MasterOutput[] {
    const h = this.holder;
    return h ? this.fromHolder(h, h.flush(nowMs), nowMs) : [];
  }

  /** Gives up the lock (shutdown): waiting writes fail as the holder's stepDown says. */
  stepDown(reason: CoordError, nowMs: number): MasterOutput[] {
    const h = this.holder;
    return h ? this.fromHolder(h, h.stepDown(reason), nowMs) : [];
  }

  /** A linearizable read: the holder answers with the rev to serve it at. */
  read(id: number, nowMs: number): MasterOutput[] {
    const h = this.holder;
    if (!h || h.isDown) return [{ kind: 'read', id, outcome: { ok: false, error: this.notHolder() } }];
    return this.fromHolder(h, h.read(id, nowMs), nowMs);
  }

  private notHolder(): CoordError {
    return coordError('not-holder', `this master does not hold the volume lock (${this.roleV}, epoch ${this.epochTry})`);
  }

  /** A brick's answer to request `reqId`. Unknown or stale ids are dropped (duplicates, old rounds). */
  onReply(from: string, reqId: number, reply: BrickReply, nowMs: number): MasterOutput[] {
    const o = this.outstanding.get(reqId);
    if (!o || o.to !== from || o.round !== this.round) return [];
    this.outstanding.delete(reqId);
    switch (reply.t) {
      case 'probe':
        return this.onProbe(from, reply.res, nowMs);
      case 'lock':
        return this.onLock(from, reply.res, nowMs);
      case 'fetch':
        return this.onFetch(from, reply.res, nowMs);
      case 'append':
        return this.onAppend(from, o, reply.res, nowMs);
      case 'snapshot': {
        const h = this.holder;
        return h ? this.fromHolder(h, h.onSnapshotReply(from, reply.res, o.sentAt, nowMs), nowMs) : [];
      }
      default:
        return unreachable(reply, 'brick reply');
    }
  }

  // ── election ─────────────────────────────────────────────────────────────────────────────

  /**
   * Stands for election once the local brick's lease has lapsed and no backoff runs; `relock`:
   * at once, as the holder re-locking above a voter's higher promise (its lease, not lapsed,
   * names this master, so the bricks grant it again).
   */
  private maybeStand(nowMs: number, relock = false): MasterOutput[] {
    if (!relock) {
      // A grant clears the brick's lease record; give the grantee a lease's time to heal and
      // append before standing against it (liveness only: the bricks decide safety). Jittered:
      // every master sees the promises of a split vote at about the same time, and a fixed wait
      // would have them all stand again together, splitting the vote again.
      if (this.local.promisedEpoch !== this.promiseSeen) {
        this.promiseSeen = this.local.promisedEpoch;
        this.backoffUntil = Math.max(this.backoffUntil, nowMs + this.opts.leaseMs * (1 + 0.5 * this.opts.random()));
      }
      if (nowMs < this.backoffUntil || !this.local.leaseLapsed(nowMs)) return [];
    }
    const voters = this.voters(this.local.config);
    // A master whose brick is not a voter in the newest config it has seen does not stand.
    if (!voters.includes(this.local.brickId)) return [];
    this.newRound(nowMs, 'probing', asEpoch(Math.max(this.local.promisedEpoch, this.highestSeen) + 1));
    this.elections++;
    const out: MasterOutput[] = [{ kind: 'role', role: 'probing', epoch: this.epochTry }];
    for (const b of voters) out.push(this.send(b, { t: 'probe', args: { epoch: this.epochTry, candidate: this.opts.id } }, nowMs));
    return out;
  }

  private newRound(nowMs: number, role: Role, epoch: Epoch): void {
    this.round++;
    this.outstanding.clear(); // answers to an older round are dropped anyway
    this.roleV = role;
    this.epochTry = epoch;
    this.roundStart = nowMs;
    this.probes.clear();
    this.grants.clear();
    this.refused.clear();
    this.triedSources.clear();
    this.source = undefined;
    this.healAwait = undefined;
  }

  private onProbe(from: string, res: ProbeResult, nowMs: number): MasterOutput[] {
    if (this.roleV !== 'probing') return [];
    this.highestSeen = Math.max(this.highestSeen, res.promisedEpoch);
    this.probes.set(from, res);
    const voters = this.voters(this.local.config);
    const yes = [...this.probes].filter(([b, p]) => p.wouldGrant && voters.includes(b)).length;
    if (yes >= quorumOf(this.local.config)) {
      // The pre-vote passed: now lock, at an epoch above anything the probes reported.
      const epoch = asEpoch(Math.max(this.epochTry, this.highestSeen + 1));
      const round = this.round;
      this.newRound(nowMs, 'locking', epoch);
      assert(this.round === round + 1, 'one round per step');
      const out: MasterOutput[] = [{ kind: 'role', role: 'locking', epoch }];
      for (const b of voters) out.push(this.send(b, { t: 'lock', args: { epoch, candidate: this.opts.id } }, nowMs));
      return out;
    }
    if (this.probes.size === voters.length) return this.backOff(nowMs, `the probe at epoch ${this.epochTry} found no quorum`);
    return [];
  }

  private onLock(from: string, res: LockResult, nowMs: number): MasterOutput[] {
    if (this.roleV !== 'locking') return [];
    if (!res.granted) {
      this.highestSeen = Math.max(this.highestSeen, res.promisedEpoch);
      this.refused.add(from);
    } else {
      this.grants.set(from, { ...res, from, at: nowMs });
    }
    const best = this.bestGrant();
    if (best) {
      // Count grants only from voters of the config in the best grant (DESIGN §4.2).
      const voters = this.voters(best.config);
      const granted = [...this.grants.keys()].filter((b) => voters.includes(b));
      if (granted.length >= quorumOf(best.config) && this.grants.has(this.local.brickId)) return this.startHeal(best, nowMs);
    }
    if (this.grants.size + this.refused.size === this.voters(this.local.config).length) {
      return this.backOff(nowMs, `the lock at epoch ${this.epochTry} was refused by ${[...this.refused].join(', ') || 'no one'}`);
    }
    return [];
  }

  /** The grant with the highest (lastEpoch, lastRev); ties go to the local brick (no heal needed). */
  private bestGrant(exclude: ReadonlySet<string> = new Set()): Grant | undefined {
    let best: Grant | undefined;
    for (const g of this.grants.values()) {
      if (exclude.has(g.from)) continue;
      if (!best || positionAbove(g.last, best.last) || (g.last.epoch === best.last.epoch && g.last.rev === best.last.rev && g.from === this.local.brickId)) best = g;
    }
    return best;
  }

  private backOff(nowMs: number, _why: string): MasterOutput[] {
    // Losers back off for a random time in [leaseMs/2, leaseMs] (DESIGN §4.2).
    this.round++;
    this.outstanding.clear();
    this.roleV = 'follower';
    this.holderV = undefined;
    this.backoffUntil = nowMs + this.opts.leaseMs * (0.5 + 0.5 * this.opts.random());
    return [{ kind: 'role', role: 'follower', epoch: this.epochTry }];
  }

  // ── self-heal on lock (DESIGN §4.3) ──────────────────────────────────────────────────────

  private startHeal(source: Grant, nowMs: number): MasterOutput[] {
    // The best grant's log may hold a config entry — not yet in the local brick's log — that
    // removed the local brick: a master whose brick is not a voter there does not hold the lock.
    if (!this.voters(source.config).includes(this.local.brickId)) return this.backOff(nowMs, `this master's brick is not a voter in the config of the best grant (${source.from})`);
    this.roleV = 'healing';
    this.roundStart = nowMs;
    this.source = source;
    this.triedSources.add(source.from);
    // The local brick's committed prefix is the volume's: heal from just after it.
    this.healFrom = asRev(this.local.commitRev + 1);
    const out: MasterOutput[] = [{ kind: 'role', role: 'healing', epoch: this.epochTry }];
    out.push(...this.healStep(nowMs));
    return out;
  }

  private healStep(nowMs: number): MasterOutput[] {
    const src = this.source as Grant;
    if (this.healFrom > src.last.rev) return this.becomeHolder(nowMs);
    if (src.from === this.local.brickId) {
      // The local brick is the source: it holds the source log already.
      return this.becomeHolder(nowMs);
    }
    this.healAwait = 'fetch';
    return [this.send(src.from, { t: 'fetch', args: { epoch: this.epochTry, from: this.healFrom, maxEntries: this.fetchMax } }, nowMs)];
  }

  private onFetch(from: string, res: FetchResult, nowMs: number): MasterOutput[] {
    if (this.roleV !== 'healing' || this.healAwait !== 'fetch' || from !== this.source?.from) return [];
    if (!res.ok) {
      if (res.reason === 'fenced') this.highestSeen = Math.max(this.highestSeen, res.promisedEpoch);
      return this.backOff(nowMs, `the heal source ${from} answered ${res.reason}`);
    }
    const src = this.source;
    // The source granted this epoch: its log cannot have changed since.
    assert(res.last.epoch === src.last.epoch && res.last.rev === src.last.rev, `the heal source's log is frozen by its grant: ${res.last.rev} vs ${src.last.rev}`);
    if (res.entries.length === 0) return this.becomeHolder(nowMs);
    const prevRev = asRev(this.healFrom - 1);
    // The source no longer holds entry prevRev (trimmed): the local brick does, or is based there.
    const prevEpoch = res.prevEpoch ?? this.local.epochAt(prevRev);
    if (prevEpoch === undefined) return this.backOff(nowMs, `neither the heal source nor the local brick knows the entry at ${prevRev}`);
    this.healAwait = 'append';
    this.roundStart = nowMs;
    return [
      this.send(this.local.brickId, {
        t: 'append',
        args: { epoch: this.epochTry, sender: this.opts.id, prevEpoch, prevRev, entries: res.entries, commitRev: res.commitRev },
      }, nowMs),
    ];
  }

  /** The source stopped answering before the holder had its log: abandon the epoch (never fall back). */
  private sourceLost(nowMs: number): MasterOutput[] {
    const src = this.source as Grant;
    if (this.bugs.fallBackToOtherSource === true) {
      const next = this.bestGrant(this.triedSources);
      if (next) {
        this.source = next;
        this.triedSources.add(next.from);
        this.roundStart = nowMs;
        return this.healStep(nowMs);
      }
    }
    return this.backOff(nowMs, `the heal source ${src.from} stopped answering`);
  }

  private becomeHolder(nowMs: number): MasterOutput[] {
    const src = this.source as Grant;
    const config = src.config;
    const local = this.local;
    // The local brick promised a higher epoch since it granted ours (another holder appended to
    // it): this epoch is lost already.
    if (local.promisedEpoch !== this.epochTry) return this.backOff(nowMs, `the local brick moved on to epoch ${local.promisedEpoch}`);
    assert(local.last.epoch === src.last.epoch && local.last.rev === src.last.rev, `the local brick holds the source log: (${local.last.epoch}, ${local.last.rev}) vs (${src.last.epoch}, ${src.last.rev})`);
    const h = new Holder({
      epoch: this.epochTry,
      config,
      brickIdOf: this.brickIdOf,
      local: local.brickId,
      last: src.last,
      commitRev: local.commitRev,
      compactRev: local.compactRev,
      base: () => local.latestView(),
      // sclock: the source's last entry's + its quietMs + the time since its grant arrived (DESIGN §5).
      sclock: src.lastSclock + src.quietMs + Math.max(0, nowMs - src.at),
      sessionTtlMinMs: Math.max(2_000, 4 * this.opts.leaseMs),
      leaseMs: this.opts.leaseMs,
      driftRho: this.opts.driftRho,
      retransmitMs: this.opts.roundTimeoutMs,
      entryAt: (rev) => local.entry(rev),
      epochAt: (rev) => local.epochAt(rev),
      bugs: this.bugs,
      ...(this.opts.snapshotTimeoutMs === undefined ? {} : { snapshotTimeoutMs: this.opts.snapshotTimeoutMs }),
      ...(this.opts.appendMaxEntries === undefined ? {} : { appendMaxEntries: this.opts.appendMaxEntries }),
    });
    this.holderV = h;
    this.roleV = 'holder';
    this.healAwait = undefined;
    const out: MasterOutput[] = [{ kind: 'role', role: 'holder', epoch: this.epochTry }];
    out.push(...this.fromHolder(h, h.start(nowMs), nowMs));
    return out;
  }

  // ── appends ──────────────────────────────────────────────────────────────────────────────

  private onAppend(from: string, o: Outstanding, res: AppendResult, nowMs: number): MasterOutput[] {
    if (this.roleV === 'healing') {
      if (this.healAwait !== 'append' || from !== this.local.brickId) return [];
      if (!res.ok) {
        if (res.reason === 'fenced') this.highestSeen = Math.max(this.highestSeen, res.promisedEpoch);
        return this.backOff(nowMs, `the local brick refused the heal: ${res.reason}`);
      }
      const req = o.req as Extract<BrickRequest, { t: 'append' }>;
      this.healFrom = asRev(req.args.prevRev + req.args.entries.length + 1);
      this.roundStart = nowMs;
      return this.healStep(nowMs);
    }
    const h = this.holder;
    if (!h) return [];
    const carried = o.req.t === 'append' ? o.req.args.entries.length : 0;
    return this.fromHolder(h, h.onAppendReply(from, res, o.sentAt, nowMs, carried), nowMs);
  }

  /** Carries a holder's outputs out: appends become requests with ids; a step-down ends the role. */
  private fromHolder(h: Holder, outputs: readonly HolderOutput[], nowMs: number): MasterOutput[] {
    const out: MasterOutput[] = [];
    for (const o of outputs) {
      if (o.kind === 'append') out.push(this.send(o.to, { t: 'append', args: { ...o.msg, sender: this.opts.id } }, nowMs));
      else if (o.kind === 'snapshot') out.push(this.send(o.to, { t: 'snapshot', args: { epoch: h.epoch, sender: this.opts.id } }, nowMs));
      else {
        out.push(o);
        if (o.kind === 'stepped-down' && this.holderV === h) {
          this.highestSeen = Math.max(this.highestSeen, h.fencedBy);
          out.push(...this.backOff(nowMs, o.reason.message));
        }
      }
    }
    return out;
  }

  private send(to: string, req: BrickRequest, nowMs: number): MasterOutput {
    const reqId = this.nextReqId++;
    this.outstanding.set(reqId, { to, req, sentAt: nowMs, round: this.round });
    // Requests never answered (lost messages) are forgotten with their round, or when very old.
    if (this.outstanding.size > 100_000) for (const k of [...this.outstanding.keys()].slice(0, 50_000)) this.outstanding.delete(k);
    return { kind: 'send', to, reqId, req };
  }

  stats(): Record<string, unknown> {
    return {
      id: this.opts.id,
      role: this.roleV,
      epoch: this.epochTry,
      highestSeen: this.highestSeen,
      elections: this.elections,
      source: this.source?.from,
      outstanding: this.outstanding.size,
      holder: this.holder?.stats() ?? null,
    };
  }
}
