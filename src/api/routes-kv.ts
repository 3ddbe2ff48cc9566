// /v1/kv/* (one key: get, put, delete) and /v1/range. The key is '/' + the rest of the path, so
// GET /v1/kv/a/b reads '/a/b'; percent-encode '/'-free specials ('?', '#', '%') in it. Keys that
// do not start with '/' are reachable through /v1/range and /v1/txn.
import type { FastifyPluginAsync } from 'fastify';
import { coordError } from '../common/errors.js';
import { rangeLimitMax, valueBytesMax } from '../common/limits.js';
import type { RangeOpts, ReadOpts, Volume } from '../client/volume.js';
import type { Consistency, KeySelector } from '../../translators/fops.js';
import { asBuffer, kvJson } from './shape.js';

/** Room above the value limit for the body so the store, not the parser, names an oversized value. */
const valueBodyBytesMax = valueBytesMax + 64 * 1024;

const keyParams = {
  type: 'object',
  required: ['*'],
  properties: { '*': { type: 'string' } },
} as const;

const consistency = { type: 'string', enum: ['linearizable', 'serializable'] } as const;
const rev = { type: 'integer', minimum: 0 } as const;
const flag = { type: 'boolean' } as const;

interface KeyParams {
  '*': string;
}
interface ReadQuery {
  rev?: number;
  consistency?: Consistency;
  /** An HTTP client's own highest seen rev: its serializable reads never go below it. */
  minRev?: number;
}
interface GetQuery extends ReadQuery {
  raw?: boolean;
}
interface RangeQueryString extends ReadQuery {
  prefix?: string;
  start?: string;
  end?: string;
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  children?: boolean;
}

function readOpts(q: ReadQuery): ReadOpts {
  return {
    ...(q.rev !== undefined ? { rev: q.rev } : {}),
    ...(q.consistency !== undefined ? { consistency: q.consistency } : {}),
    ...(q.minRev !== undefined ? { minRev: q.minRev } : {}),
  };
}

const keyOf = (p: KeyParams): string => '/' + p['*'];

export const kvRoutes: FastifyPluginAsync<{ volume: Volume }> = async (app, { volume }) => {
  // Values are bytes: every content type is stored as it came (this scope only; /v1/txn is JSON).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: valueBodyBytesMax }, (_req, body, done) => done(null, body));

  app.get<{ Params: KeyParams; Querystring: GetQuery }>('/v1/kv/*', {
    schema: {
      params: keyParams,
      querystring: { type: 'object', additionalProperties: false, properties: { rev, consistency, minRev: rev, raw: flag } },
    },
  }, async (req, reply) => {
    const key = keyOf(req.params);
    const r = await volume.get(key, readOpts(req.query));
    if (r.kv === undefined) {
      if (req.query.raw) void reply.header('x-coordvol-rev', String(r.rev));
      return reply.status(404).send({ rev: r.rev, error: { code: 'not-found', message: `no key ${JSON.stringify(key)} at rev ${r.rev}`, details: { key } } });
    }
    if (!req.query.raw) return { rev: r.rev, kv: kvJson(r.kv) };
    return reply
      .header('content-type', 'application/octet-stream')
      .header('x-coordvol-rev', String(r.rev))
      .header('x-coordvol-create-rev', String(r.kv.createRev))
      .header('x-coordvol-mod-rev', String(r.kv.modRev))
      .header('x-coordvol-version', String(r.kv.version))
      .send(asBuffer(r.kv.value ?? new Uint8Array(0)));
  });

  // session=ID makes the key ephemeral (POST /v1/sessions opens one); sequential=true appends
  // the volume-wide counter (the answer's `key` is the final key).
  app.put<{ Params: KeyParams; Querystring: { prevKv?: boolean; session?: number; sequential?: boolean } }>('/v1/kv/*', {
    bodyLimit: valueBodyBytesMax,
    schema: { params: keyParams, querystring: { type: 'object', additionalProperties: false, properties: { prevKv: flag, session: { type: 'integer', minimum: 1 }, sequential: flag } } },
  }, async (req) => {
    // No body (no content-length) is an empty value.
    const value = req.body instanceof Uint8Array ? req.body : new Uint8Array(0);
    const q = req.query;
    const r = await volume.put(keyOf(req.params), value, { prevKv: q.prevKv === true, ...(q.session !== undefined ? { session: q.session } : {}), ...(q.sequential ? { sequential: true } : {}) });
    return { rev: r.rev, key: r.key, ...(r.prevKv ? { prevKv: kvJson(r.prevKv) } : {}) };
  });

  app.delete<{ Params: KeyParams; Querystring: { prefix?: boolean; prevKv?: boolean } }>('/v1/kv/*', {
    schema: { params: keyParams, querystring: { type: 'object', additionalProperties: false, properties: { prefix: flag, prevKv: flag } } },
  }, async (req) => {
    const key = keyOf(req.params);
    const sel: KeySelector = req.query.prefix ? { prefix: key } : { key };
    const r = await volume.delete(sel, { prevKv: req.query.prevKv === true });
    return { rev: r.rev, deleted: r.deleted, ...(r.prevKvs ? { prevKvs: r.prevKvs.map(kvJson) } : {}) };
  });

  app.get<{ Querystring: RangeQueryString }>('/v1/range', {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          prefix: { type: 'string' }, start: { type: 'string' }, end: { type: 'string' },
          limit: { type: 'integer', minimum: 1, maximum: rangeLimitMax },
          keysOnly: flag, countOnly: flag, children: flag, rev, consistency, minRev: rev,
        },
      },
    },
  }, async (req) => {
    const q = req.query;
    if ((q.prefix === undefined) === (q.start === undefined)) throw coordError('invalid-argument', 'give prefix, or start (with an optional end)');
    if (q.end !== undefined && q.start === undefined) throw coordError('invalid-argument', 'end goes with start');
    const sel: KeySelector = q.prefix !== undefined ? { prefix: q.prefix } : { start: q.start as string, ...(q.end !== undefined ? { end: q.end } : {}) };
    const opts: RangeOpts = {
      ...sel,
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.keysOnly !== undefined ? { keysOnly: q.keysOnly } : {}),
      ...(q.countOnly !== undefined ? { countOnly: q.countOnly } : {}),
      ...(q.children !== undefined ? { children: q.children } : {}),
      ...readOpts(q),
    };
    const r = await volume.range(opts);
    return { rev: r.rev, count: r.count, more: r.more, kvs: r.kvs.map(kvJson), ...(r.children ? { children: r.children } : {}) };
  });
};
