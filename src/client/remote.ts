// A volume on remote masters, over the wire protocol (DESIGN §7): the same Volume interface as
// openVolume, served by an in-process client graph — debug/io-stats over protocol/client — so
// `profile` shows the latency this client sees next to the servers' own.
//
//   const vol = await connect({ servers: ['10.0.0.1:7420', '10.0.0.2:7420'], secret });
//   await vol.put('/config/mode', 'active');
import type { ConnectionOptions } from 'node:tls';
import { ioStatsClass } from '../../translators/debug/io-stats.js';
import { Graph } from '../../translators/graph.js';
import { ProtocolClientTranslator } from '../../translators/protocol/client.js';
import { systemClock, type Clock, type GraphEnv } from '../../translators/translator.js';
import { coordError } from '../common/errors.js';
import { parseAddress } from '../wire/address.js';
import { Origins } from './origins.js';
import { FopVolume, type FopCaller, type Volume } from './volume.js';

export interface ConnectOptions {
  /** host:port of each server, tried in turn (and again, with backoff, after a connection breaks). */
  readonly servers: readonly string[];
  /** The cluster secret: the text of the server's secret file (trimmed), or the raw key bytes. */
  readonly secret: string | Uint8Array;
  /** Refuse servers of any other volume (`wrong-volume`); by default the first server's volume is pinned. */
  readonly expectVolumeId?: string;
  /** TLS: `true` trusts the system's CAs; or the CA (PEM) to trust and other tls.connect options. */
  readonly tls?: boolean | { readonly ca?: string | Uint8Array | readonly (string | Uint8Array)[]; readonly servername?: string; readonly rejectUnauthorized?: boolean };
  /** Per-call deadline, and how long connect() waits for the first connection (default 10 s). */
  readonly timeoutMs?: number;
  /**
   * Client pings after this much silence from the server (default 5 s; 0 disables). Sessions'
   * keepalives (every ttl/3) are traffic too, so a client with a session seldom pings; a dead
   * server is detected by a socket error at once, a silent one within pingMs + ping timeout.
   */
  readonly pingMs?: number;
  /**
   * Exactly-once writes (DESIGN §3, default true): the client opens a session of its own at its
   * first write and sends each write with (clientId, seq, ackedSeq), so a write in flight when a
   * connection breaks is sent again and applied once (a retry is answered `duplicate: true`).
   * Off, such a write fails `indeterminate`.
   */
  readonly exactlyOnce?: boolean;
  /** ttl of that session (default 30 s): how long the volume keeps a dead client's write results. */
  readonly clientSessionTtlMs?: number;
  readonly clock?: Clock;
}

export interface RemoteVolume extends Volume {
  /** The id of the volume the servers serve. */
  readonly volumeId: string;
}

/**
 * Connects to a remote volume. Resolves once the first connection is open; rejects with
 * `auth-failed` (wrong secret, or a server that cannot prove it has it), `wrong-volume`, or
 * `unavailable` (no server answered within timeoutMs).
 */
export async function connect(o: ConnectOptions): Promise<RemoteVolume> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  if (!(timeoutMs > 0)) throw coordError('invalid-argument', 'timeoutMs must be positive');
  if (o.servers.length === 0) throw coordError('invalid-argument', 'connect needs at least one server');
  for (const s of o.servers) parseAddress(s, 'connect: servers');
  const env: GraphEnv = { clock: o.clock ?? systemClock, baseDir: process.cwd() };
  const client = new ProtocolClientTranslator(
    {
      name: 'remote',
      type: 'protocol/client',
      options: {
        remote: o.servers.join(' '),
        ...(o.expectVolumeId !== undefined ? { 'expect-volume-id': o.expectVolumeId } : {}),
        tls: false,
        'handshake-timeout-ms': Math.min(5_000, timeoutMs),
        'request-timeout-ms': timeoutMs,
        'ping-ms': o.pingMs ?? 5_000,
        'ping-timeout-ms': 3_000,
        'reconnect-min-ms': 50,
        'reconnect-max-ms': 2_000,
        'resend-writes': true,
        // A client of the volume follows its membership: masters a probe adds are tried too.
        'follow-members': true,
      },
      children: [],
      env,
    },
    {
      secret: typeof o.secret === 'string' ? Buffer.from(o.secret.trim(), 'utf8') : o.secret,
      ...(o.tls ? { tls: tlsOptions(o.tls) } : {}),
    },
  );
  const top = ioStatsClass.create({ name: 'client-stats', type: 'debug/io-stats', options: {}, children: [client], env });
  const graph = new Graph(top, [client, top]);
  await graph.init();
  try {
    await client.whenOpen(env.clock.nowMs() + timeoutMs);
  } catch (e) {
    await graph.fini().catch(() => undefined);
    throw e;
  }
  let closed: Promise<void> | undefined;
  const caller: FopCaller = (fop, ctx, args) => top.call(fop, ctx, args);
  const origins = o.exactlyOnce === false ? undefined : new Origins(caller, { timeoutMs, ...(o.clientSessionTtlMs !== undefined ? { sessionTtlMs: o.clientSessionTtlMs } : {}) });
  const fini = async (): Promise<void> => {
    await origins?.close();
    await graph.fini();
  };
  const vol = new FopVolume(origins?.caller ?? caller, () => (closed ??= fini()), timeoutMs, origins ? (s) => origins.adopt(s) : undefined);
  return Object.assign(vol, { volumeId: client.volumeId as string });
}

function tlsOptions(t: true | Exclude<ConnectOptions['tls'], boolean | undefined>): ConnectionOptions {
  if (t === true) return {};
  const out: { ca?: ConnectionOptions['ca']; servername?: string; rejectUnauthorized?: boolean } = {};
  if (t.ca !== undefined) out.ca = (Array.isArray(t.ca) ? [...t.ca] : t.ca) as ConnectionOptions['ca'];
  if (t.servername !== undefined) out.servername = t.servername;
  if (t.rejectUnauthorized !== undefined) out.rejectUnauthorized = t.rejectUnauthorized;
  return out;
}
