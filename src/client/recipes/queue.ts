// The queue under a lock and an election (etcd's concurrency package, ZooKeeper's lock recipe):
// each contender puts one ephemeral key under a prefix, owned by its session; contenders are
// ordered by the keys' createRev, and the head of the queue — the lowest createRev — holds the
// lock or leads. A contender that is not the head watches the delete of its predecessor only
// (the key just before it in createRev order), so a release wakes one waiter, not the herd.
//
// Keys are `<prefix><session id>-<8 random hex digits>`: the random part makes each contender's
// key its own (one session may contend twice), and lets a create whose outcome was unknown
// (`indeterminate` after a broken connection) be sent again safely — the txn creates the key only
// if it does not exist yet, and otherwise reads back the one the first try made, as ZooKeeper's
// recipe finds its node again by the GUID in its name.
import { randomBytes } from 'node:crypto';
import { coordError, isCoordError, type CoordError } from '../../common/errors.js';
import type { Rev } from '../../common/ids.js';
import type { KeyValue, TxnResult } from '../../../translators/fops.js';
import type { Session } from '../session.js';
import type { Volume } from '../volume.js';
import { readAll } from '../watch.js';

/**
 * Failures after which the same write may be sent again: it either never ran or, if it did, the
 * queue's writes are idempotent (create-if-absent, delete). `closed` is not one: the caller closed
 * the volume.
 */
const RETRYABLE = new Set(['indeterminate', 'unavailable', 'timeout', 'no-quorum']);
const RETRY_MS_MIN = 20;
const RETRY_MS_MAX = 1_000;
/** How many times a queue write is retried before the error is the caller's. */
const RETRIES_MAX = 50;

/** What a recipe names: one path segment, so that no queue's prefix holds another's keys. */
export function checkRecipeName(kind: 'lock' | 'election', name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw coordError('invalid-argument', `a ${kind} name must be a non-empty string`);
  // `/_locks/a/` would also hold the keys of a lock named `a/b`.
  if (name.includes('/')) throw coordError('invalid-argument', `a ${kind} name must not contain '/' (got ${JSON.stringify(name)})`);
}

export interface QueueEntry {
  readonly key: string;
  /** The key's createRev: its place in the queue (the lock's fencing token). */
  readonly createRev: Rev;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `f` again after failures that leave nothing behind or that `f` tolerates on a retry,
 * with jittered backoff, while the session lives. Anything else is thrown at once.
 */
async function retrying<T>(session: Session, signal: AbortSignal | undefined, f: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await f();
    } catch (e) {
      if (!isCoordError(e) || !RETRYABLE.has(e.code) || attempt >= RETRIES_MAX) throw e;
      if (session.isLost) throw await session.lost;
      await sleep(Math.min(RETRY_MS_MAX, RETRY_MS_MIN * 2 ** attempt) * (0.5 + Math.random() / 2));
    }
  }
}

/** A new contender's key under `prefix`. */
export function queueKey(prefix: string, session: Session): string {
  return `${prefix}${session.id}-${randomBytes(4).toString('hex')}`;
}

/**
 * Puts a contender's key (ephemeral, owned by `session`) at the tail of the queue. If this
 * throws, the key may exist all the same (a try whose outcome was unknown): the caller removes it.
 */
export async function enqueue(vol: Volume, key: string, session: Session, value: Uint8Array, signal?: AbortSignal): Promise<QueueEntry> {
  const r: TxnResult = await retrying(session, signal, () =>
    vol.txn({
      compare: [{ key, target: 'createRev', op: '=', value: 0 }],
      success: [{ op: 'put', key, value, session: session.id }],
      failure: [{ op: 'get', key }],
    }),
  );
  if (r.succeeded) return { key, createRev: r.rev };
  // A retry after an unknown outcome: the first try made the key.
  const got = r.results[0];
  if (got?.op !== 'get' || got.kv === undefined) throw coordError('internal', `queue key ${key}: the txn failed its compare but the key is absent`);
  return { key, createRev: got.kv.createRev };
}

/** Removes a contender's key (a no-op if it is gone already). */
export async function dequeue(vol: Volume, session: Session, key: string): Promise<void> {
  if (session.isLost) return; // its keys went with it
  await retrying(session, undefined, () => vol.delete(key));
}

