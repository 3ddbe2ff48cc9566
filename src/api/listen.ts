// Serving the HTTP API on a socket (DESIGN §9): loopback by default; any other address needs a
// bearer token, since the API reads and writes every key.
import { isIP } from 'node:net';
import { coordError } from '../common/errors.js';
import type { Volume } from '../client/volume.js';
import { buildApi } from './app.js';
import type { SessionFops } from './routes-sessions.js';

export interface StartApiOptions {
  readonly volume: Volume;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly token?: string;
  readonly extraMetrics?: () => Promise<string> | string;
  /** The bare session fops, for the routes that drive sessions for HTTP clients (app.ts). */
  readonly sessions?: SessionFops;
  readonly logger?: boolean;
}

export interface RunningApi {
  /** The base URL, e.g. `http://127.0.0.1:8080` (IPv6 in brackets). */
  readonly address: string;
  readonly port: number;
  /** Stops listening and waits for requests in flight. The volume stays open: it is the caller's. */
  close(): Promise<void>;
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`; a name other than localhost is not trusted to be loopback. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
  return false;
}

export async function startApi(o: StartApiOptions): Promise<RunningApi> {
  if (!isLoopback(o.host) && o.token === undefined) {
    throw coordError('invalid-argument', `the HTTP API listens on ${o.host}, which is not loopback, only with a bearer token (set a token, or listen on 127.0.0.1)`, { host: o.host });
  }
  const app = buildApi({
    volume: o.volume,
    ...(o.token !== undefined ? { token: o.token } : {}),
    ...(o.extraMetrics !== undefined ? { extraMetrics: o.extraMetrics } : {}),
    ...(o.sessions !== undefined ? { sessions: o.sessions } : {}),
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
  });
  try {
    await app.listen({ host: o.host.replace(/^\[(.*)\]$/, '$1'), port: o.port });
  } catch (e) {
    await app.close();
    throw e;
  }
  const bound = app.server.address();
  if (bound === null || typeof bound === 'string') {
    await app.close();
    throw coordError('internal', `the HTTP API socket has no TCP address (${String(bound)})`);
  }
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return { address: `http://${host}:${bound.port}`, port: bound.port, close: () => app.close() };
}
