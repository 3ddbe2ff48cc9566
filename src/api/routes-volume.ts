// /v1/txn, /v1/compact, /v1/config, the inspection routes (/v1/status, /v1/statedump, /v1/profile) and
// /metrics.
import type { FastifyPluginAsync } from 'fastify';
import { txnBytesMax, txnOpsMax } from '../common/limits.js';
import type { Volume } from '../client/volume.js';
import { CONFIG_OPS, type ConfigChange } from '../../replication/config.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import { dumpJson, txnArgs, txnResultJson, type TxnJson } from './shape.js';

/** A txn's values may be base64 (4/3 of their bytes), plus room for the JSON around them. */
const txnBodyBytesMax = Math.ceil((txnBytesMax * 4) / 3) + 1024 * 1024;

const str = { type: 'string' } as const;
const flag = { type: 'boolean' } as const;

const compareItem = {
  type: 'object',
  additionalProperties: false,
  required: ['key', 'target', 'op'],
  properties: {
    key: str,
    target: { type: 'string', enum: ['value', 'version', 'createRev', 'modRev', 'exists'] },
    op: { type: 'string', enum: ['=', '!=', '<', '>'] },
    // Text for target "value", an integer for the revs and version, a boolean for exists.
    value: { type: ['string', 'number', 'boolean'] },
    valueBase64: str,
  },
} as const;

const opItem = {
  type: 'object',
  additionalProperties: false,
  required: ['op'],
  properties: {
    op: { type: 'string', enum: ['put', 'delete', 'get', 'range'] },
    key: str, value: str, valueBase64: str, prefix: str, start: str, end: str,
    prevKv: flag, limit: { type: 'integer' }, keysOnly: flag, countOnly: flag, children: flag,
    // A put's session (ephemeral key) and sequential flag; the library checks where they apply.
    session: { type: 'integer', minimum: 1 }, sequential: flag,
  },
} as const;

/** Routes that take no input still refuse unknown query parameters. */
const noInput = { schema: { querystring: { type: 'object', additionalProperties: false, properties: {} } } } as const;

const list = <T>(items: T) => ({ type: 'array', items, maxItems: txnOpsMax }) as const;

export const volumeRoutes: FastifyPluginAsync<{ volume: Volume; extraMetrics?: () => Promise<string> | string }> = async (app, { volume, extraMetrics }) => {
  app.post<{ Body: TxnJson }>('/v1/txn', {
    bodyLimit: txnBodyBytesMax,
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { compare: list(compareItem), success: list(opItem), failure: list(opItem) },
      },
    },
  }, async (req) => txnResultJson(await volume.txn(txnArgs(req.body))));

  // One membership change (DESIGN §4.7), as `coordvol volume reconfigure`.
  app.post<{ Body: ConfigChange }>('/v1/config', {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['op'],
        properties: { op: { type: 'string', enum: CONFIG_OPS }, brick: str, count: { type: 'integer', minimum: 1 } },
      },
    },
  }, async (req) => volume.reconfigure(req.body));

  app.post<{ Body: { rev: number } }>('/v1/compact', {
    schema: {
      body: { type: 'object', additionalProperties: false, required: ['rev'], properties: { rev: { type: 'integer', minimum: 1 } } },
    },
  }, async (req) => {
    const r = await volume.compact(req.body.rev);
    return { rev: r.rev, compactRev: r.compactRev };
  });

  app.get('/v1/status', noInput, async () => volume.status());

  // Free-form per-translator state: serialized defensively (bytes, bigints, maps).
  app.get('/v1/statedump', noInput, async (_req, reply) => reply.type('application/json; charset=utf-8').send(dumpJson(await volume.statedump())));

  app.get('/v1/profile', noInput, async () => volume.profile());

  app.get('/metrics', noInput, async (_req, reply) => {
    const [profile, status] = await Promise.all([volume.profile(), volume.status()]);
    let text = renderMetrics(profile, status);
    if (extraMetrics) {
      const extra = await extraMetrics();
      if (extra.length > 0) text += extra.endsWith('\n') ? extra : extra + '\n';
    }
    return reply.type(METRICS_CONTENT_TYPE).send(text);
  });
};
