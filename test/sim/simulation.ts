// The deterministic simulator (DESIGN §4 "Required checks"): three masters, each with its brick
// (SimBrick: durable, in memory) and the product's replication code (BrickAcceptor, Master,
// Holder), and clients, over a simulated network with delay, loss, duplication, reordering and
// partitions; masters crash and restart (the brick's durable state kept, everything else lost);
// every node's clock drifts within ρ; bursts of holder churn faster than ttl/2 cut off each new
// holder in turn. Session clients (session-clients.ts) open sessions, keep them alive across
// failovers, put ephemeral keys, and die or close. One seed drives every random choice, so a
// failing seed replays exactly. Invariants are checked as the run goes (log-checks.ts,
// session-checks.ts, exactly-once-checks.ts) and at its end (history-checks.ts, session-checks.ts).
//
// Snapshot heals and reconfiguration (DESIGN §4.7, §4.8): each brick's log is trimmed to a small,
// seed-chosen window behind its commit point, kept longer only by the holder's pin (what its
// slowest voter needs, at most a seed-chosen distance behind), so a voter or learner away long
// enough needs a snapshot. The simulator carries each snapshot the holder asks for: the local
// brick's committed state at its commitRev, frozen when asked, streamed in a few chunks over the
// network (each fenced and setting the lease at the target), installed at the last chunk, and
// answered; a stream that breaks is reported failed by the carrier after a while, or not at all.
// Besides the three voters, one or two spare masters run with bricks outside the config, and an
// operator (operator.ts) changes the membership one step at a time during the faults — adding
// spares as learners, promoting them, removing voters (whose bricks are then wiped and come
// back as spares under new ids), changing quorum-count — through whichever master holds the lock.
//
// Exactly-once retries (DESIGN §3): each KV client opens a client session of its own (a session
// client with a ttl of 3–3.5 s, kept alive until the run ends, opened again once it is lost; while
// it has none, the client only reads) and sends every write with an origin (clientId, seq,
// ackedSeq). A write that times out (its request or its reply lost, its master crashed), or gets
// an answer that says nothing of its outcome (`indeterminate`; `not-holder` / `no-quorum` /
// `too-large` once an earlier copy may have reached a holder), is sent again with the same
// origin, to the same or another master, until it is answered or its retry deadline (retryForMs)
// passes or its session is lost; the client takes only the answer to its newest copy (as the
// library does: it resends after a broken connection). A `duplicate` answer is an ok answer at
// the stored rev. A write is recorded as failed only if every copy was refused unapplied, and as
// unknown only when it is given up; retried many times, it is still one op in the history,
// invoked at its first send and completed at its final answer. ackedSeq is the highest seq the
// client has settled (answered or given up), with every lower one. A refusal `stale-retry` or
// `too-many-in-flight` is a violation: the client never sends either.
//
// Watches (DESIGN §6; "compaction and snapshot heals under live watches"): each brick serves watch
// streams from its committed log (watch-service.ts: moved when it has not heard from a holder for
// 2·leaseMs or a snapshot install passes a cursor, compacted at or below its compactRev), and a
// few watch clients (watch-clients.ts) resume them elsewhere as the client library does; what
// they receive is checked against the committed log (watch-checks.ts). The watches draw from a
// PRNG of their own and change no replication state: a seed's replication run is the same with
// or without them.
import { Buffer } from 'node:buffer';
import { AssertionError } from '../../src/common/assert.js';
import { asRev, type Rev, type SessionId } from '../../src/common/ids.js';
import { prefixEnd } from '../../src/common/keys.js';
import { seededRandom, type Random } from '../../src/common/random.js';
import { BrickAcceptor, type BrickBugs } from '../../replication/brick.js';
import type { Holder } from '../../replication/holder.js';
import { localBrickOver, Master, type MasterBugs, type MasterOutput } from '../../replication/master.js';
import type { BrickReply, BrickRequest, SnapshotArgs, SnapshotChunkArgs } from '../../replication/messages.js';
import type { Origin, WriteOp, WriteResult } from '../../replication/ops.js';
import type { VolumeConfig } from '../../store/types.js';
import { Agenda } from './events.js';
import { ExactlyOnceChecks } from './exactly-once-checks.js';
import type { HistoryOp, KvOp, KvOutcome } from './linearizability.js';
import { LogChecks, SimViolation } from './log-checks.js';
import { SessionChecks } from './session-checks.js';
import { SESSION_CLIENT_BASE, SessionClients, type ClientSession, type SessionReply } from './session-clients.js';
import { membersOf } from '../../replication/config.js';
import { Operator } from './operator.js';
import { SimBrick, type SimBrickOptions, type SimSnapshot } from './sim-brick.js';
import { WatchChecks } from './watch-checks.js';
import { WatchClients } from './watch-clients.js';
import { WatchService } from './watch-service.js';

export interface SimOptions {
  readonly seed: number;
  readonly masters?: number;
  readonly clients?: number;
  /** Simulated run time with faults, then a quiet period with none. */
  readonly durationMs?: number;
  readonly quietMs?: number;
  readonly leaseMs?: number;
  /** ρ: the bound on clock drift rate; each node's clock runs at a rate within [1−ρ, 1+ρ]. */
  readonly driftRho?: number;
  readonly maxDelayMs?: number;
  readonly lossRate?: number;
  readonly dupRate?: number;
  /** Mean ms between faults (partition, crash, heal, restart). */
  readonly faultEveryMs?: number;
  /** Chance that a holder crashes right after it advances its commit point. */
  readonly crashAfterCommit?: number;
  /** Chance that a master is cut off from the others right as it becomes holder. */
  readonly isolateNewHolder?: number;
  readonly brickBugs?: BrickBugs;
  readonly masterBugs?: MasterBugs;
  /** Deliberately broken variants of the simulator's own carrier, to show its checks bite. */
  readonly carrierBugs?: CarrierBugs;
  /** Keep a trace of notable events (role changes, faults) for a failing seed's report. */
  readonly trace?: boolean;
  /** Session clients running at once (test/sim/session-clients.ts); 0: none. */
  readonly sessionClients?: number;
  /**
   * Chance that a run has bursts of holder churn faster than ttl/2 with lease lapses: for a few
   * seconds, every few hundred ms, the newest holder is cut off from the other masters (clients
   * still reach it) until another one takes over.
   */
  readonly churnRate?: number;
  /** A KV client's write unanswered this long is sent again (with its origin). */
  readonly attemptTimeoutMs?: number;
  /** A KV client retries a write until this long after its first send, then gives up (unknown outcome). */
  readonly retryForMs?: number;
  /**
   * Committed entries each brick's log keeps behind its commit point (BrickStore's logRetainRevs),
   * and how far behind it a holder's pin may keep them (logPinRevsMax); beyond, a voter is healed
   * by a snapshot (DESIGN §4.8). Default: seed-chosen, small (4..64 and 16..256), or no trimming
   * on one seed in eight.
   */
  readonly retainRevs?: number;
  readonly pinRevsMax?: number;
  /** A snapshot travels in 1..snapshotChunksMax chunks, each fenced and each setting the lease. */
  readonly snapshotChunksMax?: number;
  /** Spare masters with bricks outside the config (the initial config entry only). Default: seed-chosen 1–2 (none without reconfiguration). */
  readonly spares?: number;
  /** Mean ms between the operator's config changes (DESIGN §4.7); 0: no reconfiguration. */
  readonly reconfigEveryMs?: number;
  /** Mean ms between compactions (compact(rev) a little below the commit point); 0: none. */
  readonly compactEveryMs?: number;
  /** Watch clients (watch-clients.ts); default: seed-chosen, 2–4. */
  readonly watchers?: number;
}

/** Broken variants of the snapshot carrier (bite tests only). */
export interface CarrierBugs {
  /** Ship the committed state one rev below s, labelled s (a snapshot taken before its last commit applied). */
  readonly staleSnapshot?: boolean;
  /** A snapshot install does not end the watches it passes: they skip silently from their cursor to s + 1 (watch-service.ts). */
  readonly snapshotKeepsWatches?: boolean;
}

/** A client operation as the history records it: the KvOp for the checker, plus what the product answered. */
export interface SimOp extends HistoryOp {
  /** The rev it was served or written at (ok outcomes). */
  readonly rev?: Rev | undefined;
  /** It wrote an entry (a put, a delete that deleted, a cas that succeeded, a txn). */
  readonly wrote?: boolean | undefined;
  /** Range reads: the key=value pairs returned (checked against the replayed log, not by the lin checker). */
  readonly range?: readonly string[] | undefined;
  /** A serializable read (not linearizable: checked against the replayed log and for monotonicity, with its minRev). */
  readonly serializable?: boolean;
  readonly minRev?: number;
  /** Multi-key txn: every key it put (the lin history holds one put per key). */
  readonly multi?: readonly { key: string; value: string }[] | undefined;
  /** A write: its origin, how many times it was sent, and whether its answer was a stored result (`duplicate`). */
  readonly origin?: Origin | undefined;
  readonly sends?: number;
  readonly duplicate?: boolean;
}

