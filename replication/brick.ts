// The brick's side of the volume lock (DESIGN §4.2, §4.5): a passive acceptor. It keeps the
// volatile lease record, grants lock(e) by the rules of §4.2, fences requests of older epochs and
// takes appends by the log-matching rules of §4.5. Pure and synchronous: every request gets a
// Decision — a durable write to make (if any), then the reply to send — and the caller carries it
// out (translators/features/locks.ts on a BrickStore; the simulator on a SimBrick). The acceptor
// reads the brick's durable state through BrickLog and never writes it itself, so the caller must
// make each decision's write visible through BrickLog before it asks for the next decision.
import { assert } from '../src/common/assert.js';
import { asRev, EPOCH_ZERO, type Epoch, type Rev } from '../src/common/ids.js';
import { prefixEnd } from '../src/common/keys.js';
import { appendBytesMax } from '../src/common/limits.js';
import type { BrickWrite, Entry, LogPosition, VolumeConfig } from '../store/types.js';
import {
  entryBytes, type AppendArgs, type AppendResult, type FetchArgs, type FetchResult, type LockArgs, type LockResult, type ProbeArgs, type ProbeResult, type SnapshotChunkArgs, type SnapshotResult,
} from './messages.js';

/** The acceptor's answer to one snapshot chunk: go on (building it only if `wanted`), or fenced. */
export type SnapshotChunkReply = { readonly ok: true; readonly wanted: boolean } | { readonly ok: false; readonly reason: 'fenced'; readonly promisedEpoch: Epoch };
import { decodeNumber, EPOCHS_PREFIX } from './sessions.js';
import type { StateView } from './state-view.js';

/** What the acceptor reads of its brick's durable state; BrickStore (via an adapter in locks.ts) and the simulator's SimBrick implement it. */
export interface BrickLog {
  readonly brickId: string;
  readonly promisedEpoch: Epoch;
  readonly grantee: string;
  /** The last entry held, including entries of writes already decided (and issued). */
  readonly last: LogPosition;
  /** The commit point including writes already decided (and issued). */
  readonly commitRev: Rev;
  readonly compactRev: Rev;
  /** First rev still held in the log (entries below were trimmed: committed, held in the state). */
  readonly firstRev: Rev;
  readonly config: VolumeConfig;
  /** The epoch of the entry at `rev` (rev 0, or a snapshot's base, included), if known. */
  epochAt(rev: Rev): Epoch | undefined;
  entry(rev: Rev): Entry | undefined;
  /** The session clock (Entry.sclock) of the brick's last entry (see lastSclockOf for the fallback). */
  lastSclock(): number;
}

/** Deliberately broken variants, ONLY for the simulator's tests that prove the checker bites. Never set in production. */
export interface BrickBugs {
  /** Take appends/fetches of an epoch below promisedEpoch. */
  readonly skipEpochFence?: boolean;
  /** Grant lock(e) while a lease is live for another holder. */
  readonly grantDuringLease?: boolean;
  /** On an append whose entries end before the brick's last entry, delete the brick's entries after the message's last (a "short" stale append truncating the log). */
  readonly truncateOnShortAppend?: boolean;
}

/** The volatile lease record (DESIGN §4 "Brick volatile state"). holder undefined: unknown (set at start). */
export interface Lease {
  readonly epoch: Epoch;
  readonly holder: string | undefined;
  readonly deadlineMs: number;
}

/** A decision: make `write` durable (if any), THEN send `reply`. */
export interface Decision<R> {
  readonly write?: BrickWrite;
  readonly reply: R;
}

export interface BrickAcceptorOptions {
  /** The volume's lease (a config value, never a message argument). */
  readonly leaseMs: number;
  /** The brick's monotonic clock at start: the lease record starts unknown until now + leaseMs. */
  readonly nowMs: number;
  /** Default (and in production): none. */
  readonly bugs?: BrickBugs | undefined;
}

type Refusal = 'epoch' | 'lease';

export class BrickAcceptor {
  private readonly leaseMs: number;
  private readonly bugs: BrickBugs;
  private leaseV: Lease | undefined;
  /** Monotonic ms of the last change to the log (append or truncation), or of the start. */
  private logChangedMs: number;
  private grants = 0;
  private fencedAppends = 0;
  private fencedFetches = 0;
  private mismatchedAppends = 0;
  private snapshotsInstalled = 0;

