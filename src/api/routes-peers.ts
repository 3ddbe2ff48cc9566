// GET /v1/peers: the cluster map (DESIGN §8), as `coordvol peer status` shows it.
//
//   curl -s localhost:7421/v1/peers
//   {"rev":17,"peers":[{"uuid":"…","hostname":"n1","address":"10.0.0.1:7420","role":"master",
//     "brick":"10.0.0.1:/data/brick","probedAt":"…","state":"Connected","alive":{…}}],"unprobed":[],"skipped":[]}
import type { FastifyPluginAsync } from 'fastify';
import type { Volume } from '../client/volume.js';
import { readClusterMap } from '../mgmt/cluster-map.js';

const str = { type: 'string' } as const;

const aliveSchema = {
  type: 'object',
  required: ['uuid', 'address', 'pid', 'startedAt'],
  properties: { uuid: str, address: str, pid: { type: 'integer' }, startedAt: str },
} as const;

// The response schema is also the serializer's: a field not listed here is not sent.
const peersResponse = {
  type: 'object',
  required: ['rev', 'peers', 'unprobed', 'skipped'],
  properties: {
    rev: { type: 'integer' },
    peers: {
      type: 'array',
      items: {
        type: 'object',
        required: ['uuid', 'hostname', 'address', 'role', 'probedAt', 'state'],
        properties: {
          uuid: str,
          hostname: str,
          address: str,
          role: { type: 'string', enum: ['master', 'peer'] },
          brick: str,
          probedAt: str,
          state: { type: 'string', enum: ['Connected', 'Disconnected'] },
          alive: aliveSchema,
        },
      },
    },
    /** Running daemons with no peer record (not probed, or detached while running). */
    unprobed: { type: 'array', items: aliveSchema },
    /** Keys under /cluster/peers/ or /cluster/alive/ whose value is not a valid record. */
    skipped: { type: 'array', items: { type: 'object', required: ['key', 'reason'], properties: { key: str, reason: str } } },
  },
} as const;

const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

export const peerRoutes: FastifyPluginAsync<{ volume: Volume }> = async (app, { volume }) => {
  app.get('/v1/peers', { schema: { querystring: noQuery, response: { 200: peersResponse } } }, async () => {
    const m = await readClusterMap(volume);
    return { rev: m.rev, peers: m.peers, unprobed: m.unprobed, skipped: m.skipped };
  });
};