export interface SimResult {
  readonly seed: number;
  readonly history: readonly SimOp[];
  readonly checks: LogChecks;
  readonly bricks: readonly SimBrick[];
  readonly trace: readonly string[];
  readonly stats: Readonly<Record<string, number>>;
  /** The config the volume was created with (for replaying the committed log). */
  readonly config: VolumeConfig;
  /** The voters and learners of the config committed last: the bricks that must converge. */
  readonly members: readonly string[];
  /** The watch clients' end-of-run check (watch-clients.ts), run once the bricks are known converged. */
  readonly finishWatches?: () => void;
}

/**
 * The share of broken snapshot transfers whose carrier never reports it (the holder's own timer,
 * snapshotTimeoutMs = 4 leases here, must ask again).
 */
const SILENT_SNAPSHOT_DROPS = 0.3;
/** The operator's client number (below the session clients'). */
const OPERATOR_CLIENT = 900;
/** The compactor's client number: it sends compact(rev) now and then and ignores the answers. */
const COMPACTOR_CLIENT = 901;
const KEYS = ['/k/0', '/k/1', '/k/2', '/k/3', '/k/4'];
const PREFIX = '/k/';
const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString());

type Payload =
  | { readonly k: 'brick-req'; readonly from: string; readonly reqId: number; readonly req: BrickRequest }
  | { readonly k: 'brick-rep'; readonly from: string; readonly reqId: number; readonly rep: BrickReply }
  /** One chunk of a snapshot stream (DESIGN §4.8): chunk `index` of `count`, all naming one frozen snapshot. */
  | { readonly k: 'snap-chunk'; readonly from: string; readonly reqId: number; readonly args: SnapshotChunkArgs; readonly index: number; readonly count: number; readonly snap: SimSnapshot }
  | { readonly k: 'client-req'; readonly client: number; readonly opId: number; readonly op: ClientOp; readonly origin?: Origin | undefined }
  | { readonly k: 'client-rep'; readonly opId: number; readonly res: ClientResult };

type ClientOp =
  | { readonly t: 'write'; readonly kv: KvOp | undefined; readonly multi?: readonly { key: string; value: string }[]; readonly w: WriteOp }
  | { readonly t: 'get'; readonly key: string }
  /** A serializable get: any master's brick serves it from its committed state, at a rev ≥ minRev (DESIGN §3). */
  | { readonly t: 'sget'; readonly key: string; readonly minRev: number }
  | { readonly t: 'range' };

type ClientResult =
  | { readonly ok: true; readonly rev: Rev; readonly wrote: boolean; readonly value?: string | undefined; readonly succeeded?: boolean; readonly range?: readonly string[]; readonly session?: number; readonly duplicate?: boolean }
  | { readonly ok: false; readonly definite: boolean; readonly code: string };

/** A master process: its brick (durable) and its volatile replication state. */
class SimNode {
  incarnation = 0;
  /** Simulated time of the last boot, and of the brick's last log change (append or truncation). */
  bootMs = 0;
  logChangedMs = 0;
  /** The node's clock when its brick last heard from a holder (features/locks' lastHeardMs), or booted. */
  heardMs = 0;
  up = true;
  acceptor!: BrickAcceptor;
  master!: Master;
  /** Client requests waiting for the master: its id → who asked. */
  readonly waiting = new Map<number, { client: number; opId: number; op: ClientOp }>();
  /** Linearizable reads with their readRev, served once the brick has applied it. */
  readonly reads: { readRev: Rev; client: number; opId: number; op: ClientOp }[] = [];
  /** Serializable reads waiting for the brick to reach their minRev, until their deadline. */
  readonly sreads: { minRev: number; key: string; client: number; opId: number }[] = [];
  nextId = 1;
  lastHolderCommit = 0;
  holderSeen: Holder | undefined;
  /** Snapshot streams arriving (volatile): `${sender}/${reqId}` → the next chunk expected, or −1 once ended. */
  readonly streams = new Map<string, number>();
  /** The holder's config and its brick's last compared (config-adopted check). */
  lastCompared: [unknown, unknown] = [undefined, undefined];
  constructor(
    readonly id: string,
    /** Replaced by a fresh brick when the operator wipes a removed one. */
    public brick: SimBrick,
    /** This node's clock: local = offset + rate · simulated time. */
    readonly rate: number,
    readonly offset: number,
  ) {}
  now(simMs: number): number {
    return this.offset + this.rate * simMs;
  }
}

/** A KV client's op in progress. */
interface CurrentOp {
  readonly op: ClientOp;
  readonly invokeMs: number;
  /** Writes: (clientId, seq, ackedSeq), the same on every copy sent. */
  readonly origin: Origin | undefined;
  /** The opId of each copy sent, and whether it is known not applied (refused before evaluation). */
  readonly sends: Map<number, 'out' | 'not-applied' | 'maybe'>;
  /** The newest copy: the only one whose answer the client takes. */
  last: number;
  readonly deadlineMs: number;
}

interface ClientState {
  readonly id: number;
  target: number;
  busy: boolean;
  /** Numbers every copy of every request this client sends. */
  opSeq: number;
  current: CurrentOp | undefined;
  /** The highest rev this client has seen: its serializable reads carry it as minRev. */
  seenRev: number;
  /** Its own client session (DESIGN §3), the clientId of its writes, and the seqs used on it. */
  session: ClientSession | undefined;
  sid: SessionId | undefined;
  seq: number;
  ackedSeq: number;
}

export class Simulation {
  readonly agenda = new Agenda();
  private readonly rnd: Random;
  private readonly o: Required<Omit<SimOptions, 'brickBugs' | 'masterBugs' | 'carrierBugs' | 'watchers'>> & Pick<SimOptions, 'brickBugs' | 'masterBugs' | 'carrierBugs'>;
  /** KV clients stop starting ops then. */
  private clientsUntilMs = 0;
  private readonly nodes: SimNode[] = [];
  private readonly clients: ClientState[] = [];
  readonly sessionChecks: SessionChecks;
  readonly onceChecks = new ExactlyOnceChecks((v) => this.sender(v));
  readonly checks = new LogChecks(
    () => this.agenda.nowMs,
    (e, seenAt, now) => {
      this.sessionChecks.committed(e, seenAt, now);
      this.onceChecks.committed(e);
    },
  );
  private readonly sessionClients: SessionClients;
  readonly history: SimOp[] = [];
  private readonly traceLines: string[] = [];
  /** Pairs of node indexes that cannot reach each other. */
  private readonly cut = new Set<string>();
  private faultsOn = true;
  private valueSeq = 0;
  private nextHistoryId = 0;
  private readonly config: VolumeConfig;
  private readonly stats = { messages: 0, lost: 0, duplicated: 0, crashes: 0, partitions: 0, elections: 0, holders: 0, churns: 0, writes: 0, resends: 0, duplicates: 0, givenUp: 0, snapshotsSent: 0, snapshotsInstalled: 0, compactions: 0 };
  /** How each brick trims its log (seed-chosen). */
  private readonly brickOpts: SimBrickOptions;
  /** Every brick ever created, by id (a wiped one keeps its last state: the commit-quorum check reads it). */
  private readonly allBricks = new Map<string, SimBrick>();
  private nextBrick = 0;
  private readonly operator: Operator | undefined;
  /** Links the churn fault cut (healed at its next step). */
  private churnCuts: [number, number][] = [];
  /** A churn burst is on until then: the other faults wait. */
  private churnUntil = 0;
  /**
   * Watches (DESIGN §6): served by the bricks, followed by watch clients, checked against the
   * committed log. They draw from a PRNG of their own and change no replication state, so a
   * seed's replication run is the same with them as without.
   */
  private readonly watchService: WatchService;
  private readonly watchClients: WatchClients;
  readonly watchChecks = new WatchChecks(this.checks);
  private readonly watchers: number;

