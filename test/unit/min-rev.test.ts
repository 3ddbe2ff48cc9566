// Serializable reads carry minRev (DESIGN §3): the caller's own highest seen rev, through the
// library and the HTTP API. A brick below it waits until the deadline, then answers `behind`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/app.js';
import { openVolume, type EmbeddedVolume } from '../../src/client/index.js';
import { refusal } from './helpers.js';

let dir: string;
let vol: EmbeddedVolume;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-minrev-'));
  vol = await openVolume({ dir, fsync: false, leaseMs: 10, timeoutMs: 300 });
  await vol.put('/a', '1');
});

afterAll(async () => {
  await vol.close();
  await rm(dir, { recursive: true, force: true });
});

describe('minRev on serializable reads', () => {
  it('the library serves a minRev at or below the commit point, and answers behind above it', async () => {
    const { rev } = await vol.put('/a', '2');
    expect((await vol.get('/a', { consistency: 'serializable', minRev: rev })).rev).toBeGreaterThanOrEqual(rev);
    const t0 = performance.now();
    const err = await refusal(vol.get('/a', { consistency: 'serializable', minRev: rev + 1000 }));
    expect(err.code).toBe('behind');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250); // it waited for the deadline
  });

  it('the HTTP API takes minRev as a query parameter', async () => {
    const app = buildApi({ volume: vol });
    try {
      const { rev } = await vol.put('/b', 'x');
      const ok = await app.inject({ method: 'GET', url: `/v1/kv/b?consistency=serializable&minRev=${rev}` });
      expect(ok.statusCode).toBe(200);
      const behind = await app.inject({ method: 'GET', url: `/v1/range?prefix=/&consistency=serializable&minRev=${rev + 1000}` });
      expect(behind.statusCode).toBe(503);
      expect(behind.json()).toMatchObject({ error: { code: 'behind' } });
      expect((await app.inject({ method: 'GET', url: '/v1/kv/b?minRev=-1' })).statusCode).toBe(400);
    } finally {
      await app.close();
    }
  });
});
