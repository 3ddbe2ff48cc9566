// Bad input gets a typed error (stable code + message) and changes nothing: the volume's rev
// and contents are the same after every refused request.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { refusal } from './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCoordError, openVolume, type EmbeddedVolume } from '../../src/client/index.js';
import type { FopArgs, FopName } from '../../translators/fops.js';

let dir: string;
let vol: EmbeddedVolume;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-bad-input-'));
  vol = await openVolume({ dir, fsync: false, leaseMs: 10 });
  await vol.put('/a', 'one');
  await vol.put('/b', 'two');
});

afterAll(async () => {
  await vol.close();
  await rm(dir, { recursive: true, force: true });
});

/** Everything a client can observe: the rev and every key with its metadata. */
async function snapshot(): Promise<unknown> {
  const r = await vol.range({ prefix: '' });
  return { rev: r.rev, kvs: r.kvs.map((kv) => ({ ...kv, value: Buffer.from(kv.value ?? []).toString('hex') })) };
}


/** Calls a fop on the volume's top translator directly: arguments a typed client cannot send. */
function raw<F extends FopName>(fop: F, args: unknown): Promise<unknown> {
  return (vol as unknown as { caller: (f: F, c: object, a: FopArgs<F>) => Promise<unknown> }).caller(fop, {}, args as FopArgs<F>);
}

const bigKey = '/' + 'k'.repeat(4096);
const cases: readonly [string, () => Promise<unknown>, string, RegExp][] = [
  ['empty key', () => vol.put('', 'x'), 'invalid-argument', /must not be empty/],
  ['key over 4 KiB', () => vol.put(bigKey, 'x'), 'key-too-large', /4097 bytes, over the 4096-byte limit/],
  ['key with NUL', () => vol.put('/a\u0000b', 'x'), 'invalid-argument', /NUL/],
  ['value over 1 MiB', () => vol.put('/big', Buffer.alloc(1024 * 1024 + 1)), 'value-too-large', /over the 1048576-byte limit/],
  ['put under /_coordvol/', () => vol.put('/_coordvol/config', 'x'), 'reserved-key', /read-only to clients/],
  ['delete of a reserved key', () => vol.delete('/_coordvol/config'), 'reserved-key', /read-only/],
  ['txn put under /_coordvol/', () => vol.txn({ success: [{ op: 'put', key: '/_coordvol/x', value: Buffer.from('x') }] }), 'reserved-key', /read-only/],
  ['unknown compare target', () => raw('txn', { compare: [{ key: '/a', target: 'lease', op: '=', value: 1 }], success: [], failure: [] }), 'invalid-argument', /target "lease" is unknown/],
  ['unknown compare op', () => raw('txn', { compare: [{ key: '/a', target: 'version', op: '>=', value: 1 }], success: [], failure: [] }), 'invalid-argument', /op ">=" is unknown/],
  ['unknown txn op', () => raw('txn', { compare: [], success: [{ op: 'incr', key: '/a' }], failure: [] }), 'invalid-argument', /op "incr" is unknown/],
  ['a key put twice in one txn', () => vol.txn({ success: [{ op: 'put', key: '/c', value: Buffer.from('1') }, { op: 'put', key: '/c', value: Buffer.from('2') }] }), 'invalid-argument', /twice/],
  ['a read at a future rev', () => vol.get('/a', { rev: 1_000_000 }), 'future-rev', /above the current rev/],
  ['a range at a future rev', () => vol.range({ prefix: '/', rev: 1_000_000 }), 'future-rev', /above the current rev/],
  ['compact above the current rev', () => vol.compact(1_000_000), 'future-rev', /above commitRev/],
  ['a value that is not bytes', () => raw('put', { key: '/a', value: 'text' }), 'invalid-argument', /bytes/],
  ['a selector with two of key/prefix/start', () => raw('range', { key: '/a', prefix: '/' }), 'invalid-argument', /exactly one/],
  ['an end below the start', () => vol.range({ start: '/b', end: '/a' }), 'invalid-argument', /end must be above start/],
  ['a limit of zero', () => vol.range({ prefix: '/', limit: 0 }), 'invalid-argument', /limit/],
  ['children without a prefix', () => raw('range', { start: '/', children: true }), 'invalid-argument', /children needs a prefix/],
  ['a negative rev', () => raw('get', { key: '/a', rev: -1 }), 'invalid-argument', /non-negative integer/],
  ['an unknown consistency', () => raw('get', { key: '/a', consistency: 'eventual' }), 'invalid-argument', /consistency/],
];

describe('bad input is refused with a typed error and changes nothing', () => {
  it.each(cases)('%s', async (_name, call, code, message) => {
    const before = await snapshot();
    const err = await refusal(call());
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(await snapshot()).toEqual(before);
  });

  it('a read below the compact rev is refused with the compact rev', async () => {
    const { rev } = await vol.put('/a', 'three');
    await vol.compact(rev);
    const before = await snapshot();
    const err = await refusal(vol.get('/a', { rev: rev - 1 }));
    expect(err.code).toBe('compacted');
    expect(err.message).toMatch(new RegExp(`compactRev ${rev}`));
    expect((await refusal(vol.compact(rev))).code).toBe('compacted');
    expect(await snapshot()).toEqual(before);
  });

  it('an in-process txn without its lists is a txn with empty lists, not a crash', async () => {
    // Regression: evaluation once read a missing `compare` and threw inside the batch flush.
    const r = (await raw('txn', { success: [{ op: 'get', key: '/a' }] })) as { succeeded: boolean; results: unknown[] };
    expect(r.succeeded).toBe(true);
    expect(r.results).toHaveLength(1);
    expect((await vol.put('/after', 'still serving')).rev).toBeGreaterThan(0);
  });

  it('a range of large values stops at the byte cap with more: true', async () => {
    const big = Buffer.alloc(1024 * 1024, 1);
    for (let i = 0; i < 20; i++) await vol.put(`/big/${String(i).padStart(2, '0')}`, big);
    const r = await vol.range({ prefix: '/big/' });
    expect(r.count).toBe(20);
    expect(r.more).toBe(true);
    expect(r.kvs.length).toBeGreaterThan(0);
    expect(r.kvs.length).toBeLessThan(20);
    const rest = await vol.range({ start: `${r.kvs[r.kvs.length - 1]?.key ?? ''}\u0001`, end: '/big0' });
    expect(r.kvs.length + rest.kvs.length).toBe(20);
    await vol.delete({ prefix: '/big/' });
  });

  it('a range delete spanning /_coordvol/ deletes the client keys only', async () => {
    await vol.put('/z', 'last');
    const r = await vol.delete({ prefix: '' });
    expect(r.deleted).toBeGreaterThan(0);
    expect((await vol.range({ prefix: '' })).count).toBe(0);
  });
});
