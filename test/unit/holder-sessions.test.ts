// The holder's session rules (DESIGN §5) on a simulated clock: the pure Holder driven directly,
// with a one-brick "log" that applies what it is sent, so every timing below is exact.
import { describe, expect, it } from 'vitest';
import { asSessionId } from '../../src/common/ids.js';
import { sessionKey } from '../../replication/sessions.js';
import type { Entry } from '../../store/types.js';
import { nonce, Rig } from './fixtures/holder-rig.js';

describe('holder session timer', () => {
  it('expires an active session at its deadline, not a tick before', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(1));
    r.advance(1_950);
    expect(r.alive(id)).toBe(true);
    r.advance(100);
    expect(r.alive(id)).toBe(false);
  });

  it('keepalives every ttl/3 keep a session active and write nothing', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(3_000, nonce(2));
    const entries = r.log.length;
    for (let i = 0; i < 10; i++) {
      r.advance(1_000);
      expect(r.write({ type: 'keepalive', args: { id } }).ok).toBe(true);
    }
    expect(r.alive(id)).toBe(true);
    expect(r.modeOf(id)).toBe('active');
    expect(r.log.length).toBe(entries); // no entry for keepalives of an active session
  });

  it('marks a silent session idle after ttl/2 and expires it on the session clock', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(3));
    r.advance(1_050);
    expect(r.modeOf(id)).toBe('idle');
    r.advance(900);
    expect(r.alive(id)).toBe(true);
    r.advance(100);
    expect(r.alive(id)).toBe(false);
  });

  it('a keepalive of an idle session marks it active in an entry, and its deadline moves', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(4));
    r.advance(1_100);
    expect(r.modeOf(id)).toBe('idle');
    const before = r.log.length;
    expect(r.write({ type: 'keepalive', args: { id } }).ok).toBe(true);
    expect(r.log.length).toBe(before + 1);
    expect(r.modeOf(id)).toBe('active');
    r.advance(1_900);
    expect(r.alive(id)).toBe(true);
  });

  it('a retried open of an idle session marks it active in an entry, like a keepalive (found by test/sim)', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(6));
    r.advance(1_100);
    expect(r.modeOf(id)).toBe('idle');
    const before = r.log.length;
    // The client never got the first answer and sends the same open again: it finds its session.
    const again = r.write({ type: 'session-open', args: { ttlMs: 2_000, nonce: nonce(6) } });
    expect(again.ok && again.result.type === 'session-open' && again.result.result.id).toBe(id);
    expect(r.log.length).toBe(before + 1);
    expect(r.modeOf(id)).toBe('active');
    r.advance(1_900);
    expect(r.alive(id)).toBe(true);
  });

  it('a keepalive that arrived before the expiry but is evaluated after the tick keeps the session', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(5));
    r.advance(1_990, 10);
    expect(r.modeOf(id)).toBe('idle'); // idleUntil = sclock 2,000
    const ka = r.enqueue({ type: 'keepalive', args: { id } }); // received at 1,990, still queued
    r.advance(20, 10); // the timer finds it due at 2,000 and queues an expiry behind the keepalive
    expect(r.reply(ka)?.ok).toBe(true);
    expect(r.alive(id)).toBe(true);
    expect(r.modeOf(id)).toBe('active');
  });

  it('ends a session in one entry with its keys and ownership index', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(6));
    for (const k of ['/a', '/b', '/c']) expect(r.write({ type: 'put', args: { key: k, value: new Uint8Array([1]), session: id } }).ok).toBe(true);
    const before = r.log.length;
    r.advance(2_100);
    const ends = r.log.slice(before).filter((e) => e.effects.some((fx) => fx.t === 'del' && fx.key === '/a'));
    expect(ends).toHaveLength(1);
    const dels = (ends[0] as Entry).effects.filter((fx) => fx.t === 'del').map((fx) => (fx as { key: string }).key);
    expect(dels).toEqual(expect.arrayContaining(['/a', '/b', '/c', sessionKey(id)]));
    expect(r.state.get('/a')).toBeUndefined();
  });
});

describe('sessions across holders (restarts, failovers)', () => {
  it('a new holder makes every session idle with a full ttl on the session clock', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(7));
    r.advance(500);
    r.startHolder(); // the master restarts at once
    expect(r.modeOf(id)).toBe('idle');
    r.advance(1_950);
    expect(r.alive(id)).toBe(true); // a full ttl from the epoch start, not from the last keepalive
    r.advance(100);
    expect(r.alive(id)).toBe(false);
  });

  it('repeated epoch starts never keep a dead session alive', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(8));
    r.startHolder(); // idle from here: idleUntil = this epoch-start's sclock + ttl
    for (let i = 0; i < 5; i++) {
      r.advance(300);
      r.startHolder();
    }
    expect(r.alive(id)).toBe(true);
    r.advance(600); // 1,500 + 600 > 2,000 since the first epoch start after its last mark
    expect(r.alive(id)).toBe(false);
  });

  it('the session clock never runs ahead: entries carry it, and a new holder starts from the last one', () => {
    const r = new Rig();
    r.startHolder();
    r.advance(1_000);
    r.write({ type: 'put', args: { key: '/x', value: new Uint8Array([1]) } });
    const last = r.log.at(-1) as Entry;
    expect(last.sclock).toBe(1_000);
    r.now += 60_000; // the master was down a minute: the clock does not count that
    r.startHolder(250);
    expect((r.log.at(-1) as Entry).sclock).toBe(1_250);
  });

  it('a session opened before a restart can be kept alive by a keepalive to the new holder', () => {
    const r = new Rig();
    r.startHolder();
    const id = r.open(2_000, nonce(9));
    r.startHolder();
    r.advance(1_000);
    expect(r.write({ type: 'keepalive', args: { id } }).ok).toBe(true);
    expect(r.modeOf(id)).toBe('active');
    r.advance(1_500);
    expect(r.alive(id)).toBe(true);
    expect(r.write({ type: 'keepalive', args: { id: asSessionId(12345) } }).ok).toBe(false);
  });
});
