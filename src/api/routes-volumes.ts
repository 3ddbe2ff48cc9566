// /v1/volumes: the storage cluster's volume info (DESIGN §8), the resource shape heketi uses —
// a collection, one resource per volume, verbs as sub-resources — over src/mgmt/volume-info.ts.
// Refusals are the library's typed errors (404 not-found, 409 already-exists, brick-in-use,
// illegal-transition, conflict, 400 invalid-argument), mapped by errors.ts.
//
//   curl -s -X POST localhost:7421/v1/volumes -H 'content-type: application/json' \
//     -d '{"name":"gv0","replica":3,"bricks":["s1:/data/b1","s2:/data/b1","s3:/data/b1"]}'
//   curl -s -X POST localhost:7421/v1/volumes/gv0/start
//   curl -s -X PUT localhost:7421/v1/volumes/gv0/options -H 'content-type: application/json' \
//     -d '{"key":"performance.cache-size","value":"256MB"}'
import type { FastifyPluginAsync } from 'fastify';
import type { Volume } from '../client/volume.js';
import {
  BRICKS_MAX, OPTION_VALUE_BYTES_MAX, createVolume, deleteVolume, getVolume, listVolumes, setVolumeOption, startVolume, stopVolume,
  type VolumeChange,
} from '../mgmt/volume-info.js';

const str = { type: 'string' } as const;

// The response schemas are also the serializer's: a field not listed here is not sent.
const volumeSchema = {
  type: 'object',
  required: ['name', 'uuid', 'type', 'replicaCount', 'bricks', 'status', 'options', 'version', 'createdAt', 'updatedAt'],
  properties: {
    name: str,
    uuid: str,
    type: { type: 'string', enum: ['Distribute', 'Replicate', 'Distributed-Replicate'] },
    replicaCount: { type: 'integer' },
    bricks: { type: 'array', items: str },
    status: { type: 'string', enum: ['Created', 'Started', 'Stopped'] },
    options: { type: 'object', additionalProperties: str },
    version: { type: 'integer' },
    createdAt: str,
    updatedAt: str,
  },
} as const;

const oneResponse = { type: 'object', required: ['rev', 'volume'], properties: { rev: { type: 'integer' }, volume: volumeSchema } } as const;

const listResponse = {
  type: 'object',
  required: ['rev', 'volumes', 'skipped'],
  properties: {
    rev: { type: 'integer' },
    volumes: { type: 'array', items: volumeSchema },
    /** Info keys whose value is not a volume record. */
    skipped: { type: 'array', items: { type: 'object', required: ['key', 'reason'], properties: { key: str, reason: str } } },
  },
} as const;

const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

// Shapes only: names, bricks and options are checked by the library, with its messages.
const nameParams = { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string', minLength: 1 } } } as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'bricks'],
  properties: {
    name: { type: 'string', minLength: 1 },
    replica: { type: 'integer' },
    bricks: { type: 'array', minItems: 1, maxItems: BRICKS_MAX, items: str },
  },
} as const;

const optionBody = {
  type: 'object',
  additionalProperties: false,
  required: ['key', 'value'],
  properties: { key: { type: 'string', minLength: 1 }, value: { type: 'string', minLength: 1, maxLength: OPTION_VALUE_BYTES_MAX } },
} as const;

interface CreateBody {
  name: string;
  replica?: number;
  bricks: string[];
}

type NameParams = { Params: { name: string } };

const one = (c: VolumeChange): { rev: number; volume: VolumeChange['info'] } => ({ rev: c.rev, volume: c.info });

export const volumeInfoRoutes: FastifyPluginAsync<{ volume: Volume }> = async (app, { volume }) => {
  app.get('/v1/volumes', { schema: { querystring: noQuery, response: { 200: listResponse } } }, async () => {
    const l = await listVolumes(volume);
    return { rev: l.rev, volumes: l.volumes, skipped: l.skipped };
  });

  app.post<{ Body: CreateBody }>('/v1/volumes', { schema: { querystring: noQuery, body: createBody, response: { 201: oneResponse } } }, async (req, reply) => {
    const b = req.body;
    const c = await createVolume(volume, { name: b.name, bricks: b.bricks, ...(b.replica !== undefined ? { replica: b.replica } : {}) });
    return reply.status(201).header('location', `/v1/volumes/${encodeURIComponent(c.info.name)}`).send(one(c));
  });

  const read = { schema: { params: nameParams, querystring: noQuery, response: { 200: oneResponse } } };
  app.get<NameParams>('/v1/volumes/:name', read, async (req) => one(await getVolume(volume, req.params.name)));
  app.post<NameParams>('/v1/volumes/:name/start', read, async (req) => one(await startVolume(volume, req.params.name)));
  app.post<NameParams>('/v1/volumes/:name/stop', read, async (req) => one(await stopVolume(volume, req.params.name)));
  // The answer holds the record that was removed.
  app.delete<NameParams>('/v1/volumes/:name', read, async (req) => one(await deleteVolume(volume, req.params.name)));

  app.put<NameParams & { Body: { key: string; value: string } }>(
    '/v1/volumes/:name/options',
    { schema: { params: nameParams, querystring: noQuery, body: optionBody, response: { 200: oneResponse } } },
    async (req) => one(await setVolumeOption(volume, req.params.name, req.body.key, req.body.value)),
  );
};
