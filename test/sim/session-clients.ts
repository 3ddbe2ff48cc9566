// Session clients for the simulator (DESIGN §5): each opens a session (a 32-hex-digit nonce from
// the simulation's PRNG, ttl ≥ max(2 s, 4·leaseMs)), sends a keepalive every ttl/3 to the master
// it believes holds the lock (moving on after not-holder, no-quorum or a timeout, as the library
// does on a broken connection), puts one or two ephemeral keys with put(key, value, {session}),
// and at a random time dies (sends nothing more) or closes its session. Each has its own drifting
// clock, and follows the library's rule: it reports its session lost at sentAt(last acked
// keepalive) + ttl·(1−2ρ) on that clock and then sends nothing more on it. A few opens are
// delivered a second time much later (a delayed duplicate sessionOpen), which may make a session
// nobody uses. Everything is drawn from the simulation's PRNG, so a seed replays exactly.
//
// The key-value clients' own sessions (DESIGN §3, exactly-once: the clientId of their writes'
// origins) are session clients too (SessionClients.openFor): one per KV client at a time, with a
// ttl of 3–3.5 s, no puts, never closed; they keep the session alive until the run ends,
// and the same checks apply. When one is lost or told its session ended, its KV client opens
// another.
import type { SessionId } from '../../src/common/ids.js';
import type { Random } from '../../src/common/random.js';
import type { WriteOp } from '../../replication/ops.js';
import type { SessionChecks } from './session-checks.js';

/** Client ids from here on are session clients (the KV clients are numbered from 0). */
export const SESSION_CLIENT_BASE = 1_000;

/** A KV client's own session, as its client sees it (SessionClients.openFor). */
export interface ClientSession {
  /** The session id, while the session is live and not reported lost (undefined otherwise). */
  usable(): SessionId | undefined;
  /** A write on it was answered `session-expired`: the session has ended, the library reports it lost. */
  ended(code: string): void;
}

/** What a session client needs of the simulation. */
export interface SessionHost {
  readonly rnd: Random;
  readonly masters: number;
  readonly leaseMs: number;
  readonly driftRho: number;
  now(): number;
  after(ms: number, run: () => void): void;
  /** Sends a write to master `node`; its answer comes back through SessionClients.onReply. */
  send(client: number, node: number, opId: number, w: WriteOp, extraMs?: number): void;
  /** Whether trace lines are kept (so none is built otherwise). */
  readonly tracing: boolean;
  trace(line: string): void;
}

export type SessionReply = { readonly ok: true; readonly session?: number | undefined } | { readonly ok: false; readonly code: string };

export interface SessionClientOptions {
  /** Session clients running at once (each slot starts a new one when its client stops). */
  readonly slots?: number;
  /** No new session client starts after this simulated time. */
  readonly startUntilMs: number;
  /**
   * Every client has stopped by then, and no duplicate open arrives later: the sessions end
   * before the run does, so the volume settles (the end-of-run checks need every brick at one
   * commitRev) and each session's bound can elapse.
   */
  readonly stopByMs: number;
  /** Chance that a client closes its session instead of dying. */
  readonly closeRate?: number;
  /** Chance that a client's first open is delivered a second time, much later. */
  readonly dupOpenRate?: number;
}

type Kind = 'open' | 'keepalive' | 'put' | 'close';

interface KvSessionOptions {
  readonly onOpened: (sid: SessionId) => void;
  /**
   * The pause before a failed request is sent again: from half to all of min(retryPauseMs·2^k,
   * retryPauseMaxMs) after k + 1 failures in a row (the library's reconnect backoff), instead of
   * 1–10 ms.
   */
  readonly retryPauseMs: number;
  readonly retryPauseMaxMs: number;
  /** After a timeout, send to one of the other masters (as the library moves on from a broken connection). */
  readonly leaveOnTimeout: boolean;
}

interface Pending {
  readonly opId: number;
  readonly kind: Kind;
  /** The client's clock when it sent the request. */
  readonly sentLocal: number;
  readonly sentMs: number;
}

const EPHEMERAL_KEYS = ['/e/0', '/e/1', '/e/2', '/e/3'];

