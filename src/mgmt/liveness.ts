// A running daemon's liveness key (DESIGN §8): `/cluster/alive/<uuid>`, put under a session of
// the daemon's own, so it vanishes when the daemon stops keeping the session alive — at once on
// stop(), within about the ttl when the process dies (DESIGN §5). `peer status` reads Connected
// from it.
//
//   const keeper = keepAlive(vol, { uuid, address, pid: process.pid, startedAt }, { ttlMs: DEFAULT_LIVENESS_TTL_MS });
//   …
//   await keeper.stop(); // the key goes at once
//
// The key is kept for as long as the keeper runs: when its session is lost (expired, closed by
// someone else, or the volume unreachable for the ttl) it opens a new session and puts the key
// again, and when the key is deleted from outside while the session lives it puts it again;
// failures are retried with jittered backoff, forever, until stop().
import { hostname } from 'node:os';
import { coordError, isCoordError, type CoordError } from '../common/errors.js';
import type { Rev, SessionId } from '../common/ids.js';
import { sessionTtlMsMax } from '../common/limits.js';
import type { Random } from '../common/random.js';
import { keyDeleted } from '../client/recipes/queue.js';
import type { Session } from '../client/session.js';
import type { Volume } from '../client/volume.js';
import type { TxnOp } from '../../translators/fops.js';
import { aliveKey, aliveOf, aliveRecordProblem, peerKey, peerOf, peerRecordProblem, type AliveRecord, type PeerRecord } from './cluster-map.js';

/** A liveness session's ttl unless told otherwise: a dead daemon shows Disconnected within about this. */
export const DEFAULT_LIVENESS_TTL_MS = 10_000;
/** DESIGN §5's floor for any ttl; the volume also refuses one below 4·leaseMs. */
export const LIVENESS_TTL_MS_MIN = 2_000;

const RETRY_MS_MIN = 50;
const RETRY_MS_MAX = 2_000;

export type LivenessEvent =
  /** The alive key is in, owned by `session`; `peerCreated`: this put also wrote the selfRecord. */
  | { readonly kind: 'registered'; readonly session: SessionId; readonly rev: Rev; readonly peerCreated: boolean }
  /** The session ended (its key went with it); a new one is opened next. */
  | { readonly kind: 'lost'; readonly session: SessionId; readonly reason: CoordError }
  /**
   * The key was deleted while the session seemed alive — from outside, or by the session's end
   * before this client heard of it: it is put again next (a `lost` follows in the second case).
   */
  | { readonly kind: 'deleted'; readonly session: SessionId; readonly rev: Rev }
  /** A step failed; the keeper tries again after `delayMs`. */
  | { readonly kind: 'retry'; readonly attempt: number; readonly delayMs: number; readonly error: unknown };

export interface KeepAliveOptions {
  readonly ttlMs: number;
  /** A master's own peer record, written once, at the first registration, if no record exists. */
  readonly selfRecord?: PeerRecord;
  readonly onEvent?: (e: LivenessEvent) => void;
  /** The sessions' owner as `session ls` shows it (default: liveness, uuid, host and pid). */
  readonly owner?: string;
  /** For backoff jitter (default Math.random). */
  readonly random?: Random;
}

export interface LivenessKeeper {
  /** Stops the keeper and closes its session (the key goes at once); throws if the close failed. */
  stop(): Promise<void>;
  /** The keeper's current session (the owner of the key once it is registered), if any. */
  readonly sessionId: SessionId | undefined;
}

/** Starts keeping `/cluster/alive/<alive.uuid>` (throws `invalid-argument` for a bad record or ttl). */
export function keepAlive(volume: Volume, alive: AliveRecord, o: KeepAliveOptions): LivenessKeeper {
  const why = aliveRecordProblem(alive);
  if (why !== undefined) throw coordError('invalid-argument', `alive record: ${why}`);
  if (!Number.isSafeInteger(o.ttlMs) || o.ttlMs < LIVENESS_TTL_MS_MIN || o.ttlMs > sessionTtlMsMax) {
    throw coordError('invalid-argument', `liveness ttlMs must be a whole number of ms in [${LIVENESS_TTL_MS_MIN}, ${sessionTtlMsMax}], not ${o.ttlMs}`);
  }
  if (o.selfRecord !== undefined) {
    const bad = peerRecordProblem(o.selfRecord);
    if (bad !== undefined) throw coordError('invalid-argument', `selfRecord: ${bad}`);
    if (o.selfRecord.uuid !== alive.uuid) throw coordError('invalid-argument', `selfRecord is peer ${o.selfRecord.uuid}, the alive record ${alive.uuid}`);
  }
  return new Keeper(volume, aliveOf(alive), o);
}

