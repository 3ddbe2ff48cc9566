// The simulator's session checks (DESIGN §4 "Required checks", §5), fed by the simulation as the
// run goes and finished at its end:
//
// - every ephemeral key has a live owner: the committed log is replayed entry by entry as it
//   commits, and after each entry every key with session ≠ 0 has its session record present (a
//   put naming an absent session, or an end that leaves one of its keys behind, is a violation);
// - no session ends while its client holds a keepalive ack sent less than ttl·(1−2ρ) ago: a
//   session ends with the committed entry that deletes its record, taken at the moment that entry
//   was first appended anywhere (its creation: never later than its commit); each ack the client
//   accepted protects the session until sentAt + ttl·(1−2ρ) on the client's clock, converted to
//   simulated time. Sessions their client closed are exempt (the client ended them);
// - every session whose client has stopped (died, reported it lost, closed it, or never knew it: a
//   delayed duplicate open's orphan) ends within 1.5·ttl + leaseMs + 2·maxDelay·failovers of the
//   last arrival of a keepalive (or open) for it at a holder. Time counts only while some holder's
//   lease holds — from "the first moment after that when some holder's lease holds", and likewise
//   across later gaps: while no holder holds a lease nothing can be committed, so no session can
//   end (a quorum lost for seconds would otherwise fail any implementation). For the same reason
//   it does not count while that holder's commits are stalled (the simulation samples this: a
//   lease can hold while a quorum voter is still being healed and nothing commits). failovers =
//   holder changes (a master becoming holder at a new epoch) between that arrival and the end. A
//   failover whose heal source restarted since its log last changed adds the quiet time before
//   that restart: the source's quietMs counts from its start (DESIGN §5), so no clock measured
//   that time and sclock lags real time by it — the session lives that much longer, by design.
//   If the run ends before the bound has elapsed, the check does not apply to that session.
//
// A violation throws SimViolation at once, so the seed's trace ends there.
import { RESERVED_PREFIX } from '../../src/common/keys.js';
import { decodeSession, SESSIONS_PREFIX, sessionIdOfKey } from '../../replication/sessions.js';
import type { Entry } from '../../store/types.js';
import { SimViolation } from './log-checks.js';

export interface SessionCheckOptions {
  readonly leaseMs: number;
  /** The longest one-way message delay of the simulated network. */
  readonly maxDelayMs: number;
}

interface Ack {
  readonly client: number;
  readonly sentMs: number;
  /** sentAt + ttl·(1−2ρ) on the client's clock, in simulated time. */
  readonly untilMs: number;
}

interface Life {
  readonly id: number;
  readonly nonce: string;
  readonly ttlMs: number;
  readonly createdMs: number;
  endRev?: number;
  /** When the entry that ended it was first appended anywhere. */
  endSeenMs?: number;
  /** When that entry was first known committed (by a holder or a brick). */
  endCommitMs?: number;
}

interface Client {
  readonly client: number;
  readonly nonce: string;
  /** The session id the client was answered (undefined: none yet). */
  sid?: number;
  stoppedMs?: number;
  how?: string;
  closeSentMs?: number;
}

const fmt = (ms: number): string => ms.toFixed(1);

export class SessionChecks {
  private readonly acks = new Map<number, Ack[]>();
  private readonly lives = new Map<number, Life>();
  private readonly byNonce = new Map<string, Client>();
  private readonly bySid = new Map<number, Client>();
  private readonly openArrival = new Map<string, number>();
  private readonly keepaliveArrival = new Map<number, number>();
  private readonly holderStarts: { at: number; unclocked: number }[] = [];
  /** Closed intervals [start, end] of simulated time during which some holder's lease held. */
  private readonly leaseOn: [number, number][] = [];
  private lastSample: { at: number; holds: boolean } | undefined;
  // The committed state, replayed: live sessions, ephemeral keys and their owners.
  private readonly liveSessions = new Set<number>();
  private readonly ephemeral = new Map<string, number>();
  private readonly ownedBy = new Map<number, Set<string>>();
  readonly counts = { sessions: 0, ended: 0, acks: 0, livenessChecked: 0, orphans: 0, died: 0, closed: 0, lost: 0, expired: 0, neverOpened: 0 };

  constructor(private readonly o: SessionCheckOptions) {}

  // ── what the clients and the network report ───────────────────────────────────────────────

  client(client: number, nonce: string): void {
    const c: Client = { client, nonce };
    this.byNonce.set(nonce, c);
  }

