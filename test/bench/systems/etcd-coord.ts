// etcd's watches and sessions through npm `etcd3`: a watch is one etcd watch (the library
// multiplexes a client's watches over one gRPC stream, each with its own watch id, and resumes
// it from its last revision after a broken stream); a session is a lease, kept alive by the
// library every TTL/3 on its own LeaseKeepAlive stream, as coordvol's client does.
import { Etcd3 } from 'etcd3';
import type { ConnectOptions, CoordClient, DeleteWatch, Endpoint, SessionHandle, WatchHandle, WatchSink } from './coord.js';
import { ttlOf } from './coord.js';

const CALL_TIMEOUT_MS = 10_000;

const bytes = (v: Uint8Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

export async function etcdCoordClient(e: Extract<Endpoint, { system: 'etcd' }>, o: ConnectOptions): Promise<CoordClient> {
  const c = new Etcd3({
    hosts: [...e.hosts],
    dialTimeout: 10_000,
    // Streams (watches, keepalives) live for the whole run; only unary calls get a deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
  try {
    await c.get('/bench/ping').serializable(true).string(); // dials the connection before any clock starts
  } catch (err) {
    c.close();
    throw err;
  }

  const watchPrefix = async (prefix: string, sink: WatchSink): Promise<WatchHandle> => {
    const w = await c.watch().prefix(prefix).create();
    w.on('put', (kv) => sink.event(kv.key.toString(), 'put', performance.now()));
    w.on('delete', (kv) => sink.event(kv.key.toString(), 'delete', performance.now()));
    w.on('error', (err) => sink.error(err));
    return { cancel: () => w.cancel() };
  };

  const watchDelete = async (key: string): Promise<DeleteWatch> => {
    const w = await c.watch().key(key).create();
    const deleted = new Promise<number>((resolve) => w.once('delete', () => resolve(performance.now())));
    w.on('error', () => undefined); // a broken stream resumes by itself; the caller's timeout bounds the wait
    return { deleted, cancel: () => w.cancel() };
  };

  const session = async (): Promise<SessionHandle> => {
    const ttlS = Math.max(1, Math.round(ttlOf(o, 'etcd') / 1000)); // etcd TTLs are whole seconds
    const lease = c.lease(ttlS);
    const lost = new Promise<string>((resolve) => lease.on('lost', (err) => resolve(`lease lost: ${err.message}`)));
    const id = await lease.grant();
    const granted = await c.leaseClient.leaseTimeToLive({ ID: id });
    return {
      grantedTtlMs: Number(granted.grantedTTL) * 1000,
      lost,
      putEphemeral: async (key, value) => {
        await lease.put(key).value(bytes(value));
      },
      close: () => lease.revoke(),
    };
  };

  return {
    put: async (key, value) => {
      await c.put(key).value(bytes(value));
    },
    watchPrefix,
    watchDelete,
    session,
    close: async () => c.close(),
  };
}