  constructor(
    private readonly log: BrickLog,
    opts: BrickAcceptorOptions,
  ) {
    assert(Number.isFinite(opts.leaseMs) && opts.leaseMs > 0, `leaseMs ${opts.leaseMs} > 0`);
    this.leaseMs = opts.leaseMs;
    this.bugs = opts.bugs ?? {};
    // A (re)started brick does not know whether a holder's lease is still running: it waits one
    // lease before granting to anyone (DESIGN §4 "Brick volatile state").
    this.leaseV = { epoch: log.promisedEpoch, holder: undefined, deadlineMs: opts.nowMs + opts.leaseMs };
    this.logChangedMs = opts.nowMs;
  }

  get lease(): Lease | undefined {
    return this.leaseV;
  }

  /** The lease record has lapsed (the local master may stand for election, DESIGN §4.2). */
  leaseLapsed(nowMs: number): boolean {
    return this.leaseV === undefined || nowMs >= this.leaseV.deadlineMs;
  }

  /** Pre-vote (Raft §9.6): would lock(a) be granted now? Changes nothing. */
  probe(a: ProbeArgs, nowMs: number): ProbeResult {
    return { wouldGrant: this.refusal(a.epoch, a.candidate, nowMs) === undefined, promisedEpoch: this.log.promisedEpoch, last: this.log.last };
  }

  /** Grant iff e > promisedEpoch and the lease has lapsed or is (promisedEpoch, candidate). */
  lock(a: LockArgs, nowMs: number): Decision<LockResult> {
    const s = this.log;
    const why = this.refusal(a.epoch, a.candidate, nowMs);
    if (why !== undefined) return { reply: { granted: false, promisedEpoch: s.promisedEpoch, reason: why } };
    // Any rise of promisedEpoch clears the lease first; a grant creates none.
    this.leaseV = undefined;
    this.grants++;
    return {
      write: { promise: { epoch: a.epoch, grantee: a.candidate } },
      // The promise changes none of these: they read the same after the write.
      reply: {
        granted: true,
        brickId: s.brickId,
        last: s.last,
        commitRev: s.commitRev,
        compactRev: s.compactRev,
        config: s.config,
        lastSclock: s.lastSclock(),
        quietMs: Math.max(0, nowMs - this.logChangedMs),
        leaseMs: this.leaseMs,
      },
    };
  }

  /** Why lock(epoch, candidate) would be refused now, or undefined if it would be granted. */
  private refusal(epoch: Epoch, candidate: string, nowMs: number): Refusal | undefined {
    if (epoch <= this.log.promisedEpoch) return 'epoch';
    const l = this.leaseV;
    const lapsed = l === undefined || nowMs >= l.deadlineMs;
    const renewal = l !== undefined && l.epoch === this.log.promisedEpoch && l.holder === candidate;
    // Bug: ignore a live lease of another holder (lets a candidate depose a healthy holder).
    if (!lapsed && !renewal && !this.bugs.grantDuringLease) return 'lease';
    return undefined;
  }

