// A client's session (DESIGN §5): opened once, kept alive by keepalives every ttl/3 — through
// reconnects, since a keepalive is safe to send again — and reported lost when the volume says it
// ended or when no keepalive has been acked for long enough that the holder may have expired it:
// at sentAt(last acked keepalive) + ttl·(1 − 2ρ), ρ bounding the drift between the two clocks.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { coordError, isCoordError, type CoordError } from '../common/errors.js';
import type { SessionId } from '../common/ids.js';
import type { FopCaller } from './volume.js';

/** Clock drift bound between this process and the holder (DESIGN §5's ρ). */
const DRIFT = 0.01;

export interface SessionOpts {
  /** Time to live without a keepalive: max(2 s, 4·leaseMs) to 1 h. */
  readonly ttlMs: number;
  /** Shown by `sessions()`; default host:pid. */
  readonly owner?: string;
}

export interface Session {
  readonly id: SessionId;
  readonly ttlMs: number;
  /** Resolves (never rejects) with the reason once the session is lost: expired, closed, or unreachable too long. */
  readonly lost: Promise<CoordError>;
  readonly isLost: boolean;
  /** Closes the session: its ephemeral keys go at once. Closing a lost session does nothing. */
  close(): Promise<void>;
}

/** `client`: the library's own session for exactly-once writes (origins.ts), listed as such. */
export async function openSession(caller: FopCaller, timeoutMs: number, o: SessionOpts, client = false): Promise<Session> {
  const nonce = randomBytes(16).toString('hex');
  const sentAt = performance.now();
  const r = await caller('sessionOpen', { deadlineMs: sentAt + timeoutMs }, { ttlMs: o.ttlMs, nonce, owner: o.owner ?? `${hostname()}:${process.pid}`, ...(client ? { client } : {}) });
  return new ClientSession(caller, timeoutMs, r.id, r.ttlMs, sentAt);
}

class ClientSession implements Session {
  readonly lost: Promise<CoordError>;
  private markLost!: (e: CoordError) => void;
  private lostV = false;
  private closing = false;
  private timer: NodeJS.Timeout | undefined;
  /** When the last acked keepalive (or the open) was sent. */
  private ackedSentAt: number;
  private inFlight = false;

  constructor(
    private readonly caller: FopCaller,
    private readonly timeoutMs: number,
    readonly id: SessionId,
    readonly ttlMs: number,
    openedAt: number,
  ) {
    this.ackedSentAt = openedAt;
    this.lost = new Promise((resolve) => (this.markLost = resolve));
    this.schedule(ttlMs / 3);
  }

  get isLost(): boolean {
    return this.lostV;
  }

  private get lostAt(): number {
    return this.ackedSentAt + this.ttlMs * (1 - 2 * DRIFT);
  }

  private schedule(ms: number): void {
    if (this.lostV || this.closing) return;
    this.timer = setTimeout(() => void this.keepalive(), Math.max(1, ms));
    this.timer.unref();
  }

  private async keepalive(): Promise<void> {
    if (this.inFlight || this.lostV || this.closing) return;
    const now = performance.now();
    if (now >= this.lostAt) return this.lose(coordError('session-expired', `session ${this.id}: no keepalive acknowledged for ${Math.round(now - this.ackedSentAt)} ms (ttl ${this.ttlMs} ms)`, { session: this.id }));
    this.inFlight = true;
    const sentAt = now;
    try {
      // The call may wait out a reconnect, but never past the moment the session counts as lost.
      await this.caller('keepalive', { deadlineMs: Math.min(sentAt + this.timeoutMs, this.lostAt) }, { id: this.id });
      this.ackedSentAt = Math.max(this.ackedSentAt, sentAt);
      this.schedule(this.ttlMs / 3);
    } catch (e) {
      if (isCoordError(e) && e.code === 'session-expired') return this.lose(e);
      // Unreachable for now: try again soon, until lostAt.
      const next = Math.min(this.ttlMs / 10, Math.max(0, this.lostAt - performance.now()));
      this.schedule(next);
    } finally {
      this.inFlight = false;
    }
  }

  private lose(e: CoordError): void {
    if (this.lostV) return;
    this.lostV = true;
    clearTimeout(this.timer);
    this.markLost(e);
  }

  /**
   * Stops the keepalives and closes the session. If the close itself fails (the volume is
   * unreachable), the error is thrown and the session ends by expiring after its ttl.
   */
  async close(): Promise<void> {
    if (this.closing || this.lostV) return;
    this.closing = true;
    clearTimeout(this.timer);
    let why = coordError('session-expired', `session ${this.id} was closed`, { session: this.id });
    try {
      await this.caller('sessionClose', { deadlineMs: performance.now() + this.timeoutMs }, { id: this.id });
    } catch (e) {
      // A retried close that finds the session gone has succeeded (DESIGN §3).
      if (!(isCoordError(e) && e.code === 'session-expired')) {
        why = coordError('session-expired', `session ${this.id}: keepalives stopped and the close failed (${e instanceof Error ? e.message : String(e)}); it expires after its ttl`, { session: this.id });
        throw e;
      }
    } finally {
      this.lostV = true;
      this.markLost(why);
    }
  }
}
