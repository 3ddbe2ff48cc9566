// /v1/sessions (DESIGN §5 over HTTP). A session opened here is kept alive by the HTTP client, not
// by the API's process: the client sends `PUT /v1/sessions/:id/keepalive` more often than its ttl
// (every ttl/3, as the library does), names the session in `PUT /v1/kv/<key>?session=ID` to make
// keys ephemeral, and ends it with `DELETE /v1/sessions/:id` (its keys go at once) — or stops
// sending keepalives, and the volume expires it.
//
//   curl -s -X POST -H 'content-type: application/json' -d '{"ttlMs":5000}' localhost:7421/v1/sessions
//   {"id":42,"ttlMs":5000,"rev":42}
//   curl -s -X PUT 'localhost:7421/v1/kv/cluster/alive/n1?session=42' --data-binary up
//   curl -s -X PUT localhost:7421/v1/sessions/42/keepalive
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { asSessionId, type SessionId } from '../common/ids.js';
import { sessionTtlMsMax } from '../common/limits.js';
import type { FopCaller, Volume } from '../client/volume.js';
import type { KeepaliveResult, SessionCloseResult, SessionOpenArgs, SessionOpenResult } from '../../translators/fops.js';

/**
 * The session fops by id. The library's Volume keeps its own sessions alive by itself; the HTTP
 * API needs the bare calls, so that the HTTP client's keepalives are the only ones.
 */
export interface SessionFops {
  open(args: SessionOpenArgs): Promise<SessionOpenResult>;
  keepalive(id: SessionId): Promise<KeepaliveResult>;
  close(id: SessionId): Promise<SessionCloseResult>;
}

/** The session fops over the top of a graph (the master's, or a client graph's). */
export function sessionFops(caller: FopCaller, timeoutMs = 10_000): SessionFops {
  const ctx = (): { deadlineMs: number } => ({ deadlineMs: performance.now() + timeoutMs });
  return {
    open: (args) => caller('sessionOpen', ctx(), args),
    keepalive: (id) => caller('keepalive', ctx(), { id }),
    close: (id) => caller('sessionClose', ctx(), { id }),
  };
}

const idParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
} as const;

const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

const openBody = {
  type: 'object',
  additionalProperties: false,
  required: ['ttlMs'],
  properties: {
    // The holder refuses a ttl below max(2 s, 4·leaseMs) with the bound in its message.
    ttlMs: { type: 'integer', minimum: 1, maximum: sessionTtlMsMax },
    owner: { type: 'string', minLength: 1, maxLength: 256 },
    // A client that retries a POST whose answer it lost sends the same nonce: it gets the same session.
    nonce: { type: 'string', pattern: '^[0-9a-f]{32}$' },
  },
} as const;

interface OpenBody {
  ttlMs: number;
  owner?: string;
  nonce?: string;
}

export const sessionRoutes: FastifyPluginAsync<{ volume: Volume; sessions?: SessionFops }> = async (app, { volume, sessions }) => {
  app.get('/v1/sessions', { schema: { querystring: noQuery } }, async () => {
    const r = await volume.sessions();
    return { rev: r.rev, sessions: r.sessions };
  });

  // Without the bare fops (a Volume only), sessions can be listed but not driven over HTTP.
  if (sessions === undefined) return;

  app.post<{ Body: OpenBody }>('/v1/sessions', { schema: { querystring: noQuery, body: openBody } }, async (req) => {
    const b = req.body;
    const r = await sessions.open({ ttlMs: b.ttlMs, nonce: b.nonce ?? randomBytes(16).toString('hex'), owner: b.owner ?? `http:${req.ip}` });
    return { id: r.id, ttlMs: r.ttlMs, rev: r.rev };
  });

  app.put<{ Params: { id: number } }>('/v1/sessions/:id/keepalive', { schema: { params: idParams, querystring: noQuery } }, async (req) => {
    const r = await sessions.keepalive(asSessionId(req.params.id));
    return { id: r.id, ttlMs: r.ttlMs };
  });

  app.delete<{ Params: { id: number } }>('/v1/sessions/:id', { schema: { params: idParams, querystring: noQuery } }, async (req) => {
    const r = await sessions.close(asSessionId(req.params.id));
    return { rev: r.rev };
  });
};
