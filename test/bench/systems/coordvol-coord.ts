// coordvol's watches and sessions, through the client library's connect().
//
// THE ONE PLACE that uses coordvol's session and watch API (DESIGN §5–§6, issue 4): Volume.watch,
// Volume.openSession and put(…, { session }). That API was being written alongside this harness,
// so this file does not import its types: it declares the shape it codes against (below, as the
// issue specifies it), checks at run time that the Volume has it, and casts through unknown.
// Until the API exists, coordvolCoordClient throws Unavailable and the workloads report coordvol
// as "not available" while the rest of the harness compiles and runs. Once it lands, these local
// types can be replaced by imports from src/client/index.js.
import { readFileSync } from 'node:fs';
import type { Volume } from '../../../src/client/index.js';
import { loadConnect } from './coordvol.js';
import type { ConnectOptions, CoordClient, DeleteWatch, Endpoint, SessionHandle, WatchHandle, WatchSink } from './coord.js';
import { ttlOf } from './coord.js';
import { withTimeout } from './proc.js';
import { Unavailable } from './types.js';

// ---- the API as specified (src/client/volume.ts, issue 4) -----------------------------------

interface CvKeyValue {
  readonly key: string;
}
type CvWatchMessage =
  | { readonly kind: 'events'; readonly rev: number; readonly events: readonly { readonly type: 'put' | 'delete'; readonly kv: CvKeyValue }[] }
  | { readonly kind: 'progress'; readonly rev: number }
  | { readonly kind: 'resync'; readonly rev: number; readonly kvs: readonly CvKeyValue[] };
interface CvWatcher extends AsyncIterable<CvWatchMessage> {
  cancel(): Promise<void>;
}
interface CvSession {
  readonly id: number;
  readonly ttlMs: number;
  readonly lost: Promise<unknown>;
  close(): Promise<void>;
}
interface CvVolume {
  watch(q: string, opts?: { readonly fromRev?: number; readonly prevKv?: boolean; readonly resync?: boolean; readonly progress?: boolean }): CvWatcher;
  openSession(opts: { readonly ttlMs: number; readonly owner?: string }): Promise<CvSession>;
  put(key: string, value: Uint8Array, opts?: { readonly session?: CvSession | number }): Promise<unknown>;
}

/** The Volume as one with sessions and watches, or Unavailable while this tree lacks them. */
function withSessions(v: Volume): CvVolume {
  const probe = v as unknown as Record<string, unknown>;
  if (typeof probe['watch'] !== 'function' || typeof probe['openSession'] !== 'function') {
    throw new Unavailable('coordvol sessions and watches are not in this tree yet (src/client/volume.ts has no watch() / openSession())');
  }
  return v as unknown as CvVolume;
}

// ---- the client ---------------------------------------------------------------------------

const reason = (x: unknown): string => (x instanceof Error ? x.message : String(x));

export async function coordvolCoordClient(e: Extract<Endpoint, { system: 'coordvol' }>, o: ConnectOptions): Promise<CoordClient> {
  const connect = await loadConnect();
  const secret = readFileSync(e.secretFile, 'utf8').trim();
  const vol = await withTimeout(connect({ servers: [...e.servers], secret }), 20_000, `coordvol connect to ${e.servers.join(',')}`);
  let cv: CvVolume;
  try {
    cv = withSessions(vol);
  } catch (err) {
    await vol.close();
    throw err;
  }

  /** Streams `w` into the sink until it ends; an error after cancel() is the cancel itself. */
  const consume = (w: CvWatcher, sink: WatchSink, cancelled: () => boolean): void => {
    void (async () => {
      try {
        for await (const m of w) {
          const at = performance.now();
          if (m.kind === 'events') for (const ev of m.events) sink.event(ev.kv.key, ev.type, at);
          else if (m.kind === 'resync') sink.unnotified(m.kvs.map((kv) => kv.key), at);
        }
      } catch (err) {
        if (!cancelled()) sink.error(err);
      }
    })();
  };

  /**
   * A watch from the rev of a fresh read: explicit, so it neither replays history this
   * connection never read (the library's default fromRev is its seen rev + 1) nor misses a
   * change made after the call, whenever the stream reaches the server.
   */
  const watchFromNow = async (q: string): Promise<CvWatcher> => {
    const { rev } = await vol.get(q);
    return cv.watch(q, { fromRev: Number(rev) + 1 });
  };

  const watchPrefix = async (prefix: string, sink: WatchSink): Promise<WatchHandle> => {
    const w = await watchFromNow(prefix);
    let cancelled = false;
    consume(w, sink, () => cancelled);
    return {
      cancel: async () => {
        cancelled = true;
        await w.cancel();
      },
    };
  };

  const watchDelete = async (key: string): Promise<DeleteWatch> => {
    const w = await watchFromNow(key); // a string is a prefix: only deletes of `key` itself count
    let cancelled = false;
    const deleted = new Promise<number>((resolve) =>
      consume(w, { event: (k, type, at) => (k === key && type === 'delete' ? resolve(at) : undefined), unnotified: () => undefined, error: () => undefined }, () => cancelled),
    );
    return {
      deleted,
      cancel: async () => {
        cancelled = true;
        await w.cancel();
      },
    };
  };

  const session = async (): Promise<SessionHandle> => {
    const s = await cv.openSession({ ttlMs: ttlOf(o, 'coordvol'), owner: `bench pid ${process.pid}` });
    let closing = false;
    const lost = s.lost.then(
      (x) => (closing ? new Promise<string>(() => undefined) : `session lost: ${reason(x)}`),
      (x: unknown) => (closing ? new Promise<string>(() => undefined) : `session lost: ${reason(x)}`),
    );
    return {
      grantedTtlMs: s.ttlMs,
      lost,
      putEphemeral: async (key, value) => {
        await cv.put(key, value, { session: s });
      },
      close: async () => {
        closing = true; // a close is not a loss
        await s.close();
      },
    };
  };

  return {
    put: async (key, value) => {
      await vol.put(key, value);
    },
    watchPrefix,
    watchDelete,
    session,
    close: () => withTimeout(vol.close(), 10_000, 'coordvol client close'),
  };
}