  /** The client was answered its session id. */
  opened(nonce: string, sid: number): void {
    const c = this.byNonce.get(nonce);
    if (!c) return;
    c.sid = sid;
    this.bySid.set(sid, c);
  }

  /** An open (by nonce) or a keepalive (by id) arrived at a master that holds the lock. */
  openArrived(nonce: string, atMs: number): void {
    this.openArrival.set(nonce, Math.max(atMs, this.openArrival.get(nonce) ?? -Infinity));
  }
  keepaliveArrived(sid: number, atMs: number): void {
    this.keepaliveArrival.set(sid, Math.max(atMs, this.keepaliveArrival.get(sid) ?? -Infinity));
  }

  /** The client accepted an ack (of an open or a keepalive) of a request it sent at sentMs. */
  ack(client: number, sid: number, sentMs: number, untilMs: number): void {
    this.counts.acks++;
    const a: Ack = { client, sentMs, untilMs };
    const list = this.acks.get(sid) ?? [];
    list.push(a);
    this.acks.set(sid, list);
    const life = this.lives.get(sid);
    if (life?.endSeenMs !== undefined) this.checkAck(life, a);
  }

  closeSent(nonce: string, atMs: number): void {
    const c = this.byNonce.get(nonce);
    if (c && c.closeSentMs === undefined) c.closeSentMs = atMs;
  }

  /** The client sends nothing more on its session from now on. */
  stopped(nonce: string, atMs: number, how: string): void {
    const c = this.byNonce.get(nonce);
    if (c && c.stoppedMs === undefined) {
      c.stoppedMs = atMs;
      c.how = how;
      if (c.sid === undefined) this.counts.neverOpened++;
      else if (how === 'died') this.counts.died++;
      else if (how === 'closed') this.counts.closed++;
      else if (how.startsWith('reported')) this.counts.lost++;
      else this.counts.expired++;
    }
  }

  /**
   * A master became holder at a new epoch. unclockedMs: time its session clock could not count —
   * its heal source restarted since its log last changed, and the quiet time before that restart
   * was measured by no clock (quietMs counts from the restart, DESIGN §5).
   */
  holderStarted(atMs: number, unclockedMs = 0): void {
    this.holderStarts.push({ at: atMs, unclocked: unclockedMs });
  }

  /** Whether some holder could end a session at atMs (lease holds, commits not stalled; sampled every 10 ms, in time order). */
  leaseSample(atMs: number, holds: boolean): void {
    const prev = this.lastSample;
    this.lastSample = { at: atMs, holds };
    if (!holds) return;
    const start = prev?.holds === true ? prev.at : atMs;
    const last = this.leaseOn[this.leaseOn.length - 1];
    if (last && last[1] >= start) last[1] = atMs;
    else this.leaseOn.push([start, atMs]);
  }

  // ── the committed log ─────────────────────────────────────────────────────────────────────

  /** Entry `e` is committed (entries arrive in rev order); seenMs: when it was first appended anywhere. */
  committed(e: Entry, seenMs: number, nowMs: number): void {
    const ended: number[] = [];
    const touched: string[] = [];
    for (const fx of e.effects) {
      if (fx.t !== 'put' && fx.t !== 'del') continue;
      if (fx.key.startsWith(SESSIONS_PREFIX)) {
        const id = sessionIdOfKey(fx.key);
        if (fx.t === 'put') {
          if (!this.liveSessions.has(id)) {
            this.liveSessions.add(id);
            const rec = decodeSession(fx.value);
            if (!this.lives.has(id)) {
              this.lives.set(id, { id, nonce: rec.nonce, ttlMs: rec.ttlMs, createdMs: seenMs });
              this.counts.sessions++;
            }
          }
        } else {
          this.liveSessions.delete(id);
          ended.push(id);
        }
        continue;
      }
      if (fx.key.startsWith(RESERVED_PREFIX)) continue;
      const prev = this.ephemeral.get(fx.key);
      if (prev !== undefined) {
        this.ephemeral.delete(fx.key);
        this.ownedBy.get(prev)?.delete(fx.key);
      }
      if (fx.t === 'put' && fx.session !== 0) {
        this.ephemeral.set(fx.key, fx.session);
        const s = this.ownedBy.get(fx.session) ?? new Set<string>();
        s.add(fx.key);
        this.ownedBy.set(fx.session, s);
        touched.push(fx.key);
      }
    }
    for (const key of touched) {
      const owner = this.ephemeral.get(key);
      if (owner !== undefined && !this.liveSessions.has(owner)) {
        throw new SimViolation('ephemeral-owner', `committed entry (${e.epoch}, ${e.rev}) leaves ephemeral key ${key} owned by session ${owner}, which has no record`);
      }
    }
    for (const id of ended) {
      const left = this.ownedBy.get(id);
      if (left && left.size > 0) {
        throw new SimViolation('ephemeral-owner', `committed entry (${e.epoch}, ${e.rev}) ends session ${id} but leaves its keys ${[...left].join(', ')}`);
      }
      this.ownedBy.delete(id);
      const life = this.lives.get(id);
      if (!life) continue;
      life.endRev = e.rev;
      life.endSeenMs = seenMs;
      life.endCommitMs = nowMs;
      this.counts.ended++;
      for (const a of this.acks.get(id) ?? []) this.checkAck(life, a);
    }
  }