class Keeper implements LivenessKeeper {
  private stopping = false;
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;
  private session: Session | undefined;
  /** The selfRecord's create-if-absent has run (it runs once: a detach is not undone by a reconnect). */
  private selfDone: boolean;
  private failures = 0;
  private closeError: unknown;
  private readonly key: string;
  private readonly value: string;
  private readonly random: Random;

  constructor(
    private readonly volume: Volume,
    alive: AliveRecord,
    private readonly o: KeepAliveOptions,
  ) {
    this.key = aliveKey(alive.uuid);
    this.value = JSON.stringify(alive);
    this.selfDone = o.selfRecord === undefined;
    this.random = o.random ?? Math.random;
    const owner = o.owner ?? `liveness ${alive.uuid} ${hostname()}:${alive.pid}`;
    this.done = this.run(owner);
  }

  get sessionId(): SessionId | undefined {
    return this.session?.id;
  }

  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.abort.abort(coordError('closed', `liveness of ${this.key} stopped`));
    }
    await this.done;
    const e = this.closeError;
    this.closeError = undefined;
    if (e !== undefined) throw e;
  }

  private emit(e: LivenessEvent): void {
    try {
      this.o.onEvent?.(e);
    } catch {
      // A listener's failure is its own: the key is kept all the same.
    }
  }

  /** Waits out a jittered, growing backoff after a failure (at once on stop). */
  private async failed(error: unknown): Promise<void> {
    if (this.stopping) return;
    this.failures++;
    const delayMs = Math.round(Math.min(RETRY_MS_MAX, RETRY_MS_MIN * 2 ** (this.failures - 1)) * (0.5 + this.random() / 2));
    this.emit({ kind: 'retry', attempt: this.failures, delayMs, error });
    await this.sleep(delayMs);
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.abort.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref(); // a library's timers never hold the process open (as the session's)
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private async run(owner: string): Promise<void> {
    while (!this.stopping) {
      let session: Session;
      try {
        session = await this.volume.openSession({ ttlMs: this.o.ttlMs, owner });
      } catch (e) {
        await this.failed(e);
        continue;
      }
      this.session = session;
      try {
        if (!this.stopping) await this.hold(session);
      } finally {
        this.session = undefined;
        // On stop, the close is what removes the key at once; its failure is stop()'s to report.
        // Otherwise the session ended already, or the volume refused a put with it: closing an
        // ended session does nothing (or answers session-expired, which counts as closed).
        if (this.stopping) await session.close().catch((e: unknown) => (this.closeError = e));
        else await session.close().catch(() => undefined);
      }
    }
  }

  /** Keeps the key under `session` until the session is lost or the keeper stops. */
  private async hold(session: Session): Promise<void> {
    while (!this.stopping && !session.isLost) {
      let rev: Rev;
      try {
        const r = await this.register(session);
        rev = r.rev;
        this.failures = 0;
        this.emit({ kind: 'registered', session: session.id, rev, peerCreated: r.peerCreated });
      } catch (e) {
        if (this.stopping) return;
        if (isCoordError(e) && (e.code === 'session-not-found' || e.code === 'session-expired')) {
          // The volume ended the session before this client heard of it: start over with a new one.
          this.emit({ kind: 'lost', session: session.id, reason: e });
          return;
        }
        await this.failed(e);
        continue;
      }
      try {
        const deletedAt = await keyDeleted(this.volume, this.key, rev, session, this.abort.signal);
        if (this.stopping) return;
        // Deleted from outside (or by the session's end, heard of here first): put it again; if
        // the session has ended, that put says so. A short pause keeps a repeated delete from
        // turning this into a busy loop.
        this.emit({ kind: 'deleted', session: session.id, rev: deletedAt });
        await this.sleep(RETRY_MS_MIN * (0.5 + this.random() / 2));
      } catch (e) {
        if (this.stopping) return;
        if (session.isLost) break;
        await this.failed(e); // the watch itself failed: check the key by putting it again
      }
    }
    if (!this.stopping && session.isLost) this.emit({ kind: 'lost', session: session.id, reason: await session.lost });
  }

  /** Puts the key under `session`, with the selfRecord's create-if-absent the first time. */
  private async register(session: Session): Promise<{ rev: Rev; peerCreated: boolean }> {
    const self = this.o.selfRecord;
    if (self === undefined || this.selfDone) {
      return { rev: (await this.volume.put(this.key, this.value, { session })).rev, peerCreated: false };
    }
    const put: TxnOp = { op: 'put', key: this.key, value: Buffer.from(this.value, 'utf8'), session: session.id };
    const pk = peerKey(self.uuid);
    const r = await this.volume.txn({
      compare: [{ key: pk, target: 'createRev', op: '=', value: 0 }],
      success: [{ op: 'put', key: pk, value: Buffer.from(JSON.stringify(peerOf(self)), 'utf8') }, put],
      failure: [put],
    });
    this.selfDone = true;
    return { rev: r.rev, peerCreated: r.succeeded };
  }
}
