// A distributed mutex, the recipe of etcd's concurrency.Mutex and ZooKeeper's lock:
//
//   const l = await lock(vol, 'db-migrate', { ttlMs: 5_000 });
//   try { await migrate(l.fencingToken); } finally { await l.unlock(); }
//
// The lock's keys live under `/_locks/<name>/`, one ephemeral key per contender (queue.ts); the
// holder is the key with the lowest createRev. Its createRev is the fencing token: a later holder's
// key was created after every key present while an earlier one held, so tokens strictly increase
// from holder to holder, and a resource that refuses tokens below the highest it has seen refuses
// a holder that lost the lock without knowing.
//
// A lock lives as long as its session. `lost` resolves when the session is lost (expired, closed,
// or unreachable for its ttl) or the lock's key is deleted from outside — from then on the holder
// must stop acting under the lock.
import { hostname } from 'node:os';
import { coordError, type CoordError } from '../../common/errors.js';
import type { Rev } from '../../common/ids.js';
import type { Session } from '../session.js';
import type { Volume } from '../volume.js';
import { Holding } from './holding.js';
import { checkRecipeName, dequeue, enqueue, queueKey, waitHead } from './queue.js';

/** Where locks keep their queues: visible to `coordvol kv ls /_locks/`, writable by clients. */
export const LOCKS_PREFIX = '/_locks/';
/** The ttl of a session the lock opens for itself. */
export const LOCK_TTL_MS_DEFAULT = 10_000;

export interface LockOpts {
  /** The ttl of the session the lock opens for itself (default 10 s). Not with `session`. */
  readonly ttlMs?: number;
  /** Hold the lock under this session instead (it stays open after unlock). */
  readonly session?: Session;
  /** Stops waiting: lock() then rejects with the signal's reason and leaves nothing behind. */
  readonly signal?: AbortSignal;
}

export interface Lock {
  readonly name: string;
  /** The holder's key, `/_locks/<name>/<session>-<random>`. */
  readonly key: string;
  /** The key's createRev: strictly increasing from one holder of this lock to the next. */
  readonly fencingToken: Rev;
  readonly session: Session;
  /** Resolves with the reason if the lock is lost while held; never after unlock(). */
  readonly lost: Promise<CoordError>;
  readonly isLost: boolean;
  /** Releases the lock: deletes its key, or closes the session if the lock opened it. */
  unlock(): Promise<void>;
}

/** Waits for, and takes, the lock `name`. */
export async function lock(vol: Volume, name: string, opts: LockOpts = {}): Promise<Lock> {
  checkRecipeName('lock', name);
  if (opts.session !== undefined && opts.ttlMs !== undefined) throw coordError('invalid-argument', 'lock: give ttlMs or session, not both (the ttl is the session’s)');
  if (opts.session?.isLost) throw await opts.session.lost;
  opts.signal?.throwIfAborted();
  const own = opts.session === undefined;
  const session = opts.session ?? (await vol.openSession({ ttlMs: opts.ttlMs ?? LOCK_TTL_MS_DEFAULT }));
  const prefix = `${LOCKS_PREFIX}${name}/`;
  const key = queueKey(prefix, session);
  try {
    const me = await enqueue(vol, key, session, Buffer.from(`${hostname()}:${process.pid}`), opts.signal);
    const rev = await waitHead(vol, prefix, me, session, opts.signal);
    return new HeldLock(vol, name, me.key, me.createRev, rev, session, own);
  } catch (e) {
    // Leave no key behind to block the others: the waiter gave up or lost its session.
    if (own) await session.close().catch(() => undefined);
    else await dequeue(vol, session, key).catch(() => undefined);
    throw e;
  }
}

class HeldLock implements Lock {
  private readonly holding: Holding;

  constructor(vol: Volume, readonly name: string, readonly key: string, readonly fencingToken: Rev, heldAt: Rev, readonly session: Session, ownSession: boolean) {
    this.holding = new Holding(vol, key, heldAt, session, ownSession);
  }

  get lost(): Promise<CoordError> {
    return this.holding.lost;
  }

  get isLost(): boolean {
    return this.holding.isLost;
  }

  unlock(): Promise<void> {
    return this.holding.release();
  }
}
