// Sessions, ephemeral and sequential keys on one brick (DESIGN §5): bounds, expiry in one entry,
// keepalives, close, ownership, sequential counters, restarts, and the reserved records they use.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openVolume, type EmbeddedVolume } from '../../src/client/index.js';
import { asRev, asSessionId, type Rev } from '../../src/common/ids.js';
import { startMaster } from '../../src/daemon/master.js';
import { refusal } from './helpers.js';

vi.setConfig({ testTimeout: 30_000 }); // several tests wait out a ttl or two

let dir: string;
let vol: EmbeddedVolume;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-sessions-'));
  vol = await openVolume({ dir: join(dir, 'a'), fsync: false, leaseMs: 10 });
});

afterAll(async () => {
  await vol.close();
  await rm(dir, { recursive: true, force: true });
});

/** The rev at which `key` stopped existing (it existed at `from`), found through history reads. */
async function deletedAt(v: EmbeddedVolume, key: string, from: Rev, to: Rev): Promise<Rev> {
  let lo = from; // exists at lo
  let hi = to; // absent at hi
  expect((await v.get(key, { rev: lo })).kv).toBeDefined();
  expect((await v.get(key, { rev: hi })).kv).toBeUndefined();
  while (hi - lo > 1) {
    const mid = asRev(Math.floor((lo + hi) / 2));
    if ((await v.get(key, { rev: mid })).kv) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Stops a library session's keepalives, as a client that died would. */
function silence(s: object): void {
  const t = s as { closing: boolean; timer: NodeJS.Timeout | undefined };
  t.closing = true;
  clearTimeout(t.timer);
}

describe('session bounds', () => {
  it('refuses a ttl below max(2 s, 4·leaseMs) or above 1 h, changing nothing', async () => {
    const before = (await vol.get('/nothing')).rev;
    expect((await refusal(vol.openSession({ ttlMs: 1_999 }))).code).toBe('invalid-argument');
    expect((await refusal(vol.openSession({ ttlMs: 3_600_001 }))).code).toBe('invalid-argument');
    expect((await vol.get('/nothing')).rev).toBe(before);
    const v2 = await openVolume({ dir: join(dir, 'lease'), fsync: false, leaseMs: 600 });
    try {
      const err = await refusal(v2.openSession({ ttlMs: 2_000 }));
      expect(err.code).toBe('invalid-argument');
      expect(err.message).toContain('2400');
      const s = await v2.openSession({ ttlMs: 2_400 });
      await s.close();
    } finally {
      await v2.close();
    }
  });
});

describe('ephemeral keys', () => {
  it('live while keepalives flow, listed with their session', async () => {
    const s = await vol.openSession({ ttlMs: 2_000, owner: 'test-owner' });
    await vol.put('/eph/a', '1', { session: s });
    await vol.put('/eph/b', '2', { session: s.id });
    expect((await vol.get('/eph/a')).kv?.session).toBe(s.id);
    await sleep(3_000); // past the ttl: keepalives every ttl/3 keep it
    expect(s.isLost).toBe(false);
    expect((await vol.range('/eph/')).count).toBe(2);
    const listed = (await vol.sessions()).sessions.find((x) => x.id === s.id);
    expect(listed).toMatchObject({ ttlMs: 2_000, owner: 'test-owner', keys: 2, state: 'active' });
    expect(listed?.remainingMs).toBeGreaterThan(0);
    expect(listed?.remainingMs).toBeLessThanOrEqual(2_000);
    await s.close();
    expect((await vol.range('/eph/')).count).toBe(0);
    expect((await vol.sessions()).sessions.some((x) => x.id === s.id)).toBe(false);
  });

  it('expire with their session in one entry, within ttl + ttl/3 of the last keepalive', async () => {
    const s = await vol.openSession({ ttlMs: 2_000 });
    await vol.put('/exp/a', '1', { session: s });
    await vol.put('/exp/b', '2', { session: s });
    const { rev: putRev } = await vol.put('/exp/c', 'persistent');
    const silencedAt = performance.now();
    silence(s);
    while ((await vol.get('/exp/a')).kv) await sleep(20);
    const took = performance.now() - silencedAt;
    expect(took).toBeLessThanOrEqual(2_000 + 2_000 / 3);
    expect(took).toBeGreaterThan(2_000 * 0.5); // never before the last keepalive's deadline could pass
    const now = (await vol.get('/exp/a')).rev;
    const ra = await deletedAt(vol, '/exp/a', putRev, now);
    const rb = await deletedAt(vol, '/exp/b', putRev, now);
    expect(ra).toBe(rb);
    expect((await vol.get('/exp/c')).kv).toBeDefined();
    expect((await vol.range(`/_coordvol/owned/`)).kvs.filter((k) => k.key.includes(String(s.id).padStart(20, '0')))).toHaveLength(0);
    // A put naming the dead session fails and changes nothing.
    const before = (await vol.get('/exp/a')).rev;
    expect((await refusal(vol.put('/exp/d', 'x', { session: s.id }))).code).toBe('session-not-found');
    expect((await vol.get('/exp/d')).kv).toBeUndefined();
    expect((await vol.get('/exp/d')).rev).toBe(before);
    await s.close(); // closing a lost session does nothing
  });

  it('a put naming a session never opened fails with session-not-found', async () => {
    expect((await refusal(vol.put('/x', '1', { session: 999_999 }))).code).toBe('session-not-found');
    expect((await vol.get('/x')).kv).toBeUndefined();
  });

  it('a key belongs to the session of its latest put', async () => {
    const s1 = await vol.openSession({ ttlMs: 2_000 });
    const s2 = await vol.openSession({ ttlMs: 2_000 });
    await vol.put('/own/moved', '1', { session: s1 });
    await vol.put('/own/moved', '2', { session: s2 }); // now s2's
    await vol.put('/own/kept', '1', { session: s1 });
    await vol.put('/own/kept', '2'); // now persistent
    await vol.put('/own/gone', '1', { session: s1 });
    await vol.delete('/own/gone');
    await s1.close();
    expect((await vol.get('/own/moved')).kv?.session).toBe(s2.id);
    expect((await vol.get('/own/kept')).kv?.session).toBe(0);
    expect((await vol.sessions()).sessions.find((x) => x.id === s2.id)?.keys).toBe(1);
    await s2.close();
    expect((await vol.get('/own/moved')).kv).toBeUndefined();
    expect((await vol.get('/own/kept')).kv).toBeDefined();
  });

  it('txns put ephemeral and sequential keys too, all-or-nothing', async () => {
    const s = await vol.openSession({ ttlMs: 2_000 });
    const r = await vol.txn({ success: [{ op: 'put', key: '/tx/seq-', value: new Uint8Array([1]), sequential: true, session: s.id }, { op: 'put', key: '/tx/seq-', value: new Uint8Array([2]), sequential: true }] });
    const keys = r.results.map((x) => (x.op === 'put' ? x.key : ''));
    expect(keys[0]).not.toBe(keys[1]);
    expect((keys[0] as string) < (keys[1] as string)).toBe(true);
    const before = (await vol.get('/tx/none')).rev;
    await s.close();
    const afterClose = (await vol.get('/tx/none')).rev;
    expect(afterClose).toBe(before + 1); // the close is one entry
    expect((await refusal(vol.txn({ success: [{ op: 'put', key: '/tx/a', value: new Uint8Array([1]) }, { op: 'put', key: '/tx/b', value: new Uint8Array([1]), session: s.id }] }))).code).toBe('session-not-found');
    expect((await vol.get('/tx/a')).kv).toBeUndefined();
  });
});

describe('sequential keys', () => {
  it('are unique and increasing under 50 concurrent writers', async () => {
    const got = await Promise.all(Array.from({ length: 50 }, async () => {
      const keys: string[] = [];
      for (let i = 0; i < 4; i++) keys.push((await vol.put('/seq/job-', 'x', { sequential: true })).key);
      return keys;
    }));
    const all = got.flat();
    expect(new Set(all).size).toBe(200);
    for (const keys of got) for (let i = 1; i < keys.length; i++) expect((keys[i] as string) > (keys[i - 1] as string)).toBe(true);
    for (const k of all) expect(k).toMatch(/^\/seq\/job-\d{20}$/);
    // Key order is rev order: the range lists them in the order they were made.
    const listed = (await vol.range('/seq/')).kvs;
    for (let i = 1; i < listed.length; i++) expect((listed[i]?.modRev ?? 0) > (listed[i - 1]?.modRev ?? 0)).toBe(true);
  });

  it('refuses a key that its counter would take over the key limit', async () => {
    expect((await refusal(vol.put('/' + 'k'.repeat(4_090), 'x', { sequential: true }))).code).toBe('key-too-large');
  });
});

describe('the reserved records', () => {
  it('stay out of ranges and children that merely span them, and are read-only', async () => {
    const s = await vol.openSession({ ttlMs: 2_000 });
    await vol.put('/vis/a', '1', { session: s });
    const all = await vol.range({ prefix: '/', limit: 10_000 });
    expect(all.kvs.some((k) => k.key.startsWith('/_coordvol/'))).toBe(false);
    expect((await vol.range({ prefix: '/', children: true, limit: 10_000 })).children).not.toContain('_coordvol');
    expect((await vol.range('/_coordvol/sessions/')).count).toBeGreaterThan(0);
    expect((await refusal(vol.put(`/_coordvol/sessions/${String(s.id).padStart(20, '0')}`, 'x'))).code).toBe('reserved-key');
    await vol.delete({ prefix: '/' });
    expect((await vol.range('/_coordvol/sessions/')).count).toBeGreaterThan(0); // a range delete skips them
    await s.close();
  });
});

describe('session fops', () => {
  it('a retried open finds its session; keepalive and close of an ended one get session-expired', async () => {
    const m = await startMaster({ dir: join(dir, 'fops'), fsync: false, leaseMs: 10 });
    try {
      const open = { ttlMs: 2_000, nonce: 'ab'.repeat(16) };
      const a = await m.top.call('sessionOpen', {}, open);
      const b = await m.top.call('sessionOpen', {}, open);
      expect(b.id).toBe(a.id);
      expect((await m.top.call('keepalive', {}, { id: a.id })).ttlMs).toBe(2_000);
      await m.top.call('sessionClose', {}, { id: a.id });
      expect((await refusal(m.top.call('keepalive', {}, { id: a.id }))).code).toBe('session-expired');
      expect((await refusal(m.top.call('sessionClose', {}, { id: a.id }))).code).toBe('session-expired');
      expect((await refusal(m.top.call('sessionOpen', {}, { ttlMs: 2_000, nonce: 'not-hex' }))).code).toBe('invalid-argument');
      expect((await refusal(m.top.call('keepalive', {}, { id: -1 as never }))).code).toBe('invalid-argument');
      // An open retried after its session ended makes a new session.
      expect((await m.top.call('sessionOpen', {}, open)).id).not.toBe(a.id);
    } finally {
      await m.close();
    }
  });

  it('an idle session is marked active again by a keepalive, and its keys stay', async () => {
    const m = await startMaster({ dir: join(dir, 'idle'), fsync: false, leaseMs: 10 });
    try {
      const { id } = await m.top.call('sessionOpen', {}, { ttlMs: 2_000, nonce: 'cd'.repeat(16) });
      await m.top.call('put', {}, { key: '/idle/k', value: new Uint8Array([1]), session: id });
      await sleep(1_300); // no keepalive for > ttl/2: marked idle
      const listed = (await m.top.call('sessions', {}, {})).sessions.find((x) => x.id === id);
      expect(listed?.state).toBe('idle');
      await m.top.call('keepalive', {}, { id });
      expect((await m.top.call('sessions', {}, {})).sessions.find((x) => x.id === id)?.state).toBe('active');
      await sleep(1_300);
      await m.top.call('keepalive', {}, { id });
      await sleep(1_300);
      await m.top.call('keepalive', {}, { id }); // 3.9 s after the open, alive all along
      expect((await m.top.call('get', {}, { key: '/idle/k' })).kv?.session).toBe(id);
    } finally {
      await m.close();
    }
  });
});

describe('sessions across a restart', () => {
  it('a session whose keepalives resume within its ttl survives; one without expires a ttl after the restart', async () => {
    const d = join(dir, 'restart');
    let m = await startMaster({ dir: d, fsync: false, leaseMs: 10 });
    const live = await m.top.call('sessionOpen', {}, { ttlMs: 3_000, nonce: '11'.repeat(16) });
    const dead = await m.top.call('sessionOpen', {}, { ttlMs: 3_000, nonce: '22'.repeat(16) });
    await m.top.call('put', {}, { key: '/r/live', value: new Uint8Array([1]), session: live.id });
    await m.top.call('put', {}, { key: '/r/dead', value: new Uint8Array([1]), session: dead.id });
    await m.close();
    await sleep(500);
    m = await startMaster({ dir: d, fsync: false, leaseMs: 10 });
    const restartedAt = performance.now();
    try {
      // Both are idle now: the log's clock gives them a ttl from the new epoch.
      expect((await m.top.call('sessions', {}, {})).sessions.map((x) => x.state)).toEqual(['idle', 'idle']);
      const keep = setInterval(() => void m.top.call('keepalive', {}, { id: live.id }).catch(() => undefined), 1_000);
      try {
        await m.top.call('keepalive', {}, { id: live.id });
        while ((await m.top.call('get', {}, { key: '/r/dead' })).kv) await sleep(20);
        const took = performance.now() - restartedAt;
        expect(took).toBeGreaterThan(2_000); // not before its ttl (less the time the brick was down)
        expect(took).toBeLessThan(3_000 + 1_000);
        expect((await m.top.call('get', {}, { key: '/r/live' })).kv?.session).toBe(live.id);
      } finally {
        clearInterval(keep);
      }
    } finally {
      await m.close();
    }
  });
});

describe('session ids', () => {
  it('are the rev of the entry that opened them', async () => {
    const before = (await vol.get('/none')).rev;
    const s = await vol.openSession({ ttlMs: 2_000 });
    expect(s.id).toBe(asSessionId(before + 1));
    await s.close();
  });
});