class SessionClient implements ClientSession {
  state: 'opening' | 'live' | 'closing' | 'stopped' = 'opening';
  sid: SessionId | undefined;
  private target: number;
  private opSeq = 0;
  private pending: Pending | undefined;
  private lastAckLocal = Number.NEGATIVE_INFINITY;
  private nextKeepaliveMs = 0;
  private nextPutMs = 0;
  private putsLeft: number;
  private putTries = 0;
  private valueSeq = 0;
  private dupSent = false;
  /** Requests failed in a row (KV sessions back off). */
  private failures = 0;
  private readonly timeoutMs: number;

  constructor(
    readonly id: number,
    private readonly h: SessionHost,
    private readonly checks: SessionChecks,
    readonly nonce: string,
    readonly ttlMs: number,
    /** This client's clock: local = offset + rate · simulated time. */
    private readonly rate: number,
    private readonly offset: number,
    private readonly dieAtMs: number,
    private readonly closes: boolean,
    puts: number,
    private readonly dupOpen: boolean,
    private readonly stopByMs: number,
    private readonly onStop: () => void,
    /** A KV client's own session (openFor): told its id once open, and how it retries. */
    private readonly kv?: KvSessionOptions,
  ) {
    this.target = Math.floor(h.rnd() * h.masters);
    this.putsLeft = puts;
    // A request unanswered this long is given up (as on a broken connection) and sent elsewhere.
    this.timeoutMs = Math.max(2 * h.leaseMs, ttlMs / 4);
    checks.client(id, nonce);
  }

  private local(simMs: number): number {
    return this.offset + this.rate * simMs;
  }
  private sim(localMs: number): number {
    return (localMs - this.offset) / this.rate;
  }
  /** When the client reports its session lost: sentAt(last acked keepalive) + ttl·(1−2ρ), in simulated time. */
  private lostAtMs(): number {
    return this.sim(this.lastAckLocal + this.ttlMs * (1 - 2 * this.h.driftRho));
  }

  start(): void {
    if (this.h.tracing) this.h.trace(`session client ${this.id} starts (ttl ${this.ttlMs}, ${this.closes ? 'closes' : 'dies'} at ${this.dieAtMs.toFixed(1)})`);
    if (Number.isFinite(this.dieAtMs)) this.h.after(Math.max(0, this.dieAtMs - this.h.now()), () => this.end());
    this.step();
  }

