// The lock and election recipes (issue 4): their contracts in-process first — order, fencing,
// waiting on the predecessor only, abort, loss — then against child processes that are SIGKILLed:
// 20 lock contenders keep mutual exclusion on a fenced resource while holders and waiters die,
// and an election keeps one leader at a time through a resignation and a killed leader.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { election, lock, type KeyValue, type RemoteVolume } from '../../src/client/index.js';
import { keySessions, refusal, startNetMaster, type NetMaster } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CONTENDER = join(ROOT, 'test/unit/fixtures/lock-contender.ts');
const CANDIDATE = join(ROOT, 'test/unit/fixtures/election-candidate.ts');
const TTL = 2_000;

let net: NetMaster;
let server: string;
let vol: RemoteVolume;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const text = (kv: KeyValue | undefined): string | undefined => (kv?.value ? Buffer.from(kv.value).toString() : undefined);

beforeAll(async () => {
  net = await startNetMaster('coordvol-recipes-');
  ({ server, vol } = net);
});

afterAll(() => net?.close());

/** Whether `p` is still pending after `ms`. */
async function pendingAfter(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(() => (settled = true), () => (settled = true));
  await sleep(ms);
  return !settled;
}

describe('lock, in-process', () => {
  it('refuses bad names and options with invalid-argument, writing nothing', async () => {
    const before = (await vol.get('/nothing')).rev;
    for (const name of ['', 'a/b', '/x']) expect((await refusal(lock(vol, name))).code).toBe('invalid-argument');
    const s = await vol.openSession({ ttlMs: TTL });
    expect((await refusal(lock(vol, 'x', { session: s, ttlMs: TTL }))).code).toBe('invalid-argument');
    expect((await refusal(lock(vol, 'x', { ttlMs: 10 }))).code).toBe('invalid-argument'); // below the session minimum
    await s.close();
    expect((await refusal(lock(vol, 'x', { session: s }))).code).toBe('session-expired');
    expect((await vol.range('/_locks/')).count).toBe(0);
    expect(await keySessions(vol)).toHaveLength(0);
    expect((await vol.get('/nothing')).rev).toBeGreaterThanOrEqual(before);
  });

  it('serializes holders in arrival order with strictly increasing fencing tokens', async () => {
    const a = await lock(vol, 'order', { ttlMs: TTL });
    const b = lock(vol, 'order', { ttlMs: TTL });
    expect(await pendingAfter(b, 300)).toBe(true);
    const c = lock(vol, 'order', { ttlMs: TTL });
    await sleep(100);
    const keys = (await vol.range('/_locks/order/')).kvs;
    expect(keys).toHaveLength(3);
    expect(keys.every((k) => k.session !== 0)).toBe(true); // ephemeral
    expect((await vol.get(a.key)).kv?.createRev).toBe(a.fencingToken);
    await a.unlock();
    const bl = await b;
    expect(bl.fencingToken).toBeGreaterThan(a.fencingToken);
    expect(await pendingAfter(c, 200)).toBe(true);
    await bl.unlock();
    const cl = await c;
    expect(cl.fencingToken).toBeGreaterThan(bl.fencingToken);
    await cl.unlock();
    expect((await vol.range('/_locks/order/')).count).toBe(0);
    expect(await keySessions(vol)).toHaveLength(0); // the locks' own sessions are closed
  });

  it('a waiter whose predecessor dies waits on for the holder (no skipping ahead)', async () => {
    const a = await lock(vol, 'chain', { ttlMs: TTL });
    const sb = await vol.openSession({ ttlMs: TTL });
    const b = lock(vol, 'chain', { session: sb });
    b.catch(() => undefined);
    await sleep(100);
    const c = lock(vol, 'chain', { ttlMs: TTL });
    await sleep(100);
    await sb.close(); // b's key goes; c's predecessor is now a
    expect((await refusal(b)).code).toBe('session-expired');
    expect(await pendingAfter(c, 300)).toBe(true);
    await a.unlock();
    const cl = await c;
    expect(cl.fencingToken).toBeGreaterThan(a.fencingToken);
    await cl.unlock();
  });

  it('an aborted wait rejects with the reason and leaves no key; the holder keeps the lock', async () => {
    const a = await lock(vol, 'abort', { ttlMs: TTL });
    const ac = new AbortController();
    const w = lock(vol, 'abort', { ttlMs: TTL, signal: ac.signal });
    await sleep(100);
    expect((await vol.range('/_locks/abort/')).count).toBe(2);
    ac.abort(new Error('gave up'));
    await expect(w).rejects.toThrow('gave up');
    expect((await vol.range('/_locks/abort/')).kvs.map((k) => k.key)).toEqual([a.key]);
    expect(a.isLost).toBe(false);
    await a.unlock();
  });

  it('reports the lock lost when its key is deleted or its session ends; unlock keeps a given session', async () => {
    const a = await lock(vol, 'lost', { ttlMs: TTL });
    await vol.delete(a.key);
    const why = await a.lost;
    expect(why.code).toBe('not-found');
    expect(a.isLost).toBe(true);
    await a.unlock(); // harmless once lost

    const s = await vol.openSession({ ttlMs: TTL });
    const b = await lock(vol, 'lost', { session: s });
    expect(b.fencingToken).toBeGreaterThan(a.fencingToken);
    await b.unlock();
    expect(s.isLost).toBe(false); // the caller's session outlives the lock
    expect((await vol.range('/_locks/lost/')).count).toBe(0);
    const c = await lock(vol, 'lost', { session: s });
    await s.close();
    expect((await c.lost).code).toBe('session-expired');
    // A lost lock's `lost` resolves; an unlocked one's never does.
    const d = await lock(vol, 'lost', { ttlMs: TTL });
    await d.unlock();
    expect(await pendingAfter(d.lost, 200)).toBe(true);
  });
});