  constructor(opts: SimOptions) {
    this.o = {
      masters: 3, clients: 4, durationMs: 20_000, quietMs: 6_000, leaseMs: 300, driftRho: 0.01, maxDelayMs: 15,
      lossRate: 0.02, dupRate: 0.02, faultEveryMs: 1_000, crashAfterCommit: 0.003, isolateNewHolder: 0.1, trace: false, sessionClients: 3, churnRate: 1,
      attemptTimeoutMs: 2 * (opts.leaseMs ?? 300) + 100, retryForMs: 10 * (opts.leaseMs ?? 300), retainRevs: 0, pinRevsMax: 0, snapshotChunksMax: 3, spares: 0, reconfigEveryMs: 1_500, compactEveryMs: 2_000, ...opts,
    };
    // The longest one-way delay: a request's 0.5 + maxDelayMs, plus up to 1.2 ms before a brick replies.
    this.sessionChecks = new SessionChecks({ leaseMs: this.o.leaseMs, maxDelayMs: this.o.maxDelayMs + 1.7 });
    this.rnd = seededRandom(opts.seed);
    // Small logs, so voters away for a while are healed by snapshots; on one seed in eight, no trimming.
    const trims = opts.retainRevs !== undefined || this.rnd() >= 1 / 8;
    this.brickOpts = trims ? { retainRevs: opts.retainRevs ?? 4 + Math.floor(61 * this.rnd()), pinRevsMax: opts.pinRevsMax ?? 16 + Math.floor(241 * this.rnd()) } : {};
    const spares = opts.spares ?? (this.o.reconfigEveryMs > 0 ? 1 + Math.floor(2 * this.rnd()) : 0);
    const bricks = Array.from({ length: this.o.masters }, (_, i) => `b${i}`);
    this.config = { volumeName: 'sim', bricks, quorumCount: Math.floor(bricks.length / 2) + 1 };
    // The initial voters, then spare masters whose bricks are outside the config (the initial config entry only).
    for (let i = 0; i < this.o.masters + spares; i++) {
      const rate = 1 + (this.rnd() * 2 - 1) * this.o.driftRho;
      const node = new SimNode(`m${i}`, this.newBrick(), rate, this.rnd() * 1_000);
      this.nodes.push(node);
      this.boot(node);
    }
    for (let c = 0; c < this.o.clients; c++) {
      this.clients.push({ id: c, target: c % this.nodes.length, busy: false, opSeq: 0, current: undefined, seenRev: 0, session: undefined, sid: undefined, seq: 0, ackedSeq: 0 });
    }
    this.operator = this.o.reconfigEveryMs > 0 ? this.newOperator() : undefined;
    this.sessionClients = new SessionClients(
      {
        rnd: this.rnd,
        masters: this.nodes.length,
        leaseMs: this.o.leaseMs,
        driftRho: this.o.driftRho,
        now: () => this.agenda.nowMs,
        after: (ms, run) => this.agenda.after(ms, run),
        send: (client, node, opId, w, extraMs) => this.send(-1 - client, node, { k: 'client-req', client, opId, op: { t: 'write', kv: undefined, w } }, extraMs),
        tracing: this.o.trace,
        trace: (line) => this.trace(line),
      },
      this.sessionChecks,
      { slots: this.o.sessionClients, startUntilMs: this.o.durationMs - 1_500, stopByMs: this.o.durationMs },
    );
    const watchRnd = seededRandom((opts.seed ^ 0x5bd1e995) >>> 0);
    this.watchers = opts.watchers ?? 2 + Math.floor(3 * watchRnd());
    this.watchService = new WatchService({
      rnd: watchRnd,
      leaseMs: this.o.leaseMs,
      maxDelayMs: this.o.maxDelayMs,
      lossRate: this.o.lossRate,
      progressMs: this.o.leaseMs,
      bugs: { ...(this.o.carrierBugs?.snapshotKeepsWatches === true ? { snapshotKeepsWatches: true } : {}) },
      now: () => this.agenda.nowMs,
      after: (ms, run) => this.agenda.after(ms, run),
      nodes: this.nodes.length,
      brick: (n) => (this.nodes[n] as SimNode).brick,
      up: (n) => (this.nodes[n] as SimNode).up,
      incarnation: (n) => (this.nodes[n] as SimNode).incarnation,
      quietMs: (n) => {
        const node = this.nodes[n] as SimNode;
        return node.now(this.agenda.nowMs) - node.heardMs;
      },
      reachable: (n) => this.reachable(-1, n),
      faultsOn: () => this.faultsOn,
      tracing: this.o.trace,
      trace: (line) => this.trace(line),
    });
    this.watchClients = new WatchClients(
      {
        rnd: watchRnd,
        nodes: this.nodes.length,
        requestTimeoutMs: this.o.attemptTimeoutMs,
        pingMs: this.o.leaseMs,
        now: () => this.agenda.nowMs,
        after: (ms, run) => this.agenda.after(ms, run),
        committed: () => this.checks.maxCommitted,
        tracing: this.o.trace,
        trace: (line) => this.trace(line),
      },
      this.watchService,
      this.watchChecks,
    );
  }

  /** A fresh brick (the initial config entry only) under the next brick id. */
  private newBrick(): SimBrick {
    const b = new SimBrick(`b${this.nextBrick++}`, this.config, this.brickOpts);
    this.allBricks.set(b.brickId, b);
    return b;
  }

  private newOperator(): Operator {
    return new Operator(
      {
        rnd: this.rnd,
        now: () => this.agenda.nowMs,
        after: (ms, run) => this.agenda.after(ms, run),
        nodes: () => this.nodes.map((n, i) => ({ brickId: n.brick.brickId, up: n.up, cut: this.nodes.some((_, j) => j !== i && !this.reachable(i, j)) })),
        committedConfig: () => this.checks.committedConfig,
        send: (node, opId, change) => this.send(-1 - OPERATOR_CLIENT, node, { k: 'client-req', client: OPERATOR_CLIENT, opId, op: { t: 'write', kv: undefined, w: { type: 'config-change', args: change } } }),
        wipe: (node) => this.wipe(node),
        trace: (line) => this.trace(line),
      },
      { everyMs: this.o.reconfigEveryMs, untilMs: this.o.durationMs - 1_000, attemptTimeoutMs: this.o.attemptTimeoutMs },
    );
  }

  /**
   * The operator wipes a removed brick (DESIGN §4: it rejoins only as a new learner): its master
   * crashes and comes back with a fresh brick under a new id, a spare.
   */
  private wipe(i: number): void {
    const node = this.nodes[i] as SimNode;
    this.crash(i);
    node.brick = this.newBrick();
    this.trace(`${node.id} has a fresh brick ${node.brick.brickId}`);
    this.agenda.after(100 + 700 * this.rnd(), () => this.restart(i));
  }

  private trace(line: string): void {
    if (this.o.trace) this.traceLines.push(`${this.agenda.nowMs.toFixed(1).padStart(9)} ${line}`);
  }

  /** Every master's replication state, for a failing seed's report. */
  mastersState(): unknown[] {
    return this.nodes.map((n) => ({ node: n.id, up: n.up, brick: { last: n.brick.last, commitRev: n.brick.commitRev, promised: n.brick.promisedEpoch }, acceptor: n.acceptor.stats(n.now(this.agenda.nowMs)), master: n.master.stats() }));
  }

  /** The trace up to now (for a run that stopped at a violation). */
  traceSoFar(): readonly string[] {
    return this.traceLines;
  }

  // ── nodes ────────────────────────────────────────────────────────────────────────────────

  private boot(node: SimNode): void {
    node.incarnation++;
    node.bootMs = this.agenda.nowMs;
    node.up = true;
    node.waiting.clear();
    node.reads.length = 0;
    node.sreads.length = 0;
    node.streams.clear();
    node.lastHolderCommit = 0;
    const now = node.now(this.agenda.nowMs);
    node.heardMs = now;
    node.acceptor = new BrickAcceptor(node.brick, { leaseMs: this.o.leaseMs, nowMs: now, ...(this.o.brickBugs ? { bugs: this.o.brickBugs } : {}) });
    const brick = node.brick;
    const acceptor = node.acceptor;
    const local = localBrickOver(brick, brick.brickId, () => brick.latestView(), (t) => acceptor.leaseLapsed(t), () => brick.config);
    node.master = new Master(
      { id: `${node.id}.${node.incarnation}`, leaseMs: this.o.leaseMs, driftRho: this.o.driftRho, roundTimeoutMs: this.o.leaseMs, random: this.rnd, fetchMaxEntries: 4, appendMaxEntries: 4, snapshotTimeoutMs: 4 * this.o.leaseMs, ...(this.o.masterBugs ? { bugs: this.o.masterBugs } : {}) },
      local,
      now,
    );
    const inc = node.incarnation;
    const tick = (): void => {
      if (!node.up || node.incarnation !== inc) return;
      this.act(node, () => node.master.tick(node.now(this.agenda.nowMs)));
      // As the replicate translator: the holder's log keeps what its slowest voter still needs.
      if (node.up && node.incarnation === inc) node.brick.retainFrom(node.master.holder?.neededFrom() ?? asRev(Number.MAX_SAFE_INTEGER));
      this.agenda.after(10, tick);
    };
    this.agenda.after(this.rnd() * 10, tick);
  }

  private crash(i: number): void {
    const node = this.nodes[i] as SimNode;
    if (!node.up) return;
    node.up = false;
    this.watchService.crashed(i);
    this.stats.crashes++;
    this.trace(`crash ${node.id}`);
  }