  /** Log shipping and heartbeats (DESIGN §4.5). */
  append(m: AppendArgs, nowMs: number): Decision<AppendResult> {
    const s = this.log;
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i] as Entry;
      assert(e.rev === m.prevRev + 1 + i, `append entries are contiguous after prevRev ${m.prevRev}: entry ${i} has rev ${e.rev}`);
      assert(e.epoch <= m.epoch, `append of epoch ${m.epoch} carries entry (${e.epoch}, ${e.rev}) of a later epoch`);
    }
    const from = this.fromHolder(m.epoch, m.sender, nowMs);
    if (from.fenced) return { reply: { ok: false, reason: 'fenced', promisedEpoch: s.promisedEpoch } };
    const promise = from.promise;
    if (!this.holdsPrev(m.prevEpoch, m.prevRev)) {
      this.mismatchedAppends++;
      const reply = this.mismatch(m.prevRev);
      return promise ? { write: { promise }, reply } : { reply };
    }
    let truncateFrom: Rev | undefined;
    const fresh: Entry[] = [];
    for (const e of m.entries) {
      if (fresh.length === 0 && e.rev <= s.last.rev) {
        const mine = s.epochAt(e.rev);
        if (mine === e.epoch) continue; // same rev, same epoch: already held
        if (mine === undefined && e.rev < s.firstRev) continue; // trimmed: committed, in the state already
        // Same rev, other epoch: drop it and everything after it (never committed).
        assert(e.rev > s.commitRev, `a conflicting entry at ${e.rev} (held epoch ${mine}, sent ${e.epoch}) is above commitRev ${s.commitRev}`);
        truncateFrom = e.rev;
      }
      fresh.push(e);
    }
    // A brick never deletes entries because a message ends before them: a delayed append or
    // heartbeat may arrive after later ones. The covered prefix matches the sender's log.
    const covered = asRev(m.prevRev + m.entries.length);
    if (this.bugs.truncateOnShortAppend && truncateFrom === undefined && covered < s.last.rev && covered + 1 > s.commitRev) {
      // Bug: a short (stale) append, heartbeats included, cuts the log after its last entry.
      truncateFrom = asRev(covered + 1);
    }
    const commit = asRev(Math.min(m.commitRev, covered));
    const w: { promise?: NonNullable<BrickWrite['promise']>; truncateFrom?: Rev; append?: Entry[]; commitRev?: Rev } = {};
    if (promise) w.promise = promise;
    if (truncateFrom !== undefined) w.truncateFrom = truncateFrom;
    if (fresh.length > 0) w.append = fresh;
    if (commit > s.commitRev) w.commitRev = commit;
    if (w.append || w.truncateFrom !== undefined) this.logChangedMs = nowMs;
    const commitAfter = w.commitRev ?? s.commitRev;
    const lastAfter = w.append || w.truncateFrom !== undefined ? covered : s.last.rev;
    assert(commitAfter >= s.commitRev, `commitRev never decreases: ${commitAfter} < ${s.commitRev}`);
    assert(commitAfter <= lastAfter && covered <= lastAfter, `commitRev ${commitAfter} and the covered rev ${covered} lie within the log (last ${lastAfter})`);
    const reply: AppendResult = { ok: true, lastRev: covered, commitRev: commitAfter };
    return Object.keys(w).length > 0 ? { write: w, reply } : { reply };
  }

  /**
   * One chunk of a snapshot heal (DESIGN §4.8), fenced like an append: an older epoch is refused;
   * a higher one is adopted durably; at the promised epoch the chunk sets the lease record, so a
   * long transfer keeps other candidates off as heartbeats do. `wanted`: s is above this brick's
   * commitRev — a snapshot at or below it is ignored (the brick holds that state already).
   */
  snapshotChunk(a: SnapshotChunkArgs, nowMs: number): Decision<SnapshotChunkReply> {
    const s = this.log;
    const from = this.fromHolder(a.epoch, a.sender, nowMs);
    if (from.fenced) return { reply: { ok: false, reason: 'fenced', promisedEpoch: s.promisedEpoch } };
    const promise = from.promise;
    const reply: SnapshotChunkReply = { ok: true, wanted: a.rev > s.commitRev };
    return promise ? { write: { promise }, reply } : { reply };
  }

  /**
   * The answer once a snapshot stream ended: installed durably by the caller (if it was wanted),
   * or ignored. Either way the brick holds the committed state at s = a.rev.
   */
  snapshotDone(a: SnapshotChunkArgs, installed: boolean, nowMs: number): SnapshotResult {
    const s = this.log;
    if (installed) {
      this.snapshotsInstalled++;
      this.logChangedMs = nowMs;
    }
    assert(s.commitRev >= a.rev, `after a snapshot at ${a.rev} (installed or ignored) the brick's commitRev ${s.commitRev} is at or above it`);
    return { ok: true, lastRev: a.rev, commitRev: s.commitRev };
  }

  /**
   * The fence every holder message passes, appends and snapshot chunks alike (DESIGN §4.5, §4.8):
   * an epoch below promisedEpoch is refused; a higher one is adopted (durably, by the caller's
   * write of `promise`), and any rise of promisedEpoch clears the lease first; every message at
   * the promised epoch, even one refused later for a prev mismatch, renews the lease record.
   */
  private fromHolder(epoch: Epoch, sender: string, nowMs: number): { readonly fenced: true } | { readonly fenced: false; readonly promise: BrickWrite['promise'] } {
    const s = this.log;
    // Bug: a stale holder's message (and the commitRev it carries) is taken as if current.
    const stale = epoch < s.promisedEpoch;
    if (stale && !this.bugs.skipEpochFence) {
      this.fencedAppends++;
      return { fenced: true };
    }
    let promise: BrickWrite['promise'];
    if (epoch > s.promisedEpoch) {
      this.leaseV = undefined;
      promise = { epoch, grantee: sender };
    }
    if (!stale) this.leaseV = { epoch, holder: sender, deadlineMs: nowMs + this.leaseMs };
    return { fenced: false, promise };
  }

  /** Log matching: the brick holds (prevEpoch, prevRev), or prevRev is committed here already. */
  private holdsPrev(prevEpoch: Epoch, prevRev: Rev): boolean {
    const s = this.log;
    if (prevRev > s.last.rev) return false;
    const e = s.epochAt(prevRev);
    if (e !== undefined) return e === prevEpoch;
    return prevRev <= s.commitRev; // trimmed from the log: committed, so identical everywhere
  }

  /** Refusal with a hint: the epoch at prevRev, the first rev held of that epoch, lastRev. */
  private mismatch(prevRev: Rev): AppendResult {
    const s = this.log;
    const hintEpoch = prevRev <= s.last.rev ? s.epochAt(prevRev) : undefined;
    let first: Rev | undefined;
    if (hintEpoch !== undefined) {
      let r = prevRev;
      while (r - 1 >= s.firstRev && s.epochAt(asRev(r - 1)) === hintEpoch) r = asRev(r - 1);
      first = r;
    }
    return { ok: false, reason: 'mismatch', hintEpoch, hintFirstRev: first, lastRev: s.last.rev };
  }

  /**
   * The heal on lock reads this brick's log (DESIGN §4.3). Only the candidate this brick granted
   * at promisedEpoch fetches, so any other epoch is fenced. Changes nothing, sets no lease.
   */
  fetch(a: FetchArgs): FetchResult {
    const s = this.log;
    // Bug: serve a stale candidate too (an older epoch only; a higher one is still refused).
    const fenceSkipped = this.bugs.skipEpochFence === true && a.epoch < s.promisedEpoch;
    if (a.epoch !== s.promisedEpoch && !fenceSkipped) {
      this.fencedFetches++;
      return { ok: false, reason: 'fenced', promisedEpoch: s.promisedEpoch };
    }
    assert(Number.isInteger(a.from) && a.from >= 1, `fetch from rev ${a.from} ≥ 1`);
    assert(Number.isInteger(a.maxEntries) && a.maxEntries >= 0, `fetch maxEntries ${a.maxEntries} ≥ 0`);
    if (a.from < s.firstRev) return { ok: false, reason: 'compacted', firstRev: s.firstRev };
    const prev = asRev(a.from - 1);
    const prevEpoch = prev === 0 ? EPOCH_ZERO : s.epochAt(prev);
    const entries: Entry[] = [];
    const to = Math.min(s.last.rev, a.from + a.maxEntries - 1);
    // A byte budget as well as a count, so one answer always fits in a wire message.
    let bytes = 0;
    for (let r = a.from; r <= to && (entries.length === 0 || bytes < appendBytesMax); r++) {
      const e = s.entry(asRev(r));
      assert(e !== undefined && e.rev === r, `entry ${r} is held (log ${s.firstRev}..${s.last.rev})`);
      entries.push(e);
      bytes += entryBytes(e);
    }
    return { ok: true, prevEpoch, entries, last: s.last, commitRev: s.commitRev };
  }

  /** Counters and lease for statedump. */
  dump(nowMs: number): Record<string, unknown> {
    return { promisedEpoch: this.log.promisedEpoch, grantee: this.log.grantee, ...this.stats(nowMs) };
  }

  /** The volatile part of dump(): readable without the brick's log (e.g. once its store closed). */
  stats(nowMs: number): Record<string, unknown> {
    const l = this.leaseV;
    return {
      lease: l ? { ...l, remainingMs: Math.max(0, l.deadlineMs - nowMs) } : null,
      leaseMs: this.leaseMs,
      grants: this.grants,
      fencedAppends: this.fencedAppends,
      fencedFetches: this.fencedFetches,
      mismatchedAppends: this.mismatchedAppends,
      snapshotsInstalled: this.snapshotsInstalled,
      quietMs: Math.max(0, nowMs - this.logChangedMs),
    };
  }
}

/**
 * The session clock of a brick's last entry (DESIGN §5). When that entry has none (it predates
 * sessions, or it lies below the retained log after a snapshot install) the latest
 * epoch-start's sclock in the committed state stands in: it is behind, never ahead, so no session
 * expires early.
 */
export function lastSclockOf(last: Entry | undefined, committed: StateView): number {
  if (last?.sclock !== undefined) return last.sclock;
  let latest = 0;
  for (const { record } of committed.scan({ start: EPOCHS_PREFIX, end: prefixEnd(EPOCHS_PREFIX) })) latest = Math.max(latest, decodeNumber(record.value));
  return latest;
}