  private stop(how: string): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.pending = undefined;
    this.checks.stopped(this.nonce, this.h.now(), how);
    if (this.h.tracing) this.h.trace(`session client ${this.id} (session ${this.sid ?? '-'}) ${how}`);
    this.onStop();
  }

  /** The end of the client's life: it dies, or closes its session first. */
  private end(): void {
    if (this.state === 'stopped') return;
    if (!this.closes || this.state !== 'live') {
      this.stop('died');
      return;
    }
    this.state = 'closing';
    this.pending = undefined; // whatever was in flight is not waited for
    this.step();
  }

  usable(): SessionId | undefined {
    return this.checkLost() || this.state !== 'live' ? undefined : this.sid;
  }

  ended(code: string): void {
    this.stop(`was told ${code}`);
  }

  private checkLost(): boolean {
    if (this.state === 'stopped' || this.lastAckLocal === Number.NEGATIVE_INFINITY) return false;
    if (this.h.now() < this.lostAtMs()) return false;
    this.stop('reported its session lost');
    return true;
  }

  private step(): void {
    if (this.state === 'stopped' || this.pending !== undefined || this.checkLost()) return;
    const now = this.h.now();
    if (this.state === 'opening') return this.request('open', { type: 'session-open', args: { ttlMs: this.ttlMs, nonce: this.nonce, owner: `sc${this.id}` } });
    const sid = this.sid as SessionId;
    if (this.state === 'closing') {
      this.checks.closeSent(this.nonce, now);
      return this.request('close', { type: 'session-close', args: { id: sid } });
    }
    if (now >= this.nextKeepaliveMs) return this.request('keepalive', { type: 'keepalive', args: { id: sid } });
    if (this.putsLeft > 0 && now >= this.nextPutMs) {
      const key = EPHEMERAL_KEYS[Math.floor(this.h.rnd() * EPHEMERAL_KEYS.length)] as string;
      const value = new TextEncoder().encode(`s${this.id}v${++this.valueSeq}`);
      return this.request('put', { type: 'put', args: { key, value, session: sid } });
    }
    const next = this.putsLeft > 0 ? Math.min(this.nextKeepaliveMs, this.nextPutMs) : this.nextKeepaliveMs;
    this.h.after(Math.max(0.1, next - now), () => this.step());
  }

  private request(kind: Kind, w: WriteOp): void {
    const opId = ++this.opSeq;
    const now = this.h.now();
    this.pending = { opId, kind, sentLocal: this.local(now), sentMs: now };
    if (this.h.tracing) this.h.trace(`session client ${this.id} sends ${kind} #${opId} of session ${this.sid ?? '-'} to m${this.target}`);
    this.h.send(this.id, this.target, opId, w);
    if (kind === 'open' && this.dupOpen && !this.dupSent) {
      // A delayed duplicate sessionOpen: the same request delivered again, seconds later.
      this.dupSent = true;
      const delay = this.ttlMs * (0.5 + 4 * this.h.rnd());
      if (now + delay < this.stopByMs) this.h.send(this.id, this.target, -opId, w, delay);
    }
    this.h.after(this.timeoutMs, () => {
      if (this.pending?.opId !== opId) return;
      if (this.h.tracing) this.h.trace(`session client ${this.id} times out on ${kind} #${opId}`);
      this.failed(this.kv?.leaveOnTimeout === true);
    });
  }

  /**
   * Not answered, or refused (not-holder, no-quorum, indeterminate, …): try a master picked at
   * random (`leave`: one of the others) soon.
   */
  private failed(leave = false): void {
    this.pending = undefined;
    const n = this.h.masters;
    this.target = leave && n > 1 ? (this.target + 1 + Math.floor(this.h.rnd() * (n - 1))) % n : Math.floor(this.h.rnd() * n);
    const kv = this.kv;
    const pause = kv ? Math.min(kv.retryPauseMs * 2 ** this.failures++, kv.retryPauseMaxMs) * (0.5 + 0.5 * this.h.rnd()) : 1 + 9 * this.h.rnd();
    this.h.after(pause, () => this.step());
  }

  private accepted(p: Pending): void {
    this.lastAckLocal = Math.max(this.lastAckLocal, p.sentLocal);
    this.checks.ack(this.id, this.sid as number, p.sentMs, this.lostAtMs());
    this.h.after(Math.max(0, this.lostAtMs() - this.h.now()), () => this.checkLost());
  }

  onReply(opId: number, r: SessionReply): void {
    const p = this.pending;
    if (this.state === 'stopped' || p === undefined || p.opId !== opId) return; // late, duplicate, or given up
    if (this.checkLost()) return;
    this.pending = undefined;
    if (this.h.tracing) this.h.trace(`session client ${this.id} gets ${r.ok ? 'ok' : r.code} for ${p.kind} #${opId}`);
    if (r.ok) this.failures = 0;
    if (!r.ok) {
      if (r.code === 'session-expired' || r.code === 'session-not-found') {
        // The session has ended: the library reports it lost (a close that finds it gone has succeeded).
        this.stop(p.kind === 'close' ? 'closed' : `was told ${r.code}`);
        return;
      }
      if (p.kind === 'put' && ++this.putTries >= 4) {
        this.putsLeft--;
        this.putTries = 0;
      }
      this.failed();
      return;
    }
    switch (p.kind) {
      case 'open':
        if (this.state !== 'opening') return;
        this.sid = r.session as SessionId;
        this.checks.opened(this.nonce, this.sid);
        this.state = 'live';
        this.accepted(p);
        this.kv?.onOpened(this.sid);
        this.nextKeepaliveMs = p.sentMs + this.ttlMs / 3 / this.rate;
        this.nextPutMs = this.h.now() + 50 * this.h.rnd();
        break;
      case 'keepalive':
        this.accepted(p);
        this.nextKeepaliveMs = p.sentMs + this.ttlMs / 3 / this.rate;
        break;
      case 'put':
        this.putsLeft--;
        this.putTries = 0;
        this.nextPutMs = this.h.now() + this.ttlMs * this.h.rnd();
        break;
      case 'close':
        this.stop('closed');
        return;
    }
    this.step();
  }
}