  /** Runs a master input and carries out its outputs; an assertion in product code is a violation. */
  private act(node: SimNode, input: () => MasterOutput[]): void {
    const configBefore = node.master.holder?.membership.config;
    let out: MasterOutput[];
    try {
      out = input();
    } catch (e) {
      if (e instanceof AssertionError) throw new SimViolation('assertion', `${node.id}: ${e.message}`);
      throw e;
    }
    for (const o of out) this.carryOut(node, o);
    const h = node.master.holder;
    if (h) {
      // The commit rule's premise (DESIGN §4.5, Raft §3.6.2): a holder's commit point is always
      // an entry of its own epoch; older entries commit only beneath one.
      if (node.holderSeen !== h) {
        // A new holder starts from its brick's commit point: only what it advances is checked.
        node.holderSeen = h;
        node.lastHolderCommit = h.commitRev;
      }
      const top = node.brick.entry(h.commitRev);
      if (h.commitRev > node.lastHolderCommit && top !== undefined && top.epoch !== h.epoch) {
        throw new SimViolation('commit-rule', `holder ${node.id} of epoch ${h.epoch} committed up to (${top.epoch}, ${h.commitRev}), an entry of an older epoch`);
      }
      const from = node.lastHolderCommit;
      node.lastHolderCommit = h.commitRev;
      const before = this.checks.maxCommitted;
      this.checks.committedUpTo(node.brick, h.commitRev, `holder ${node.id}`);
      this.checkMembership(node, h);
      if (h.commitRev > from) {
        const configs = configBefore === undefined ? [h.membership.config] : [configBefore, h.membership.config];
        this.checks.commitCounted(`holder ${node.id} of epoch ${h.epoch}`, asRev(from), h.commitRev, configs, (id) => this.allBricks.get(id));
      }
      // A failover right after a commit not every brick has learned of (DESIGN §4 checks):
      // the holder dies with its commit notices still in the network.
      if (this.faultsOn && h.commitRev > before && this.rnd() < this.o.crashAfterCommit) {
        this.trace(`${node.id} crashes right after committing ${h.commitRev}`);
        this.crash(this.nodes.indexOf(node));
      }
    }
  }

  /**
   * The holder's config is the newest in its log (DESIGN §4.7: it takes effect when appended):
   * whenever its local brick holds the holder's whole log, the newest config in that brick's log.
   */
  private checkMembership(node: SimNode, h: Holder): void {
    const mine = h.membership.config;
    const brick = node.brick.config;
    // Only while the brick follows this holder alone (no later holder has written to it).
    if (node.brick.promisedEpoch !== h.epoch || node.brick.last.rev !== h.lastRev || (node.lastCompared[0] === mine && node.lastCompared[1] === brick)) return;
    node.lastCompared = [mine, brick];
    if (configText(mine) !== configText(brick)) {
      throw new SimViolation('config-adopted', `holder ${node.id} of epoch ${h.epoch} counts by ${configText(mine)}, but the newest config in its log (to ${h.lastRev}) is ${configText(brick)}`);
    }
  }

  private carryOut(node: SimNode, o: MasterOutput): void {
    const i = this.nodes.indexOf(node);
    switch (o.kind) {
      case 'send': {
        const to = this.nodes.findIndex((n) => n.brick.brickId === o.to);
        if (to < 0) break; // no brick of that id any more (wiped): nothing answers
        if (o.req.t === 'snapshot') this.sendSnapshot(node, to, o.reqId, o.req.args);
        else this.send(i, to, { k: 'brick-req', from: node.id, reqId: o.reqId, req: o.req });
        break;
      }
      case 'reply': {
        const w = node.waiting.get(o.id);
        if (!w) break;
        node.waiting.delete(o.id);
        this.answer(i, w.client, w.opId, o.outcome.ok ? writeResult(w.op, o.outcome.result) : failure(o.outcome.error.code));
        break;
      }
      case 'read': {
        const w = node.waiting.get(o.id);
        if (!w) break;
        node.waiting.delete(o.id);
        if (!o.outcome.ok) this.answer(i, w.client, w.opId, failure(o.outcome.error.code));
        else {
          node.reads.push({ readRev: o.outcome.readRev, client: w.client, opId: w.opId, op: w.op });
          this.serveReads(node);
        }
        break;
      }
      case 'role':
        if (o.role === 'probing') this.stats.elections++;
        if (o.role === 'holder') {
          this.stats.holders++;
          // The new holder's session clock counts its heal source's quietMs (DESIGN §5): a source
          // that restarted since its log last changed lost the quiet time before its restart.
          const src = this.nodes.find((n) => n.brick.brickId === (node.master.stats().source as string | undefined));
          this.sessionChecks.holderStarted(this.agenda.nowMs, src && src.bootMs > src.logChangedMs ? src.bootMs - src.logChangedMs : 0);
        }
        this.trace(`${node.id} ${o.role} epoch ${o.epoch}`);
        if (o.role === 'holder' && this.faultsOn && this.rnd() < this.o.isolateNewHolder) {
          // Holder churn: a new holder cut off before its epoch-start entry reaches anyone, its
          // log left with entries of an epoch no other brick has.
          for (let j = 0; j < this.nodes.length; j++) if (j !== i) this.cutPair(i, j);
          this.trace(`isolate new holder ${node.id}`);
        }
        break;
      case 'ready':
        this.trace(`${node.id} ready at ${o.commitRev}`);
        break;
      case 'stepped-down':
        this.trace(`${node.id} stepped down: ${o.reason.message}`);
        break;
    }
  }

  /** Linearizable reads are served from the brick's state once it has applied their readRev. */
  private serveReads(node: SimNode): void {
    const i = this.nodes.indexOf(node);
    for (let k = 0; k < node.sreads.length; ) {
      const r = node.sreads[k] as SimNode['sreads'][number];
      const rev = node.brick.commitRev;
      if (rev < r.minRev) {
        k++;
        continue;
      }
      node.sreads.splice(k, 1);
      this.answer(i, r.client, r.opId, { ok: true, rev, wrote: false, value: dec(node.brick.viewAt(rev).get(r.key)?.value) });
    }
    for (let k = 0; k < node.reads.length; ) {
      const r = node.reads[k] as SimNode['reads'][number];
      if (node.brick.commitRev < r.readRev) {
        k++;
        continue;
      }
      node.reads.splice(k, 1);
      const view = node.brick.viewAt(r.readRev);
      if (r.op.t === 'get') this.answer(i, r.client, r.opId, { ok: true, rev: r.readRev, wrote: false, value: dec(view.get(r.op.key)?.value) });
      else {
        const range: string[] = [];
        for (const { key, record } of view.scan({ start: PREFIX, end: prefixEnd(PREFIX) })) range.push(`${key}=${dec(record.value) ?? ''}`);
        this.answer(i, r.client, r.opId, { ok: true, rev: r.readRev, wrote: false, range });
      }
    }
  }

  /** The brick side of a node: the acceptor decides, the brick makes the write durable, then the reply goes. */
  private onBrickRequest(node: SimNode, fromNode: number, p: Extract<Payload, { k: 'brick-req' }>): void {
    const now = node.now(this.agenda.nowMs);
    const a = node.acceptor;
    let rep: BrickReply;
    try {
      switch (p.req.t) {
        case 'probe':
          rep = { t: 'probe', res: a.probe(p.req.args, now) };
          break;
        case 'fetch':
          rep = { t: 'fetch', res: a.fetch(p.req.args) };
          break;
        case 'lock': {
          const d = a.lock(p.req.args, now);
          this.write(node, d.write);
          rep = { t: 'lock', res: d.reply };
          break;
        }
        case 'append': {
          const lease = a.lease;
          const d = a.append(p.req.args, now);
          // As features/locks: an append that set the lease record counts as hearing from a holder.
          if (a.lease !== undefined && a.lease !== lease) node.heardMs = now;
          this.write(node, d.write);
          rep = { t: 'append', res: d.reply };
          break;
        }
        case 'snapshot':
          // The carrier turns a snapshot request into chunks at the sender (sendSnapshot).
          throw new SimViolation('assertion', `a snapshot request travelled to brick ${node.brick.brickId} as a request`);
      }
    } catch (e) {
      if (e instanceof AssertionError) throw new SimViolation('assertion', `brick ${node.brick.brickId}: ${e.message}`);
      throw e;
    }
    this.send(this.nodes.indexOf(node), fromNode, { k: 'brick-rep', from: node.brick.brickId, reqId: p.reqId, rep }, 0.2 + this.rnd());
  }

  private write(node: SimNode, w: Parameters<SimBrick['apply']>[0] | undefined): void {
    if (!w) return;
    if ((w.append?.length ?? 0) > 0 || w.truncateFrom !== undefined) node.logChangedMs = this.agenda.nowMs;
    this.checks.beforeWrite(node.brick, w);
    node.brick.apply(w);
    // Checked before the log is trimmed (as BrickStore trims in the same write): every entry the
    // write committed is compared with the volume's committed log.
    this.checks.committedUpTo(node.brick, node.brick.commitRev, `brick ${node.brick.brickId}`);
    // Watch streams are served from the committed log, before the trim drops any of it.
    this.watchService.committed(this.nodes.indexOf(node));
    node.brick.trimLog();
    this.serveReads(node);
  }