describe('election, in-process', () => {
  it('elects in arrival order, proclaims, hands over on resign, and observe() follows', async () => {
    const e1 = election(vol, 'in');
    const e2 = election(vol, 'in');
    expect(await e1.leader()).toBeUndefined();
    expect((await refusal(e1.proclaim('x'))).code).toBe('invalid-argument');
    const observer = e1.observe();
    const seen: string[] = [];
    const observing = (async () => {
      for await (const kv of observer) seen.push(text(kv) ?? '');
    })();
    const t1 = await e1.campaign('one');
    expect((await refusal(e1.campaign('again'))).code).toBe('invalid-argument');
    const p2 = e2.campaign('two');
    expect(await pendingAfter(p2, 300)).toBe(true);
    expect((await refusal(e2.proclaim('not yet'))).code).toBe('invalid-argument');
    await e1.proclaim('one-b');
    expect(text(await e2.leader())).toBe('one-b');
    await e1.resign();
    const t2 = await p2;
    expect(t2.rev).toBeGreaterThan(t1.rev);
    expect(text(await e1.leader())).toBe('two');
    await sleep(200);
    await observer.cancel();
    await observing;
    expect(seen).toEqual(['one', 'one-b', 'two']);
    await e2.resign();
    expect(await e1.leader()).toBeUndefined();
    expect(await keySessions(vol)).toHaveLength(0);
  });

  it('a resign while still waiting ends the campaign and removes its key', async () => {
    const e1 = election(vol, 'wait', { ttlMs: TTL });
    const e2 = election(vol, 'wait', { ttlMs: TTL });
    await e1.campaign('one');
    const p2 = e2.campaign('two');
    p2.catch(() => undefined);
    await sleep(100);
    expect((await vol.range('/_elections/wait/')).count).toBe(2);
    await e2.resign();
    expect((await refusal(p2)).code).toBe('closed');
    expect((await vol.range('/_elections/wait/')).count).toBe(1);
    // A leader whose key is deleted learns it, and proclaim says so.
    const s = await vol.openSession({ ttlMs: TTL });
    const e3 = election(vol, 'gone', { session: s });
    const t3 = await e3.campaign('three');
    await vol.delete(t3.key);
    expect((await t3.lost).code).toBe('not-found');
    expect((await refusal(e3.proclaim('x'))).code).toBe('not-found');
    await e3.resign();
    await s.close();
    await e1.resign();
  });
});