/** The session clients of one run: a few slots, each running clients one after another. */
export class SessionClients {
  private readonly clients = new Map<number, SessionClient>();
  private nextId = SESSION_CLIENT_BASE;
  /** Of which KV clients' own sessions (openFor). */
  private forKv = 0;
  private readonly slots: number;
  private readonly closeRate: number;
  private readonly dupOpenRate: number;

  constructor(
    private readonly h: SessionHost,
    private readonly checks: SessionChecks,
    private readonly o: SessionClientOptions,
  ) {
    this.slots = o.slots ?? 3;
    this.closeRate = o.closeRate ?? 0.3;
    this.dupOpenRate = o.dupOpenRate ?? 0.15;
  }

  /** Session clients started in the slots (not counting the KV clients' sessions). */
  get started(): number {
    return this.nextId - SESSION_CLIENT_BASE - this.forKv;
  }

  /** Sessions opened for KV clients (openFor). */
  get kvSessions(): number {
    return this.forKv;
  }

  start(): void {
    for (let s = 0; s < this.slots; s++) this.h.after(1_000 * this.h.rnd(), () => this.spawn());
  }

  /**
   * A KV client's own session (its writes' clientId, DESIGN §3): opened now, with a ttl of a
   * few seconds so that it lives through failovers, kept alive until the run ends, never
   * closed. `onOpened` gets its id; `onStop` is called once the client stops using it (reported
   * lost, or told it ended), after which the KV client opens another.
   */
  openFor(kvClient: number, onOpened: (sid: SessionId) => void, onStop: () => void): ClientSession {
    const r = this.h.rnd;
    const id = this.nextId++;
    this.forKv++;
    let nonce = '';
    for (let i = 0; i < 4; i++) nonce += Math.floor(r() * 0x1_0000_0000).toString(16).padStart(8, '0');
    // Longer than the session clients' (so it outlives more of the faults), yet short enough that
    // a session lost in the faults expires (after up to 1.5·ttl) well before the run ends: the
    // end-of-run checks need a settled log, and a longer ttl makes its expiry land at the end.
    const ttl = Math.max(3_000, 10 * this.h.leaseMs) + Math.floor(500 * r());
    const rate = 1 + (2 * r() - 1) * this.h.driftRho;
    const offset = 1_000 * r();
    if (this.h.tracing) this.h.trace(`kv client ${kvClient} opens its session as session client ${id}`);
    const c = new SessionClient(id, this.h, this.checks, nonce, ttl, rate, offset, Number.POSITIVE_INFINITY, false, 0, false, this.o.stopByMs, () => {
      this.clients.delete(id);
      onStop();
    }, { onOpened, retryPauseMs: 10, retryPauseMaxMs: 200, leaveOnTimeout: true });
    this.clients.set(id, c);
    c.start();
    return c;
  }

  private spawn(): void {
    const now = this.h.now();
    if (now >= this.o.startUntilMs) return;
    const r = this.h.rnd;
    const id = this.nextId++;
    let nonce = '';
    for (let i = 0; i < 4; i++) nonce += Math.floor(r() * 0x1_0000_0000).toString(16).padStart(8, '0');
    const ttl = Math.max(2_000, 4 * this.h.leaseMs) + Math.floor(600 * r());
    const rate = 1 + (2 * r() - 1) * this.h.driftRho;
    const offset = 1_000 * r();
    const dieAt = Math.min(now + 500 + 7_500 * r(), this.o.stopByMs);
    const c = new SessionClient(id, this.h, this.checks, nonce, ttl, rate, offset, dieAt, r() < this.closeRate, r() < 0.5 ? 1 : 2, r() < this.dupOpenRate, this.o.stopByMs, () => {
      this.clients.delete(id);
      this.h.after(1_500 * r(), () => this.spawn());
    });
    this.clients.set(id, c);
    c.start();
  }

  onReply(client: number, opId: number, r: SessionReply): void {
    this.clients.get(client)?.onReply(opId, r);
  }
}
