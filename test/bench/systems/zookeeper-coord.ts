// ZooKeeper's watches and sessions through npm `node-zookeeper-client`. ZooKeeper 3.8 has
// persistent recursive watches (addWatch), but this client library does not send them, so a
// prefix watch is what ZooKeeper applications have done for years: getChildren with a one-shot
// watch, re-armed on every notification. A notification names the parent, not the child; the
// re-arm's list shows what changed. Changes made between a notification and its re-arm show up
// in the list without a notification of their own: those are reported as `unnotified`
// (ANCHORS.md: "changes without their own notification"). A session is the connection's own
// session (sessionTimeout asked for at connect, negotiated by the server, kept alive by the
// library's pings every timeout/3 of idle time); ephemeral znodes are created in it.
import { EventEmitter } from 'node:events';
import zookeeper from 'node-zookeeper-client';
import { connectZk, isCode } from './zookeeper.js';
import type { ConnectOptions, CoordClient, DeleteWatch, Endpoint, SessionHandle, WatchHandle, WatchSink } from './coord.js';
import { ttlOf } from './coord.js';

/** Sessions of clients that do not ask for a TTL (W3's watchers and writer), as the W1/W2 clients use. */
const DEFAULT_SESSION_MS = 30_000;

type Callback<T> = (err: Error | zookeeper.Exception | null, result: T) => void;
const call = <T>(f: (cb: Callback<T>) => void): Promise<T> =>
  new Promise((resolve, reject) => f((err, result) => (err ? reject(err) : resolve(result))));

const bytes = (v: Uint8Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

// The library keeps, per path, one EventEmitter whose listeners are that path's watcher
// functions; with 20 watchers on a connection Node warns of a leak at the 11th. Creating the
// emitter first (as the library would) with no limit keeps the warning for real leaks.
interface WatcherManagerInternals {
  readonly childWatchers: Record<string, EventEmitter | undefined>;
}
function unlimitedChildWatchers(c: zookeeper.Client, path: string): void {
  const wm = (c as unknown as { connectionManager?: { watcherManager?: WatcherManagerInternals } }).connectionManager?.watcherManager;
  if (!wm?.childWatchers) return; // another library version: at worst, the warning
  (wm.childWatchers[path] ??= new EventEmitter()).setMaxListeners(0);
}

/** '/a/b/' → '/a/b': the znode whose children a prefix watch lists. */
const parentOf = (prefix: string): string => (prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);

export async function zookeeperCoordClient(e: Extract<Endpoint, { system: 'zookeeper' }>, o: ConnectOptions): Promise<CoordClient> {
  const c = await connectZk(e.connectString, o.sessionTtlMs ?? DEFAULT_SESSION_MS);
  const made = new Set<string>(['/']);

  const create = (path: string, data: Buffer, mode: number): Promise<string> => call((cb) => c.create(path, data, mode, cb));

  /** Creates `path` and its ancestors as persistent znodes where missing. */
  const ensurePath = async (path: string): Promise<void> => {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = '/' + parts.slice(0, i).join('/');
      if (made.has(p)) continue;
      await create(p, Buffer.alloc(0), zookeeper.CreateMode.PERSISTENT).catch((err: unknown) => {
        if (!isCode(err, zookeeper.Exception.NODE_EXISTS)) throw err;
      });
      made.add(p);
    }
  };
  const ensureParent = (key: string): Promise<void> => ensurePath(key.slice(0, key.lastIndexOf('/')));

  const watchPrefix = async (prefix: string, sink: WatchSink): Promise<WatchHandle> => {
    const path = parentOf(prefix);
    await ensurePath(path);
    const known = new Set<string>();
    let cancelled = false;
    // One closure per watcher: the library keeps one listener per (path, function), so watchers
    // sharing a connection each get the notification and each re-arm with their own list.
    const onNotification = (): void => {
      if (cancelled) return;
      const at = performance.now();
      arm().then(
        (children) => {
          const fresh = children.filter((n) => !known.has(n)).sort();
          for (const n of fresh) known.add(n);
          // The notification was fired by the first change after the watch was set: the
          // smallest new child, as the keys under a watched prefix are written in sorted order.
          const [first, ...rest] = fresh;
          if (first !== undefined) sink.event(prefix + first, 'put', at);
          if (rest.length > 0) sink.unnotified(rest.map((n) => prefix + n), performance.now());
        },
        (err: unknown) => {
          if (!cancelled) sink.error(err);
        },
      );
    };
    const arm = (): Promise<string[]> => {
      unlimitedChildWatchers(c, path); // a notification drops the path's emitter: make the next one first
      return call<string[]>((cb) => c.getChildren(path, onNotification, cb));
    };
    for (const n of await arm()) known.add(n);
    return {
      cancel: async () => {
        cancelled = true; // this library cannot remove a watch; the next notification is ignored
      },
    };
  };

  const watchDelete = async (key: string): Promise<DeleteWatch> => {
    let cancelled = false;
    let resolveDeleted: (at: number) => void = () => undefined;
    const deleted = new Promise<number>((r) => (resolveDeleted = r));
    // exists() leaves a one-shot watch on the znode; anything but its delete re-arms it.
    const arm = (): Promise<boolean> =>
      call<zookeeper.Stat | null>((cb) =>
        c.exists(
          key,
          (ev) => {
            const at = performance.now();
            if (ev.getType() === zookeeper.Event.NODE_DELETED) resolveDeleted(at);
            else if (!cancelled) void arm().then((exists) => (exists ? undefined : resolveDeleted(performance.now())), () => undefined);
          },
          cb as Callback<zookeeper.Stat | null>,
        ),
      ).then((stat) => stat !== null && stat !== undefined);
    if (!(await arm())) throw new Error(`zookeeper: cannot watch ${key} for its delete: it does not exist`);
    return {
      deleted,
      cancel: async () => {
        cancelled = true;
      },
    };
  };

  const session = async (): Promise<SessionHandle> => {
    ttlOf(o, 'zookeeper'); // the connection was opened with it
    const lost = new Promise<string>((resolve) => c.once('expired', () => resolve('session expired')));
    return {
      grantedTtlMs: c.getSessionTimeout(),
      lost,
      putEphemeral: async (key, value) => {
        await ensureParent(key);
        await create(key, bytes(value), zookeeper.CreateMode.EPHEMERAL);
      },
      close: async () => undefined, // the session is the connection's: client close() ends it
    };
  };

  return {
    put: async (key, value) => {
      await ensureParent(key);
      // Create first: W3's writes make new keys, and a create is what fires a child watch.
      await create(key, bytes(value), zookeeper.CreateMode.PERSISTENT).catch(async (err: unknown) => {
        if (!isCode(err, zookeeper.Exception.NODE_EXISTS)) throw err;
        await call<zookeeper.Stat>((cb) => c.setData(key, bytes(value), -1, cb));
      });
    },
    watchPrefix,
    watchDelete,
    session,
    close: async () => {
      const closed = new Promise<void>((r) => c.once('disconnected', () => r()));
      c.close();
      await Promise.race([closed, new Promise<void>((r) => setTimeout(r, 5_000).unref())]);
    },
  };
}
