// The txn builder: compares and branches as etcd3's users write them, on the embedded volume.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { op, openVolume, text, type EmbeddedVolume } from '../../src/client/index.js';

let dir: string;
let vol: EmbeddedVolume;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-txnb-'));
  vol = await openVolume({ dir, fsync: false, leaseMs: 10 });
});

afterAll(async () => {
  await vol.close();
  await rm(dir, { recursive: true, force: true });
});

describe('txn builder', () => {
  it('takes a leader key only when absent (create-if-absent), else reads it', async () => {
    const first = await vol.if('/leader', 'exists', '=', false).then(op.put('/leader', 'node-1')).else(op.get('/leader')).commit();
    expect(first.succeeded).toBe(true);
    const second = await vol.if('/leader', 'exists', '=', false).then(op.put('/leader', 'node-2')).else(op.get('/leader')).commit();
    expect(second.succeeded).toBe(false);
    const got = second.results[0];
    expect(got?.op === 'get' && text.decode(got.kv?.value ?? new Uint8Array())).toBe('node-1');
  });

  it('compare-and-swap on version and value, several ops at one rev', async () => {
    const { rev } = await vol.put('/cfg', 'v1');
    const r = await vol
      .if('/cfg', 'version', '=', 1)
      .and('/cfg', 'value', '=', 'v1')
      .and('/cfg', 'modRev', '=', rev)
      .then(op.put('/cfg', 'v2', { prevKv: true }), op.put('/cfg-log/1', 'v1 -> v2'), op.range('/cfg-log/'))
      .commit();
    expect(r.succeeded).toBe(true);
    expect(r.results.map((x) => x.op)).toEqual(['put', 'put', 'range']);
    const range = r.results[2];
    expect(range?.op === 'range' && range.count).toBe(1); // later ops see earlier writes of the branch
    expect((await vol.get('/cfg')).kv).toMatchObject({ version: 2, modRev: r.rev });
    expect((await vol.get('/cfg-log/1')).kv?.modRev).toBe(r.rev);
    const stale = await vol.if('/cfg', 'version', '=', 1).then(op.delete('/cfg')).commit();
    expect(stale.succeeded).toBe(false);
    expect((await vol.get('/cfg')).kv).toBeDefined();
  });

  it('newTxn without compares always runs its then branch', async () => {
    const r = await vol.newTxn().then(op.put('/x', '1'), op.delete({ prefix: '/cfg-log/' })).commit();
    expect(r.succeeded).toBe(true);
    expect(r.results[1]).toMatchObject({ op: 'delete', deleted: 1 });
  });
});