  /** No session ends while its client holds an ack sent less than ttl·(1−2ρ) ago. */
  private checkAck(life: Life, a: Ack): void {
    const end = life.endSeenMs as number;
    if (a.untilMs <= end) return;
    const c = this.bySid.get(life.id) ?? this.byNonce.get(life.nonce);
    if (c?.closeSentMs !== undefined && c.closeSentMs <= end) return; // its client closed it
    throw new SimViolation(
      'session-early-end',
      `session ${life.id} (ttl ${life.ttlMs}) ended at rev ${life.endRev} (entry appended at ${fmt(end)}) while client ${a.client} holds a keepalive ack sent at ${fmt(a.sentMs)}, good until ${fmt(a.untilMs)}`,
    );
  }

  // ── at the end of the run ──────────────────────────────────────────────────────────────────

  /** Simulated time in [a, b] during which some holder's lease held. */
  leaseTime(a: number, b: number): number {
    let t = 0;
    for (const [s, e] of this.leaseOn) {
      if (e <= a) continue;
      if (s >= b) break;
      t += Math.min(e, b) - Math.max(s, a);
    }
    return t;
  }

  /** Holder changes in [a, b], and the session-clock time their heal sources' restarts lost. */
  failoversIn(a: number, b: number): { count: number; unclocked: number } {
    let count = 0;
    let unclocked = 0;
    for (const h of this.holderStarts) {
      if (h.at < a || h.at > b) continue;
      count++;
      unclocked += h.unclocked;
    }
    return { count, unclocked };
  }

  /** Every session whose client has stopped ends within its bound (see the header). */
  finish(endMs: number): void {
    for (const life of this.lives.values()) {
      const c = this.byNonce.get(life.nonce);
      // A session its client never learned of (a late duplicate open's) is abandoned from the start.
      const orphan = c === undefined || (c.sid !== undefined && c.sid !== life.id);
      const stopped = orphan ? life.createdMs : c.stoppedMs;
      if (stopped === undefined) continue;
      if (orphan) this.counts.orphans++;
      const arrived = Math.max(this.openArrival.get(life.nonce) ?? -Infinity, this.keepaliveArrival.get(life.id) ?? -Infinity);
      const ref = Number.isFinite(arrived) ? arrived : life.createdMs;
      const until = life.endCommitMs ?? endMs;
      const { count: k, unclocked } = this.failoversIn(ref, until);
      const bound = 1.5 * life.ttlMs + this.o.leaseMs + 2 * this.o.maxDelayMs * k + unclocked;
      const spent = this.leaseTime(ref, until);
      if (spent <= bound) {
        if (life.endCommitMs !== undefined) this.counts.livenessChecked++;
        continue;
      }
      const what = life.endCommitMs === undefined ? `is still open at the end of the run (${fmt(endMs)})` : `ended only at ${fmt(life.endCommitMs)} (rev ${life.endRev})`;
      throw new SimViolation(
        'session-outlived',
        `session ${life.id} (ttl ${life.ttlMs}${orphan ? ', an orphan of a duplicate open' : `, client ${c?.client} ${c?.how ?? 'stopped'} at ${fmt(stopped)}`}) ${what}: its last keepalive reached a holder at ${fmt(ref)}, ` +
          `and ${fmt(spent)} ms of lease time passed since, over the bound ${fmt(bound)} ms (1.5·ttl + leaseMs + 2·maxDelay·${k} failovers${unclocked > 0 ? ` + ${fmt(unclocked)} ms its heal sources' restarts kept off the session clock` : ''})`,
      );
    }
  }
}