  // ── snapshots (DESIGN §4.8) ──────────────────────────────────────────────────────────────

  /**
   * The carrier of a snapshot heal: the sender's local brick's committed state at its commitRev
   * s, frozen now, streamed to the target in 1..snapshotChunksMax chunks over the network (lost,
   * duplicated, delayed like any message; spaced so a stream's chunks arrive in order). A chunk
   * lost breaks the stream: nothing answers, and the holder asks again by its own timer.
   */
  private sendSnapshot(node: SimNode, to: number, reqId: number, a: SnapshotArgs): void {
    let snap = node.brick.exportSnapshot();
    if (this.o.carrierBugs?.staleSnapshot === true && snap.at.rev > node.brick.base.rev) snap = { ...node.brick.exportSnapshot(asRev(snap.at.rev - 1)), at: snap.at };
    const args: SnapshotChunkArgs = { epoch: a.epoch, sender: a.sender, rev: snap.at.rev, revEpoch: snap.at.epoch };
    const count = 1 + Math.floor(this.rnd() * this.o.snapshotChunksMax);
    this.stats.snapshotsSent++;
    this.trace(`${node.id} sends a snapshot at (${snap.at.epoch}, ${snap.at.rev}) to ${(this.nodes[to] as SimNode).brick.brickId} in ${count} chunk(s)`);
    const i = this.nodes.indexOf(node);
    const gapMs = this.o.maxDelayMs + 1;
    for (let index = 0; index < count; index++) this.send(i, to, { k: 'snap-chunk', from: node.id, reqId, args, index, count, snap }, index * gapMs);
    // A carrier gives up on a transfer unanswered for a while and reports it failed (the holder
    // asks again soon); a silent one leaves it to the holder's own timer.
    if (this.rnd() >= SILENT_SNAPSHOT_DROPS) {
      const inc = node.incarnation;
      const target = (this.nodes[to] as SimNode).brick.brickId;
      this.agenda.after(3 * this.o.leaseMs + count * gapMs, () => {
        if (!node.up || node.incarnation !== inc) return;
        // The master drops it if the transfer was answered meanwhile (the request is settled).
        this.act(node, () => node.master.onReply(target, reqId, { t: 'snapshot', res: { ok: false, reason: 'failed', message: 'the transfer timed out' } }, node.now(this.agenda.nowMs)));
      });
    }
  }

  /**
   * A snapshot chunk at the target brick: fenced like an append (a higher epoch adopted durably,
   * the lease record set); a snapshot the brick does not want (s ≤ its commitRev) is answered at
   * once; the last chunk of a wanted one is installed in one durable step, then answered.
   */
  private onSnapshotChunk(node: SimNode, fromNode: number, p: Extract<Payload, { k: 'snap-chunk' }>): void {
    const key = `${p.from}/${p.reqId}`;
    const expected = node.streams.get(key) ?? 0;
    if (p.index !== expected) {
      // A duplicate of a chunk taken already is dropped; a gap (a chunk lost) breaks the stream.
      if (expected >= 0 && p.index > expected) node.streams.set(key, -1);
      return;
    }
    if (node.streams.size > 1_000) node.streams.clear();
    const now = node.now(this.agenda.nowMs);
    let res: Extract<BrickReply, { t: 'snapshot' }>['res'] | undefined;
    try {
      const lease = node.acceptor.lease;
      const d = node.acceptor.snapshotChunk(p.args, now);
      if (node.acceptor.lease !== undefined && node.acceptor.lease !== lease) node.heardMs = now;
      this.write(node, d.write);
      if (!d.reply.ok) res = d.reply;
      else if (!d.reply.wanted) res = node.acceptor.snapshotDone(p.args, false, now);
      else if (p.index === p.count - 1) {
        this.checks.beforeInstall(node.brick, p.snap);
        node.brick.installSnapshot(p.snap);
        node.logChangedMs = this.agenda.nowMs;
        this.stats.snapshotsInstalled++;
        this.trace(`brick ${node.brick.brickId} installs the snapshot at (${p.snap.at.epoch}, ${p.snap.at.rev}) from ${p.snap.from}`);
        this.checks.committedUpTo(node.brick, node.brick.commitRev, `brick ${node.brick.brickId}`);
        this.watchService.installed(this.nodes.indexOf(node), p.snap.at.rev);
        this.watchService.committed(this.nodes.indexOf(node));
        node.brick.trimLog();
        res = node.acceptor.snapshotDone(p.args, true, now);
        this.serveReads(node);
      }
    } catch (e) {
      if (e instanceof AssertionError) throw new SimViolation('assertion', `brick ${node.brick.brickId}: ${e.message}`);
      throw e;
    }
    node.streams.set(key, res === undefined ? p.index + 1 : -1);
    if (res !== undefined) this.send(this.nodes.indexOf(node), fromNode, { k: 'brick-rep', from: node.brick.brickId, reqId: p.reqId, rep: { t: 'snapshot', res } }, 0.2 + this.rnd());
  }

  // ── network ──────────────────────────────────────────────────────────────────────────────

