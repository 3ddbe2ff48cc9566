// The head of a queue holds something — a lock, a leadership — until it releases it or loses it.
// It loses it when its session is lost (expired, closed, or unreachable for its ttl) or when its
// key is deleted from outside; either way `lost` resolves with the reason, and from then on the
// holder must stop acting as holder. A release makes `lost` stay pending for good.
import { coordError, isCoordError, type CoordError } from '../../common/errors.js';
import type { Rev } from '../../common/ids.js';
import type { Session } from '../session.js';
import type { Volume } from '../volume.js';
import { dequeue, goneReason, keyDeleted } from './queue.js';

export class Holding {
  readonly lost: Promise<CoordError>;
  private lostV = false;
  private released = false;
  private readonly stopWatch = new AbortController();

  /**
   * `key` is the holder's queue key, seen as the head at `heldAt`; `ownSession` says the session
   * serves this holding only, so releasing (or losing) it closes the session.
   */
  constructor(
    private readonly vol: Volume,
    readonly key: string,
    heldAt: Rev,
    readonly session: Session,
    private readonly ownSession: boolean,
  ) {
    const deleted = keyDeleted(vol, key, heldAt, session, this.stopWatch.signal).then(
      (rev) => goneReason(session, key, rev),
      (e: unknown) => (isCoordError(e) ? e : coordError('internal', `watching ${key} failed: ${String(e)}`)),
    );
    this.lost = Promise.race([session.lost, deleted]).then((e) => {
      if (this.released) return new Promise<never>(() => undefined);
      this.lostV = true;
      this.stopWatch.abort();
      // A session of its own has nothing left to keep alive.
      if (this.ownSession) void session.close().catch(() => undefined);
      return e;
    });
  }

  get isLost(): boolean {
    return this.lostV;
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Deletes the key, or closes the session if it is the holding's own. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopWatch.abort();
    if (this.ownSession) await this.session.close();
    else await dequeue(this.vol, this.session, this.key);
  }
}