/** A child process printing JSON lines, with a way to wait for one. */
class Child {
  readonly lines: Record<string, unknown>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters: (() => void)[] = [];
  err = '';

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    net.children.push(proc);
    let buf = '';
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push({ ...(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>), seenAt: Date.now() });
        buf = buf.slice(nl + 1);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    proc.stderr?.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  }

  has(ev: string): Record<string, unknown> | undefined {
    return this.lines.find((l) => l['ev'] === ev);
  }

  async waitFor(ev: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.has(ev);
      if (l) return l;
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${ev} line in ${timeoutMs} ms; stderr: ${this.err}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }
}

function run(script: string, name: string, args: readonly string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, server, join(net.dir, 'secret'), ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  return new Child(name, proc);
}

describe('lock across 20 processes, some SIGKILLed while holding or waiting', () => {
  it('keeps mutual exclusion on a fenced resource, with strictly increasing tokens', async () => {
    const NAME = 'procs';
    const N = 20;
    const HOLD_MS = 150;
    await vol.put(`/mx/${NAME}/token`, '0'.repeat(20));
    const cs = Array.from({ length: N }, (_, i) => run(CONTENDER, `contender ${i}`, [NAME, String(TTL), String(HOLD_MS)]));
    const killedAt = new Map<Child, number>();
    const kill = (c: Child): void => {
      killedAt.set(c, Date.now());
      c.proc.kill('SIGKILL');
    };
    // Kill the holder of the 3rd and the 9th acquisition, as soon as each says it is inside;
    // and, while the first of them is dead and its lock not yet expired, three waiters.
    const acquired = (): Child[] => cs.filter((c) => c.has('acquired')).sort((x, y) => (x.has('acquired')?.['t'] as number) - (y.has('acquired')?.['t'] as number));
    const waitAcquisitions = async (n: number): Promise<Child> => {
      const deadline = Date.now() + 45_000;
      while (acquired().length < n) {
        if (Date.now() > deadline) throw new Error(`only ${acquired().length} acquisitions; stderr: ${cs.map((c) => c.err).join('')}`);
        await sleep(5);
      }
      return acquired()[n - 1] as Child;
    };
    const h3 = await waitAcquisitions(3);
    kill(h3);
    // Waiters: contenders whose key is in the queue and that have not acquired (the lock is
    // stuck on the dead holder for about a ttl: time for late starters to queue up).
    let waiters: Child[] = [];
    for (let i = 0; i < 30 && waiters.length < 3; i++) {
      const queued = new Set<number>((await vol.range('/_locks/procs/')).kvs.map((k) => k.session));
      waiters = cs.filter((c) => c !== h3 && !c.has('acquired') && queued.has(c.has('session')?.['session'] as number)).slice(0, 3);
      if (waiters.length < 3) await sleep(50);
    }
    expect(waiters.length).toBe(3);
    for (const w of waiters) kill(w);
    const h9 = await waitAcquisitions(9);
    kill(h9);
    await Promise.all(cs.map((c) => c.exited));

    expect(cs.flatMap((c) => c.lines.filter((l) => l['ev'] === 'violation').map((l) => ({ who: c.name, ...l })))).toEqual([]);
    for (const c of cs) if (!killedAt.has(c)) expect(await c.exited, c.err).toEqual({ code: 0, signal: null });
    // Every contender but the killed waiters held the lock once; killed holders never released.
    const holders = acquired();
    expect(holders).toHaveLength(N - waiters.length);
    expect(h3.has('releasing')).toBeUndefined();
    expect(h9.has('releasing')).toBeUndefined();
    // Tokens strictly increase in the order of the holds, and the holds do not overlap: each
    // holder was inside from `acquired` until `releasing` (or its kill).
    const holds = holders.map((c) => ({ token: c.has('acquired')?.['token'] as number, from: c.has('acquired')?.['t'] as number, to: (c.has('releasing')?.['t'] as number | undefined) ?? (killedAt.get(c) as number) }));
    for (let i = 1; i < holds.length; i++) {
      const [prev, cur] = [holds[i - 1], holds[i]] as [(typeof holds)[number], (typeof holds)[number]];
      expect(cur.token).toBeGreaterThan(prev.token);
      expect(cur.from).toBeGreaterThanOrEqual(prev.to);
    }
    // The resource's own log agrees: one entry per hold, in token order.
    const log = (await vol.range(`/mx/${NAME}/log/`)).kvs.map((kv) => JSON.parse(text(kv) ?? '') as { token: number });
    expect(log.map((e) => e.token)).toEqual(holds.map((h) => h.token));
    // Nothing is left behind: the killed contenders' sessions expired with their keys (the
    // waiters' long ago; the second killed holder's before the next holder went in).
    expect((await vol.range('/_locks/procs/')).count).toBe(0);
    expect((await vol.get(`/mx/${NAME}/holder`)).kv).toBeUndefined();
  }, 90_000);
});