  /** Endpoints: node indexes 0..n−1, clients as −1 − id. A node's messages to itself never fail. */
  private send(from: number, to: number, p: Payload, extraMs = 0): void {
    this.stats.messages++;
    const local = from === to;
    const fromInc = from >= 0 ? (this.nodes[from] as SimNode).incarnation : 0;
    const toInc = to >= 0 ? (this.nodes[to] as SimNode).incarnation : 0;
    if (!local && this.faultsOn && this.rnd() < this.o.lossRate) {
      this.stats.lost++;
      return;
    }
    // Client requests are not duplicated (a connection delivers a request at most once, so a
    // refusal settles the copy it answers); the copies exactly-once must absorb are the clients'
    // own resends with the same origin (DESIGN §3). Brick traffic and replies are duplicated.
    const copies = !local && p.k !== 'client-req' && this.faultsOn && this.rnd() < this.o.dupRate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let c = 0; c < copies; c++) {
      const delay = extraMs + (local ? 0.05 : 0.5 + this.rnd() * this.o.maxDelayMs);
      this.agenda.after(delay, () => this.deliver(from, fromInc, to, toInc, p));
    }
  }

  private reachable(a: number, b: number): boolean {
    if (a === b) return true;
    const na = a < 0 ? 'c' : String(a);
    const nb = b < 0 ? 'c' : String(b);
    return !this.cut.has(`${na}|${nb}`);
  }

  private deliver(from: number, fromInc: number, to: number, toInc: number, p: Payload): void {
    // A crash breaks connections: nothing sent by or to an earlier incarnation arrives.
    if (from >= 0 && ((this.nodes[from] as SimNode).incarnation !== fromInc || !(this.nodes[from] as SimNode).up)) return;
    if (to >= 0 && ((this.nodes[to] as SimNode).incarnation !== toInc || !(this.nodes[to] as SimNode).up)) return;
    if (!this.reachable(from, to)) return;
    if (to < 0) {
      if (p.k !== 'client-rep') return;
      const client = -1 - to;
      if (client >= SESSION_CLIENT_BASE) this.sessionClients.onReply(client, p.opId, sessionReply(p.res));
      else if (client === OPERATOR_CLIENT) this.operator?.onReply(p.opId, p.res.ok, p.res.ok ? undefined : p.res.code);
      else if (client === COMPACTOR_CLIENT) this.stats.compactions += p.res.ok ? 1 : 0;
      else this.onClientReply(client, p.opId, p.res);
      return;
    }
    const node = this.nodes[to] as SimNode;
    switch (p.k) {
      case 'brick-req':
        this.onBrickRequest(node, from, p);
        break;
      case 'snap-chunk':
        this.onSnapshotChunk(node, from, p);
        break;
      case 'brick-rep':
        this.act(node, () => node.master.onReply(p.from, p.reqId, p.rep, node.now(this.agenda.nowMs)));
        break;
      case 'client-req':
        this.onClientRequest(node, p);
        break;
      case 'client-rep':
        break;
    }
  }

  // ── clients ──────────────────────────────────────────────────────────────────────────────

  private onClientRequest(node: SimNode, p: Extract<Payload, { k: 'client-req' }>): void {
    if (p.op.t === 'sget') {
      const r = { minRev: p.op.minRev, key: p.op.key, client: p.client, opId: p.opId };
      node.sreads.push(r);
      this.serveReads(node);
      const inc = node.incarnation;
      // A brick below minRev waits until the deadline, then answers `behind` (DESIGN §3).
      this.agenda.after(this.o.leaseMs, () => {
        const k = node.sreads.indexOf(r);
        if (k < 0 || node.incarnation !== inc) return;
        node.sreads.splice(k, 1);
        this.answer(this.nodes.indexOf(node), r.client, r.opId, { ok: false, definite: true, code: 'behind' });
      });
      return;
    }
    const id = node.nextId++;
    node.waiting.set(id, { client: p.client, opId: p.opId, op: p.op });
    const now = node.now(this.agenda.nowMs);
    if (p.op.t === 'write') {
      const w = p.op.w;
      // A keepalive (or an open, which is one for the session it finds) reaching a holder (DESIGN §5).
      const h = node.master.holder;
      if (h && !h.isDown) {
        if (w.type === 'session-open') this.sessionChecks.openArrived(w.args.nonce, this.agenda.nowMs);
        else if (w.type === 'keepalive') this.sessionChecks.keepaliveArrived(w.args.id, this.agenda.nowMs);
      }
      this.act(node, () => node.master.propose(id, w, now, true, p.origin));
    } else this.act(node, () => node.master.read(id, now));
  }

  private answer(nodeIdx: number, client: number, opId: number, res: ClientResult): void {
    this.send(nodeIdx, -1 - client, { k: 'client-rep', opId, res });
  }

  /** The client's next op; `readOnly`: a read (its writes wait for a session). */
  private nextOp(c: ClientState, readOnly = false): ClientOp {
    const key = KEYS[Math.floor(this.rnd() * KEYS.length)] as string;
    const value = `c${c.id}v${++this.valueSeq}`;
    const x = readOnly ? 0.4 * this.rnd() : this.rnd();
    if (x < 0.35) return this.rnd() < 0.3 ? { t: 'sget', key, minRev: c.seenRev } : { t: 'get', key };
    if (x < 0.4) return { t: 'range' };
    if (x < 0.6) return { t: 'write', kv: { f: 'put', key, value }, w: { type: 'put', args: { key, value: enc(value) } } };
    if (x < 0.67) return { t: 'write', kv: { f: 'delete', key }, w: { type: 'delete', args: { key } } };
    if (x < 0.92) {
      // CAS on what this client last saw is too rare a hit: compare with a recent value or absence.
      const recent = this.recentOk.get(key) ?? [];
      const pick = recent[Math.floor(this.rnd() * (recent.length + 1))];
      const expect = pick === undefined ? undefined : pick.op.f === 'get' ? (pick.outcome.type === 'ok' ? pick.outcome.value : undefined) : pick.op.f === 'delete' ? undefined : (pick.op as { value: string }).value;
      const compare = expect === undefined ? { key, target: 'exists' as const, op: '=' as const, value: false } : { key, target: 'value' as const, op: '=' as const, value: enc(expect) };
      return { t: 'write', kv: { f: 'cas', key, expect, value }, w: { type: 'txn', args: { compare: [compare], success: [{ op: 'put', key, value: enc(value) }], failure: [] } } };
    }
    // A multi-key txn: two keys at one rev (checked by replay; each key's put in the lin history).
    const other = KEYS[(KEYS.indexOf(key) + 1 + Math.floor(this.rnd() * (KEYS.length - 1))) % KEYS.length] as string;
    const v2 = `c${c.id}v${++this.valueSeq}`;
    const multi = [{ key, value }, { key: other, value: v2 }];
    return { t: 'write', kv: undefined, multi, w: { type: 'txn', args: { compare: [], success: multi.map((m) => ({ op: 'put' as const, key: m.key, value: enc(m.value) })), failure: [] } } };
  }

  /**
   * The client's own session (DESIGN §3): opened at its start, and again once a session is lost
   * (the library then sends nothing more on it), until the client stops starting ops.
   */
  private openSession(c: ClientState): void {
    const s = this.sessionClients.openFor(
      c.id,
      (sid) => {
        if (c.session !== s) return;
        c.sid = sid;
        c.seq = 0;
        c.ackedSeq = 0;
      },
      () =>
        this.agenda.after(0, () => {
          if (c.session !== s) return;
          c.session = undefined;
          c.sid = undefined;
          if (this.agenda.nowMs < this.clientsUntilMs) this.agenda.after(1 + 9 * this.rnd(), () => this.openSession(c));
        }),
    );
    c.session = s;
  }

  private startClient(c: ClientState, untilMs: number): void {
    this.clientsUntilMs = untilMs;
    this.openSession(c);
    const go = (): void => {
      if (this.agenda.nowMs >= untilMs || c.busy) return;
      // Writes name the client's session: without one, it reads.
      const live = c.session?.usable();
      const sid = live !== undefined && live === c.sid ? live : undefined;
      const op = this.nextOp(c, sid === undefined);
      let origin: Origin | undefined;
      if (op.t === 'write') {
        origin = { clientId: sid as SessionId, seq: ++c.seq, ackedSeq: c.ackedSeq };
        this.stats.writes++;
      }
      c.busy = true;
      // Reads are sent once: a read given up on constrains nothing.
      c.current = { op, invokeMs: this.agenda.nowMs, origin, sends: new Map(), last: 0, deadlineMs: this.agenda.nowMs + (origin ? this.o.retryForMs : 0) };
      this.sendCopy(c);
    };
    this.clientGo.set(c.id, go);
    this.agenda.after(this.rnd() * 20, go);
  }
  private readonly clientGo = new Map<number, () => void>();
  /** The last three ops of each key with an ok outcome, in history order (for nextOp's cas). */
  private readonly recentOk = new Map<string, SimOp[]>();

  private record(h: SimOp): void {
    this.history.push(h);
    if (h.outcome.type !== 'ok') return;
    const recent = this.recentOk.get(h.op.key) ?? [];
    recent.push(h);
    if (recent.length > 3) recent.shift();
    this.recentOk.set(h.op.key, recent);
  }

  /** Sends the current op (again, for a write: with the same origin). */
  private sendCopy(c: ClientState): void {
    const cur = c.current as CurrentOp;
    const opId = ++c.opSeq;
    cur.sends.set(opId, 'out');
    cur.last = opId;
    if (cur.sends.size > 1) {
      this.stats.resends++;
      if (this.o.trace) this.trace(`client ${c.id} resends write ${cur.origin?.clientId}/${cur.origin?.seq} to m${c.target} (copy ${cur.sends.size})`);
    }
    this.send(-1 - c.id, c.target, { k: 'client-req', client: c.id, opId, op: cur.op, origin: cur.origin });
    const timeoutMs = cur.origin ? this.o.attemptTimeoutMs : 4 * this.o.leaseMs + 200;
    this.agenda.after(timeoutMs, () => {
      if (c.current !== cur || cur.last !== opId) return;
      // A write moves on to another master (as the library does from a broken connection).
      const n = this.nodes.length;
      c.target = cur.origin && n > 1 ? (c.target + 1 + Math.floor(this.rnd() * (n - 1))) % n : Math.floor(this.rnd() * n);
      this.retryOrSettle(c, 'timeout');
    });
  }

  /**
   * The newest copy of the current op was not answered with its outcome. A read, or a write no
   * copy of which can have been applied, is settled now (unknown, or failed for certain); a write
   * that may have been applied is sent again with its origin, after a growing pause, until its
   * deadline or the end of its session; then it is given up, its outcome unknown.
   */
  private retryOrSettle(c: ClientState, code: string): void {
    const cur = c.current as CurrentOp;
    const maybe = [...cur.sends.values()].some((s) => s !== 'not-applied');
    if (!maybe) return this.complete(c, { ok: false, definite: true, code });
    const clientId = cur.origin?.clientId;
    const giveUp = (): void => {
      if (clientId !== undefined) this.stats.givenUp++;
      this.complete(c, { ok: false, definite: false, code });
    };
    if (clientId === undefined || this.agenda.nowMs >= cur.deadlineMs || c.session?.usable() !== clientId) return giveUp();
    // Backing off: from half to all of min(10 ms · 2^(copies − 1), 200 ms).
    this.agenda.after(Math.min(10 * 2 ** (cur.sends.size - 1), 200) * (0.5 + 0.5 * this.rnd()), () => {
      if (c.current !== cur) return;
      // Once the library has reported a session lost, it sends nothing more on it.
      if (c.session?.usable() !== clientId) return giveUp();
      this.sendCopy(c);
    });
  }

  /** The KV client op that sent a put value (a violation's message): its client and origin. */
  private sender(value: string): string | undefined {
    const sends = (op: ClientOp): boolean => op.t === 'write' && (op.kv ? 'value' in op.kv && op.kv.value === value : (op.multi ?? []).some((m) => m.value === value));
    const of = (client: number, o: Origin | undefined): string => `client ${client}, clientId ${o?.clientId}, seq ${o?.seq}`;
    const h = this.history.find((x) => 'value' in x.op && x.op.value === value);
    if (h) return of(h.client, h.origin);
    const c = this.clients.find((x) => x.current !== undefined && sends(x.current.op));
    return c ? `${of(c.id, c.current?.origin)}, in flight` : undefined;
  }

  private onClientReply(client: number, opId: number, res: ClientResult): void {
    const c = this.clients[client] as ClientState;
    const cur = c.current;
    // A duplicate, an answer to an older copy (its connection is given up), or after the client gave up.
    if (cur === undefined || cur.last !== opId || cur.sends.get(opId) !== 'out') return;
    if (!res.ok && (res.code === 'not-holder' || res.code === 'no-quorum' || res.code === 'indeterminate')) c.target = Math.floor(this.rnd() * this.nodes.length);
    if (res.ok || cur.origin === undefined) return this.complete(c, res);
    const o = cur.origin;
    switch (res.code) {
      case 'not-holder':
      case 'no-quorum':
      case 'too-large':
        // Refused before evaluation: this copy was not applied (an earlier one may have been).
        cur.sends.set(opId, 'not-applied');
        return this.retryOrSettle(c, res.code);
      case 'session-expired':
        // The client's session ended: this copy was not applied, and no copy ever will be now.
        cur.sends.set(opId, 'not-applied');
        if (c.sid === o.clientId) c.session?.ended(res.code);
        if ([...cur.sends.values()].every((s) => s === 'not-applied')) return this.complete(c, { ok: false, definite: true, code: res.code });
        this.stats.givenUp++;
        return this.complete(c, { ok: false, definite: false, code: res.code });
      case 'stale-retry':
      case 'too-many-in-flight':
        // The client never sends a seq at or below its ackedSeq, nor more than one past it.
        throw new SimViolation('exactly-once', `client ${c.id}'s write (clientId ${o.clientId}, seq ${o.seq}, ackedSeq ${o.ackedSeq}) was refused ${res.code}`);
      default:
        // indeterminate (or anything else): it may have been applied.
        cur.sends.set(opId, 'maybe');
        return this.retryOrSettle(c, res.code);
    }
  }

  private complete(c: ClientState, res: ClientResult): void {
    const cur = c.current as CurrentOp;
    c.current = undefined;
    c.busy = false;
    const base = { client: c.id, invokeMs: cur.invokeMs, completeMs: this.agenda.nowMs };
    const outcome: KvOutcome = !res.ok ? (res.definite ? { type: 'fail' } : { type: 'unknown' }) : { type: 'ok', value: res.value, ...(res.succeeded === undefined ? {} : { succeeded: res.succeeded }) };
    const rev = res.ok ? res.rev : undefined;
    const wrote = res.ok ? res.wrote : undefined;
    const op = cur.op;
    if (res.ok) c.seenRev = Math.max(c.seenRev, res.rev);
    // Settled (answered, or given up for good): ackedSeq covers it, as every lower seq is settled.
    if (cur.origin !== undefined && cur.origin.clientId === c.sid) c.ackedSeq = Math.max(c.ackedSeq, cur.origin.seq);
    const duplicate = res.ok && res.duplicate === true;
    if (duplicate) this.stats.duplicates++;
    const w = op.t === 'write' ? { origin: cur.origin, sends: cur.sends.size, ...(duplicate ? { duplicate } : {}) } : {};
    if (op.t === 'sget') this.record({ id: this.nextHistoryId++, ...base, op: { f: 'get', key: op.key }, outcome, rev, wrote, serializable: true, minRev: op.minRev });
    else if (op.t === 'get') this.record({ id: this.nextHistoryId++, ...base, op: { f: 'get', key: op.key }, outcome, rev, wrote });
    else if (op.t === 'range') {
      if (res.ok) this.record({ id: this.nextHistoryId++, ...base, op: { f: 'get', key: PREFIX }, outcome: { type: 'unknown' }, rev, wrote, range: res.range });
    } else if (op.kv) this.record({ id: this.nextHistoryId++, ...base, op: op.kv, outcome, rev, wrote, ...w });
    else for (const m of op.multi ?? []) this.record({ id: this.nextHistoryId++, ...base, op: { f: 'put', key: m.key, value: m.value }, outcome: res.ok ? { type: 'ok' } : outcome, rev, wrote, multi: op.multi, ...w });
    this.clientGo.get(c.id)?.();
  }

  /**
   * Every 10 ms, whether some holder could end a session now: its lease holds and its commits are
   * not stalled — its commit point advanced within two message delays and two ticks, or it has
   * nothing uncommitted. A lease can hold while nothing commits (a quorum that includes a voter
   * still being healed acks appends that count for the lease); the session checks count time
   * only while some holder can commit (session-checks.ts).
   */
  private sampleLeases(untilMs: number): void {
    const stallMs = 2 * (this.o.maxDelayMs + 1.7) + 20;
    const progress = new WeakMap<Holder, { commit: number; at: number }>();
    const sample = (): void => {
      const t = this.agenda.nowMs;
      let can = false;
      for (const n of this.nodes) {
        const h = n.up ? n.master.holder : undefined;
        if (!h || !h.leaseHolds(n.now(t))) continue;
        let p = progress.get(h);
        if (!p || p.commit !== h.commitRev || h.lastRev <= h.commitRev) progress.set(h, (p = { commit: h.commitRev, at: t }));
        if (t - p.at <= stallMs) can = true;
      }
      this.sessionChecks.leaseSample(t, can);
      if (t + 10 <= untilMs) this.agenda.after(10, sample);
    };
    this.agenda.after(0, sample);
  }

  // ── faults ───────────────────────────────────────────────────────────────────────────────

  private scheduleFaults(untilMs: number): void {
    const next = (): void => {
      if (this.agenda.nowMs >= untilMs) return;
      this.fault();
      this.agenda.after(this.o.faultEveryMs * (0.5 + this.rnd()), next);
    };
    this.agenda.after(this.o.faultEveryMs * this.rnd(), next);
  }

  private fault(): void {
    if (this.agenda.nowMs < this.churnUntil) return;
    const n = this.nodes.length;
    const x = this.rnd();
    const down = this.nodes.filter((d) => !d.up).length;
    if (x < 0.2) {
      // A partial partition: one link between two masters (the others still reach both).
      const i = Math.floor(this.rnd() * n);
      const j = (i + 1 + Math.floor(this.rnd() * (n - 1))) % n;
      this.cutPair(i, j);
      this.stats.partitions++;
      this.trace(`cut m${i}-m${j}`);
    } else if (x < 0.4) {
      // Partition one master from the others (clients may still reach it) or isolate a pair.
      const i = Math.floor(this.rnd() * n);
      for (let j = 0; j < n; j++) if (j !== i) this.cutPair(i, j);
      if (this.rnd() < 0.3) this.cutPair(i, -1);
      this.stats.partitions++;
      this.trace(`partition m${i}`);
    } else if (x < 0.6) {
      this.cut.clear();
      this.trace('heal partitions');
    } else if (x < 0.78 && down < n - 1) {
      // Crash: prefer the holder (failover right after commits some bricks have not learned of).
      const holder = this.nodes.findIndex((d) => d.up && d.master.holder !== undefined);
      const i = holder >= 0 && this.rnd() < 0.7 ? holder : Math.floor(this.rnd() * n);
      this.crash(i);
    } else {
      for (const [i, d] of this.nodes.entries()) if (!d.up && this.rnd() < 0.7) this.restart(i);
    }
  }

  /**
   * Holder churn faster than ttl/2 together with lease lapses (DESIGN §4 "Required checks"): a
   * burst of a few seconds that starts with every master up and every link healed, and in which,
   * every 300–900 ms, the links cut at the previous step are healed and the newest ready holder
   * is cut off from the other masters, so its lease lapses and another takes over. Clients still
   * reach it, so it answers them for the rest of its lease, and keepalives to it time out after
   * that. The other faults wait while a burst is on.
   */
  private scheduleChurn(untilMs: number): void {
    if (this.rnd() >= this.o.churnRate) return;
    const bursts = 1 + Math.floor(2 * this.rnd());
    for (let b = 0; b < bursts; b++) {
      const start = (untilMs - 3_000) * this.rnd();
      const end = Math.min(start + 2_000 + 3_000 * this.rnd(), untilMs);
      const period = 300 + 600 * this.rnd();
      const step = (): void => {
        if (!this.faultsOn || this.agenda.nowMs >= end) return;
        if (this.agenda.nowMs === start) {
          this.churnUntil = Math.max(this.churnUntil, end);
          this.cut.clear();
          for (let i = 0; i < this.nodes.length; i++) this.restart(i);
          this.trace(`churn burst until ${end.toFixed(1)}: every partition healed, every master up`);
        }
        for (const [a, c] of this.churnCuts) {
          this.cut.delete(`${a}|${c}`);
          this.cut.delete(`${c}|${a}`);
        }
        this.churnCuts = [];
        let i = -1;
        for (const [k, d] of this.nodes.entries()) {
          const h = d.up ? d.master.holder : undefined;
          if (h?.isReady === true && (i < 0 || h.epoch > ((this.nodes[i] as SimNode).master.holder?.epoch ?? 0))) i = k;
        }
        if (i >= 0) {
          for (let j = 0; j < this.nodes.length; j++) {
            if (j === i) continue;
            this.cutPair(i, j);
            this.churnCuts.push([i, j]);
          }
          this.stats.churns++;
          this.trace(`churn: cut off holder m${i}`);
        }
        this.agenda.after(period * (0.75 + 0.5 * this.rnd()), step);
      };
      this.agenda.at(start, step);
    }
  }

  private cutPair(a: number, b: number): void {
    const na = a < 0 ? 'c' : String(a);
    const nb = b < 0 ? 'c' : String(b);
    this.cut.add(`${na}|${nb}`);
    this.cut.add(`${nb}|${na}`);
  }

  private restart(i: number): void {
    const node = this.nodes[i] as SimNode;
    if (node.up) return;
    this.trace(`restart ${node.id}`);
    this.boot(node);
  }

  /**
   * Compaction (DESIGN §4 "Required checks": compaction and snapshot heals together): now and
   * then, compact(rev) a little below the volume's commit point goes to a random master; the
   * answer is ignored (a refusal — not the holder, at or below compactRev — changes nothing).
   * Bricks record compactRev (snapshots carry it); reads stay exact, as the sim keeps versions.
   */
  private scheduleCompaction(untilMs: number): void {
    if (this.o.compactEveryMs <= 0) return;
    let opId = 0;
    const next = (): void => {
      if (this.agenda.nowMs >= untilMs) return;
      const rev = asRev(Math.max(1, this.checks.maxCommitted - Math.floor(20 * this.rnd())));
      // Mostly to the holder (as an operator who reads `status` first), sometimes to anyone.
      const holder = this.nodes.findIndex((n) => n.up && n.master.holder?.isReady === true);
      const node = holder >= 0 && this.rnd() < 0.8 ? holder : Math.floor(this.rnd() * this.nodes.length);
      this.send(-1 - COMPACTOR_CLIENT, node, { k: 'client-req', client: COMPACTOR_CLIENT, opId: ++opId, op: { t: 'write', kv: undefined, w: { type: 'compact', args: { rev } } } });
      this.agenda.after(this.o.compactEveryMs * (0.5 + this.rnd()), next);
    };
    this.agenda.after(this.o.compactEveryMs * this.rnd(), next);
  }

  // ── run ──────────────────────────────────────────────────────────────────────────────────

  run(): SimResult {
    const faultEnd = this.o.durationMs;
    for (const c of this.clients) this.startClient(c, faultEnd + this.o.quietMs - 1_000);
    if (this.o.sessionClients > 0) {
      this.sessionClients.start();
      this.sampleLeases(faultEnd + this.o.quietMs);
    }
    this.scheduleFaults(faultEnd);
    this.scheduleChurn(faultEnd);
    this.operator?.start();
    this.scheduleCompaction(faultEnd);
    // Watches run past the quiet period, for as long as the end-of-run watch check may wait (finishWatches).
    this.watchService.start(faultEnd + this.o.quietMs + this.watchClients.settleMs);
    this.watchClients.start(this.watchers, 0.7 * faultEnd, faultEnd + this.o.quietMs + this.watchClients.settleMs);
    this.agenda.runUntil(faultEnd);
    // The quiet period: every fault healed, every master up; the volume must converge.
    this.faultsOn = false;
    this.cut.clear();
    for (let i = 0; i < this.nodes.length; i++) this.restart(i);
    this.agenda.runUntil(faultEnd + this.o.quietMs);
    // A write still unanswered when the run ends may have been applied: its outcome is unknown.
    for (const c of this.clients) if (c.current?.op.t === 'write') this.complete(c, { ok: false, definite: false, code: 'end of run' });
    this.sessionChecks.finish(this.agenda.nowMs);
    const sc = this.sessionChecks.counts;
    const stats: Record<string, number> = {
      ...this.stats, events: this.agenda.executed, ops: this.history.length, committed: this.checks.maxCommitted, holderAtEnd: this.nodes.findIndex((n) => n.master.holder?.isReady === true),
      sessionClients: this.sessionClients.started, kvSessions: this.sessionClients.kvSessions, valuesCommitted: this.onceChecks.counts.values, dedupeRecords: this.onceChecks.counts.records, sessions: sc.sessions, sessionsEnded: sc.ended, keepaliveAcks: sc.acks, sessionsBounded: sc.livenessChecked, orphanSessions: sc.orphans,
      leaseHeldMs: Math.round(this.sessionChecks.leaseTime(0, this.o.durationMs)), sessionsDied: sc.died, sessionsClosed: sc.closed, sessionsLost: sc.lost, sessionsExpiredAtClient: sc.expired, sessionsNeverOpened: sc.neverOpened,
      entriesTrimmed: [...this.allBricks.values()].reduce((n, b) => n + b.trimmed, 0), retainRevs: this.brickOpts.retainRevs ?? 0, pinRevsMax: this.brickOpts.pinRevsMax ?? 0,
      ...this.checks.counts, ...prefixed('operator', this.operator?.counts ?? {}),
      ...this.watchStats(),
    };
    return {
      seed: this.o.seed,
      history: this.history,
      checks: this.checks,
      bricks: this.nodes.map((n) => n.brick),
      trace: this.traceLines,
      stats,
      config: this.config,
      members: membersOf(this.checks.committedConfig ?? this.config),
      finishWatches: () => Object.assign(stats, this.finishWatches()),
    };
  }

  private watchStats(): Record<string, number> {
    return { ...prefixed('watch', this.watchChecks.counts), ...prefixed('watchClient', this.watchClients.counts), ...prefixed('watchService', this.watchService.counts) };
  }

  /**
   * The end-of-run watch check (checkRun calls it once the bricks are known converged at the
   * quiet period's end): every watcher streams from a brick at the volume's commit point and has
   * every event up to it. A watcher still backing off from an outage may need longer than the
   * quiet period (the library waits up to 2 s between tries, and a master outside the volume
   * refuses it): the run goes on, no fault on, up to settleMs — one longest backoff per master —
   * until every watcher has caught up, then checks. The replication keeps running meanwhile,
   * under the continuous checks; it is checked at the quiet period's end as without watches.
   */
  private finishWatches(): Record<string, number> {
    const top = (): number => Math.max(...this.nodes.map((n) => n.brick.commitRev));
    const commitRevOf = (n: number): number => (this.nodes[n] as SimNode).brick.commitRev;
    const from = this.agenda.nowMs;
    const deadline = from + this.watchClients.settleMs;
    while (this.agenda.nowMs < deadline && !this.watchClients.caughtUp(top(), commitRevOf)) this.agenda.runUntil(Math.min(deadline, this.agenda.nowMs + 100));
    const settleMs = this.agenda.nowMs - from;
    if (settleMs > 0) this.trace(`watchers caught up ${settleMs.toFixed(0)} ms after the quiet period`);
    this.watchService.flushAll();
    this.watchClients.finish(top(), commitRevOf);
    return { ...this.watchStats(), watchSettleMs: settleMs };
  }
}

