// The holder's session table (DESIGN §5): for every session in the working state, whether it is
// active or idle there, and, for active ones, the deadline the holder keeps in memory
// (receipt of the last keepalive + ttl). Deadlines are never in the log: keepalives of active
// sessions cost no entry. The table mirrors the working state because every change to a session
// record comes from this holder's own evaluations (evaluated()), and it is loaded from the state
// when the holder starts (load()).
import { assert } from '../src/common/assert.js';
import type { SessionId } from '../src/common/ids.js';
import type { SessionInfo, SessionMark, WriteOp, WriteResult } from './ops.js';
import { countOwned, decodeSession, scanSessions, sessionKey } from './sessions.js';
import type { StateView } from './state-view.js';

interface Live {
  readonly ttlMs: number;
  mode: 'active' | 'idle';
  /** Idle: the sclock at which it expires. */
  idleUntil: number;
  /** Active: holder-monotonic ms at which it expires. */
  deadline: number;
  /** Holder-monotonic receipt of the last keepalive (or the open). */
  lastSeen: number;
  /** An expiry is queued: judge it no more. */
  ending: boolean;
  /** A mark (idle) is queued and not yet evaluated. */
  marking: boolean;
}

/** Broken variants (test/sim proves each is caught; HolderBugs passes them on). Never set in production. */
export interface SessionTableBugs {
  /** load(): every session in the log is due at once. */
  readonly expireSessionsAtFailover?: boolean;
  /** load(): every session, idle ones included, gets idleUntil := sclock + ttl. */
  readonly fullTtlAtFailover?: boolean;
}

export class SessionTable {
  private readonly live = new Map<SessionId, Live>();

  constructor(private readonly bugs: SessionTableBugs = {}) {}

  get size(): number {
    return this.live.size;
  }

  /** At the epoch start (sclock: its session clock) every session in the log is idle (its epochs record says so). */
  load(view: StateView, sclock: number): void {
    this.live.clear();
    for (const { id, rec } of scanSessions(view)) {
      assert(rec.mode === 'idle', `session ${id} is idle after the epoch-start entry`);
      let idleUntil = rec.idleUntil ?? 0;
      if (this.bugs.expireSessionsAtFailover === true) idleUntil = Number.NEGATIVE_INFINITY;
      else if (this.bugs.fullTtlAtFailover === true) idleUntil = sclock + rec.ttlMs;
      this.live.set(id, { ttlMs: rec.ttlMs, mode: 'idle', idleUntil, deadline: 0, lastSeen: 0, ending: false, marking: false });
    }
  }

  /** Keeps the table in step with what the holder just evaluated (successful ops only). */
  evaluated(op: WriteOp, result: WriteResult, at: number): void {
    switch (op.type) {
      case 'session-open': {
        assert(result.type === 'session-open', 'an open answers an open');
        const { id, ttlMs } = result.result;
        const s = this.live.get(id);
        if (s) this.touch(s, at); // a retried open is a keepalive of the session it made
        else this.live.set(id, { ttlMs, mode: 'active', idleUntil: 0, deadline: at + ttlMs, lastSeen: at, ending: false, marking: false });
        return;
      }
      case 'keepalive': {
        const s = this.live.get(op.args.id);
        assert(s !== undefined, `keepalive of session ${op.args.id}, which the working state has, finds it in the table`);
        this.touch(s, at);
        return;
      }
      case 'session-close':
      case 'session-expire':
        this.live.delete(op.args.id);
        return;
      case 'session-mark':
        for (const m of op.args.marks) this.applyMark(m);
        return;
      default:
        return;
    }
  }

  /** A keepalive: a new deadline; an idle session becomes active (its keepalive's entry marks it). */
  private touch(s: Live, at: number): void {
    s.mode = 'active';
    s.deadline = at + s.ttlMs;
    s.lastSeen = at;
    s.idleUntil = 0;
  }

  private applyMark(m: SessionMark): void {
    const s = this.live.get(m.id);
    if (!s) return;
    s.marking = false;
    s.mode = m.mode;
    if (m.mode === 'idle') s.idleUntil = m.idleUntil ?? 0;
  }

  /**
   * Whether an expiry the timer queued still holds when it is evaluated: a keepalive received
   * before the deadline but evaluated after the tick has given the session a new deadline.
   */
  expiryStillDue(id: SessionId, nowMs: number, sclockNow: number): boolean {
    const s = this.live.get(id);
    if (!s) return true; // ended meanwhile: the expiry changes nothing
    const due = s.mode === 'active' ? nowMs >= s.deadline : sclockNow >= s.idleUntil;
    if (!due) s.ending = false;
    return due;
  }

  /**
   * The marks of a tick at `at` that still hold when they are evaluated: a keepalive evaluated
   * since then keeps its session active (its deadline is newer than the mark's idleUntil).
   */
  stillDue(marks: readonly SessionMark[], at: number): SessionMark[] {
    return marks.filter((m) => {
      const s = this.live.get(m.id);
      if (!s) return false;
      const keep = !s.ending && s.mode === 'active' && s.lastSeen <= at;
      if (!keep) s.marking = false;
      return keep;
    });
  }

  /**
   * What the timer must do now: sessions to expire (active past their deadline, idle with
   * sclock_now ≥ idleUntil) and idle marks for active sessions without a keepalive for ttl/2,
   * with idleUntil := sclock_now + (deadline − now).
   */
  due(nowMs: number, sclockNow: number): { expire: SessionId[]; marks: SessionMark[] } {
    const expire: SessionId[] = [];
    const marks: SessionMark[] = [];
    for (const [id, s] of this.live) {
      if (s.ending) continue;
      if (s.mode === 'active' ? nowMs >= s.deadline : sclockNow >= s.idleUntil) {
        s.ending = true;
        expire.push(id);
      } else if (s.mode === 'active' && !s.marking && nowMs - s.lastSeen >= s.ttlMs / 2) {
        s.marking = true;
        marks.push({ id, mode: 'idle', idleUntil: sclockNow + (s.deadline - nowMs) });
      }
    }
    return { expire, marks };
  }

  info(view: StateView, nowMs: number, sclockNow: number): SessionInfo[] {
    const out: SessionInfo[] = [];
    for (const [id, s] of this.live) {
      const rec = view.get(sessionKey(id));
      if (!rec) continue;
      const remainingMs = Math.max(0, Math.round(s.mode === 'active' ? s.deadline - nowMs : s.idleUntil - sclockNow));
      const r = decodeSession(rec.value);
      out.push({ id, ttlMs: s.ttlMs, remainingMs, owner: r.owner, keys: countOwned(view, id), state: s.mode, client: r.client === true });
    }
    return out.sort((a, b) => a.id - b.id);
  }
}