describe('election across processes', () => {
  it('one leader at a time; resign hands over; a killed leader is replaced within ttl + ttl/3', async () => {
    const NAME = 'procs';
    const cs = ['a', 'b', 'c'].map((v) => run(CANDIDATE, `candidate ${v}`, [NAME, String(TTL), v]));
    const observer = election(vol, NAME).observe();
    const leaders: { value: string; at: number }[] = [];
    const observing = (async () => {
      for await (const kv of observer) leaders.push({ value: text(kv) ?? '', at: Date.now() });
    })();
    const leaderNow = async (): Promise<Child> => {
      for (let i = 0; i < 300; i++) {
        const live = cs.filter((c) => c.has('leader') && !c.has('resigned') && c.proc.exitCode === null && c.proc.signalCode === null);
        expect(live.length).toBeLessThanOrEqual(1);
        if (live[0]) return live[0];
        await sleep(100);
      }
      throw new Error(`no leader; stderr: ${cs.map((c) => c.err).join('')}`);
    };
    await Promise.all(cs.map((c) => c.waitFor('campaigning')));
    while ((await vol.range(`/_elections/${NAME}/`)).count < 3) await sleep(50);
    const first = await leaderNow();
    await sleep(300);
    expect(cs.filter((c) => c.has('leader'))).toEqual([first]);
    const firstValue = first.name.slice(-1);
    expect(text(await election(vol, NAME).leader())).toBe(firstValue);

    // Resign: the next candidate leads, only after the first stepped down.
    first.proc.stdin?.write('resign\n');
    const resigned = await first.waitFor('resigned');
    const second = await leaderNow();
    expect(second).not.toBe(first);
    expect(second.has('leader')?.['t'] as number).toBeGreaterThanOrEqual(resigned['t'] as number);
    expect((second.has('leader')?.['rev'] as number) > (first.has('leader')?.['rev'] as number)).toBe(true);

    // Kill the leader: the last candidate leads within ttl + ttl/3 of the kill.
    const killedAt = Date.now();
    second.proc.kill('SIGKILL');
    const third = cs.find((c) => c !== first && c !== second) as Child;
    const led = await third.waitFor('leader', 3 * TTL);
    const seenAt = led['seenAt'] as number;
    expect(seenAt - killedAt).toBeLessThanOrEqual(TTL + TTL / 3);
    expect(cs.filter((c) => c.has('leader'))).toHaveLength(3);
    await sleep(200);
    await observer.cancel();
    await observing;
    expect(leaders.map((l) => l.value)).toEqual([firstValue, second.name.slice(-1), third.name.slice(-1)]);
    const observedThird = leaders[2]?.at as number;
    expect(observedThird - killedAt).toBeLessThanOrEqual(TTL + TTL / 3);
    third.proc.stdin?.write('resign\n');
    expect(await third.exited).toEqual({ code: 0, signal: null });
    expect((await vol.range(`/_elections/${NAME}/`)).count).toBe(0);
  }, 60_000);
});