function sessionReply(r: ClientResult): SessionReply {
  return r.ok ? { ok: true, session: r.session } : { ok: false, code: r.code };
}

function failure(code: string): ClientResult {
  // Refused before evaluation: certainly not applied. Anything else may have been.
  const definite = code === 'not-holder' || code === 'no-quorum';
  return { ok: false, definite, code };
}

function writeResult(op: ClientOp, r: WriteResult): ClientResult {
  switch (r.type) {
    // A duplicate (a resend answered from its stored result) carries rev, deleted count and
    // branch but no values: what the history needs of the write comes from the op itself.
    case 'put':
      return { ok: true, rev: r.result.rev, wrote: true, ...dup(r.result) };
    case 'delete':
      return { ok: true, rev: r.result.rev, wrote: r.result.deleted > 0, ...dup(r.result) };
    case 'txn': {
      const wrote = r.result.succeeded && (op.t === 'write' ? op.w.type === 'txn' && op.w.args.success.length > 0 : false);
      return { ok: true, rev: r.result.rev, wrote, succeeded: r.result.succeeded, ...dup(r.result) };
    }
    case 'session-open':
      return { ok: true, rev: r.result.rev, wrote: true, session: r.result.id };
    case 'config-change':
      return { ok: true, rev: r.result.rev, wrote: true };
    default:
      return { ok: true, rev: asRev(0), wrote: false };
  }
}

/** A config as canonical text (learners absent and empty alike). */
function configText(c: VolumeConfig): string {
  return JSON.stringify({ volumeName: c.volumeName, bricks: c.bricks, learners: c.learners ?? [], quorumCount: c.quorumCount });
}

function prefixed(prefix: string, counts: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [`${prefix}${k[0]?.toUpperCase() ?? ''}${k.slice(1)}`, v]));
}

function dup(r: { readonly duplicate?: true }): { duplicate?: boolean } {
  return r.duplicate === true ? { duplicate: true } : {};
}
