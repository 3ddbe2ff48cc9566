// The HTTP API (DESIGN §9): a fastify app built by a factory, with no listening of its own
// (listen.ts does that; tests use inject()). Every route has a JSON schema; every refusal is
// `{ error: { code, message, details? } }` with the CoordError code; with a token, every route
// needs `Authorization: Bearer <token>`.
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { coordError } from '../common/errors.js';
import { keyBytesMax } from '../common/limits.js';
import type { Volume } from '../client/volume.js';
import { errorReply } from './errors.js';
import { kvRoutes } from './routes-kv.js';
import { peerRoutes } from './routes-peers.js';
import { sessionRoutes, type SessionFops } from './routes-sessions.js';
import { volumeRoutes } from './routes-volume.js';
import { volumeInfoRoutes } from './routes-volumes.js';
import { watchRoutes } from './routes-watch.js';

export interface ApiOptions {
  readonly volume: Volume;
  /** Require `Authorization: Bearer <token>` on every route. */
  readonly token?: string;
  /** fastify's pino logger (default off). */
  readonly logger?: boolean;
  /** More exposition text for /metrics (the server's connections), appended as is. */
  readonly extraMetrics?: () => Promise<string> | string;
  /**
   * The bare session fops (routes-sessions.ts's sessionFops over the graph), for the routes that
   * open, keep alive and close sessions for HTTP clients; without them only GET /v1/sessions.
   */
  readonly sessions?: SessionFops;
}

/** Routes whose body is a value: an oversized body there is `value-too-large`. */
const VALUE_ROUTE = '/v1/kv/*';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** A check of the bearer token in constant time (hashes make the lengths equal). */
function tokenCheck(token: string): (req: FastifyRequest) => void {
  const want = digest(token);
  return (req) => {
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const given = m?.[1];
    if (given === undefined || !timingSafeEqual(digest(given), want)) {
      throw coordError('unauthorized', header === undefined ? 'this API needs Authorization: Bearer <token>' : 'wrong bearer token');
    }
  };
}

export function buildApi(opts: ApiOptions): FastifyInstance {
  if (opts.token !== undefined && opts.token.trim() === '') throw coordError('invalid-argument', 'the API token must not be empty');
  const app = Fastify({
    logger: opts.logger ?? false,
    // A key is at most 4 KiB, up to 12 KiB percent-encoded in the URL (node's header limit is 16 KiB).
    routerOptions: { maxParamLength: 3 * keyBytesMax + 64 },
    // Unknown query parameters and body fields are refused (400), not silently dropped; a txn
    // compare's value is text, a number or a boolean (a union type).
    ajv: { customOptions: { removeAdditional: false, allowUnionTypes: true } },
    // A URL that does not percent-decode (`%zz`, `%ff`) fails before routing and hooks.
    frameworkErrors: (e: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      void reply.status(400).send({ error: { code: 'invalid-argument', message: e.message, details: { fastifyCode: e.code } } });
    },
  });

  if (opts.token !== undefined) {
    const check = tokenCheck(opts.token);
    app.addHook('onRequest', async (req, reply) => {
      try {
        check(req);
      } catch (e) {
        void reply.header('www-authenticate', 'Bearer realm="coordvol"');
        throw e;
      }
    });
  }

  app.setErrorHandler(async (e, req, reply) => {
    const { status, body, internal } = errorReply(e, req.routeOptions.url === VALUE_ROUTE ? 'value-too-large' : 'too-large');
    if (internal) req.log.error({ err: e }, 'request failed');
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler(async (req, reply) =>
    reply.status(404).send({ error: { code: 'not-found', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` } }),
  );

  void app.register(kvRoutes, { volume: opts.volume });
  void app.register(volumeRoutes, { volume: opts.volume, ...(opts.extraMetrics ? { extraMetrics: opts.extraMetrics } : {}) });
  void app.register(watchRoutes, { volume: opts.volume });
  void app.register(sessionRoutes, { volume: opts.volume, ...(opts.sessions ? { sessions: opts.sessions } : {}) });
  void app.register(peerRoutes, { volume: opts.volume });
  void app.register(volumeInfoRoutes, { volume: opts.volume });
  return app;
}
