// Exactly-once writes from the client library (DESIGN §3). Every write a remote client sends
// carries an origin (clientId, seq, ackedSeq): clientId is a session the library opens for the
// client itself at its first write (and again if that session is lost), seq counts the client's
// writes from 1, ackedSeq is the highest seq such that every seq up to it has settled (answered,
// or failed for good, so the library will never send it again). protocol/client resends a
// write with its origin after a broken connection; the holder answers a copy it already applied
// from its stored result (`duplicate: true`).
//
// One session per client where it can: a session the caller opens before the client's first write
// (for its ephemeral keys, a lock, an election) becomes the clientId too, so a daemon that keeps
// one session alive does not keep a second one for its writes. If the caller closes it or it is
// lost, the next write opens a session of the library's own.
//
// The library keeps seq − ackedSeq within the volume's window (dedupeWindowMax): a write beyond it
// waits for earlier ones to settle instead of being refused `too-many-in-flight`.
import { hostname } from 'node:os';
import { ORIGIN_FOPS, type FopArgs, type FopContext, type FopName, type FopResult, type Origin } from '../../translators/fops.js';
import { isCoordError } from '../common/errors.js';
import type { SessionId } from '../common/ids.js';
import { clientSessionTtlMsDefault, dedupeWindowMax } from '../common/limits.js';
import { openSession, type Session } from './session.js';
import type { FopCaller } from './volume.js';

/** How long closing a client waits for its session's close. */
const CLOSE_WAIT_MS = 1_000;

export interface OriginsOptions {
  /** ttl of the client's own session: how long its stored results outlive a client that died. */
  readonly sessionTtlMs?: number;
  readonly timeoutMs: number;
  /** The window (default dedupeWindowMax; tests make it small). */
  readonly window?: number;
}

export class Origins {
  private session: Promise<Session> | undefined;
  private nextSeq = 1;
  private ackedSeq = 0;
  /** Settled seqs above ackedSeq (settled out of order). */
  private readonly settled = new Set<number>();
  /** Writes waiting for room in the window. */
  private readonly room: (() => void)[] = [];
  private closed = false;
  /** The client session is the library's own (closed with the client), not one the caller opened. */
  private own = false;
  /** Client sessions known to have ended (ids are never reused). */
  private readonly dead = new Set<SessionId>();

  constructor(
    private readonly raw: FopCaller,
    private readonly o: OriginsOptions,
  ) {}

  /** The caller that writes with origins; every other fop goes through unchanged. */
  readonly caller: FopCaller = <F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> => {
    if (!ORIGIN_FOPS.has(fop) || this.closed) return this.raw(fop, ctx, args);
    return this.write(fop, ctx, args, true);
  };

  private async write<F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>, mayRenew: boolean): Promise<FopResult<F>> {
    const id = await this.clientId(ctx);
    while (this.nextSeq - this.ackedSeq > (this.o.window ?? dedupeWindowMax)) await new Promise<void>((r) => this.room.push(r));
    const seq = this.nextSeq++;
    const origin: Origin = { clientId: id, seq, ackedSeq: this.ackedSeq };
    try {
      return await this.raw(fop, { ...ctx, origin }, args);
    } catch (e) {
      // The client's session ended before this write was applied (a first copy refused: a copy
      // that may have been applied comes back `indeterminate` from protocol/client instead): open
      // a new session and send it once more.
      if (mayRenew && isCoordError(e) && e.code === 'session-expired' && e.details['clientId'] === id) {
        this.lost(id);
        return this.write(fop, ctx, args, false);
      }
      throw e;
    } finally {
      this.settle(seq);
    }
  }

  private settle(seq: number): void {
    this.settled.add(seq);
    while (this.settled.delete(this.ackedSeq + 1)) this.ackedSeq++;
    for (const r of this.room.splice(0)) r();
  }

  /** The client session's id, opened at the first write (concurrent writes share the open). */
  private async clientId(ctx: FopContext): Promise<SessionId> {
    for (;;) {
      const opening = (this.session ??= this.open(ctx));
      let s: Session;
      try {
        s = await opening;
      } catch (e) {
        if (this.session === opening) this.session = undefined;
        throw e;
      }
      if (!s.isLost && !this.dead.has(s.id)) return s.id;
      if (this.session === opening) this.session = undefined;
    }
  }

  /** A session the caller opened: the clientId too, if the client has none yet (see the header). */
  adopt(s: Session): void {
    if (this.session !== undefined || this.closed || s.isLost) return;
    this.session = Promise.resolve(s);
    this.own = false;
    void s.lost.then(() => this.lost(s.id));
  }

  private open(ctx: FopContext): Promise<Session> {
    this.own = true;
    const timeoutMs = Math.max(1, (ctx.deadlineMs ?? performance.now() + this.o.timeoutMs) - performance.now());
    const opening = openSession(this.raw, timeoutMs, { ttlMs: this.o.sessionTtlMs ?? clientSessionTtlMsDefault, owner: `${hostname()}:${process.pid}` }, true);
    opening.then((s) => void s.lost.then(() => this.lost(s.id)), () => undefined);
    return opening;
  }

  /** The session `id` is gone: the next write opens another. */
  private lost(id: SessionId): void {
    this.dead.add(id);
  }

  /**
   * Closes the client's session (its stored results go with it); later writes carry no origin.
   * Waits at most CLOSE_WAIT_MS: with no server to hear it, the session expires after its ttl.
   */
  async close(): Promise<void> {
    this.closed = true;
    const closing = (async () => {
      const s = this.own ? await this.session?.catch(() => undefined) : undefined;
      await s?.close().catch(() => undefined);
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closing, new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }
}