/** The reason a contender's key is gone: its session's, if the session ended. */
export async function goneReason(session: Session, key: string, rev: Rev): Promise<CoordError> {
  if (session.isLost) return session.lost;
  return coordError('not-found', `${key} was deleted at rev ${rev} (its session ended, or another client deleted it)`, { key, rev });
}

/**
 * Waits until `me` is the head of the queue: no key under the prefix has a lower createRev.
 * Returns the rev at which it was seen to be the head. Throws the session's reason if the
 * session is lost, a `not-found` if `me`'s key is deleted, or the signal's reason on abort.
 */
export async function waitHead(vol: Volume, prefix: string, me: QueueEntry, session: Session, signal?: AbortSignal): Promise<Rev> {
  for (;;) {
    signal?.throwIfAborted();
    const { rev, kvs } = await readAll(vol, { prefix });
    signal?.throwIfAborted(); // an abort during the read wins: the caller gave up before it led
    if (!kvs.some((kv) => kv.key === me.key)) throw await goneReason(session, me.key, rev);
    const pred = predecessor(kvs, me.createRev);
    if (pred === undefined) return rev;
    // Keys created after `rev` come after `me`; only a delete of `pred` can change the answer.
    await keyDeleted(vol, pred.key, rev, session, signal);
  }
}

/** The key just before `createRev` in createRev order, if any. */
function predecessor(kvs: readonly KeyValue[], createRev: Rev): KeyValue | undefined {
  let best: KeyValue | undefined;
  for (const kv of kvs) if (kv.createRev < createRev && (best === undefined || kv.createRev > best.createRev)) best = kv;
  return best;
}

/** The head of the queue (the lowest createRev), if any. */
export function head(kvs: readonly KeyValue[]): KeyValue | undefined {
  let best: KeyValue | undefined;
  for (const kv of kvs) if (best === undefined || kv.createRev < best.createRev) best = kv;
  return best;
}

const lostSignals = new WeakMap<Session, AbortSignal>();

/**
 * A signal aborted (with the session's reason) once the session is lost: one reaction on
 * `session.lost` per session, however many waits listen to it.
 */
function lostSignal(session: Session): AbortSignal {
  let s = lostSignals.get(session);
  if (s === undefined) {
    const c = new AbortController();
    void session.lost.then((e) => c.abort(e));
    s = c.signal;
    lostSignals.set(session, s);
  }
  return s;
}

/** Rejects with the reason of the first of `signals` to abort; dispose() removes its listeners. */
function aborted(signals: readonly AbortSignal[]): { promise: Promise<never>; dispose: () => void } {
  const off: (() => void)[] = [];
  const promise = new Promise<never>((_, reject) => {
    for (const s of signals) {
      if (s.aborted) return reject(s.reason);
      const f = (): void => reject(s.reason);
      s.addEventListener('abort', f, { once: true });
      off.push(() => s.removeEventListener('abort', f));
    }
  });
  return { promise, dispose: () => off.forEach((f) => f()) };
}

/**
 * Resolves with the rev at which `key` (present at `atRev`) is deleted. Rejects with the
 * session's reason when the session is lost first, or with the signal's reason on abort.
 */
export async function keyDeleted(vol: Volume, key: string, atRev: Rev, session: Session | undefined, signal?: AbortSignal): Promise<Rev> {
  const stop = aborted([...(session ? [lostSignal(session)] : []), ...(signal ? [signal] : [])]);
  // resync: a compaction past the watch's cursor is answered with the key's state, not an error.
  const watcher = vol.watch({ key }, { fromRev: atRev + 1, resync: true });
  try {
    const seen = (async (): Promise<Rev> => {
      for await (const m of watcher) {
        if (m.kind === 'events' && m.events.some((e) => e.type === 'delete')) return m.rev;
        if (m.kind === 'resync' && m.kvs.length === 0) return m.rev;
      }
      throw coordError('closed', `the watch of ${key} ended`);
    })();
    seen.catch(() => undefined); // settled by the race, or left behind once cancelled
    return await Promise.race([seen, stop.promise]);
  } finally {
    stop.dispose();
    await watcher.cancel();
  }
}
