// Crash safety (DESIGN §4: an acknowledged write is durable; DESIGN §3: a txn is all-or-nothing
// at one rev). A child process (fixtures/crash-writer.ts) writes with fsync on from 32 concurrent
// writers and prints one line per ack; we SIGKILL it after a seeded-random number of acks, reopen
// the directory in-process and check every ack survived and no txn is half-applied. Three rounds
// on the same directory, so each reopen also recovers from a SIGKILLed process (stale LOCK file).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../../src/common/random.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openVolume, type EmbeddedVolume, type KeyValue } from '../../src/client/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WRITER = join(ROOT, 'test/unit/fixtures/crash-writer.ts');
const ROUNDS = 3;
const ACKS_MIN = 200;
const ACKS_MAX = 3000;
/** Bound on waiting for the target number of acks (includes the child's start-up). */
const ACK_WAIT_MS = 15_000;
const EXIT_WAIT_MS = 5_000;
const ROUND_TIMEOUT_MS = 25_000;

interface Ack {
  readonly k: 'put' | 'txn';
  readonly w: number;
  readonly n: number;
  readonly rev: number;
  readonly round: number;
}

/** mulberry32: a tiny seeded PRNG, so a round's kill point reproduces from its number. */

function killTarget(round: number): number {
  const r = seededRandom(0xc0ffee ^ Math.imul(round + 1, 0x9e3779b9));
  return ACKS_MIN + Math.floor(r() * (ACKS_MAX - ACKS_MIN + 1));
}

const decoder = new TextDecoder();
const valueOf = (w: number, n: number): string => `w${w}:n${n}`;
const text = (kv: KeyValue | undefined): string | undefined => (kv?.value === undefined ? undefined : decoder.decode(kv.value));

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

function exited(c: ChildProcess): Promise<void> {
  if (!alive(c)) return Promise.resolve();
  return new Promise((res) => c.once('exit', () => res()));
}

/** Every key under a prefix, paged so no default range limit can hide keys. */
async function scan(vol: EmbeddedVolume, prefix: string): Promise<Map<string, KeyValue>> {
  const out = new Map<string, KeyValue>();
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  let start = prefix;
  for (;;) {
    const r = await vol.range({ start, end, limit: 5000 });
    for (const kv of r.kvs) out.set(kv.key, kv);
    if (!r.more) break;
    const last = r.kvs[r.kvs.length - 1];
    if (!last) throw new Error('range reported more but returned no keys');
    start = `${last.key}\u0000`;
  }
  return out;
}

interface RoundRun {
  readonly acks: Ack[];
  readonly stderr: string;
  readonly pid: number;
  readonly target: number;
}

let dir = '';
let child: ChildProcess | undefined;
const allAcks: Ack[] = [];
/** The highest acked rev of each finished round. */
const maxRevByRound: number[] = [];

/** Runs the writer until `target` acks, SIGKILLs it and returns every ack it printed. */
async function runChild(round: number, target: number): Promise<RoundRun> {
  const c = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(round * 1_000_000)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = c;
  const pid = c.pid;
  if (pid === undefined) throw new Error('spawn failed: no pid');
  const acks: Ack[] = [];
  let stderr = '';
  let buf = '';
  let killed = false;
  let bad: Error | undefined;
  c.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const stdoutDone = new Promise<void>((res) => c.stdout?.once('close', () => res()));
  let reached: () => void = () => {};
  const reachedP = new Promise<void>((res) => (reached = res));
  c.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const o = JSON.parse(line) as Omit<Ack, 'round'>;
        if ((o.k !== 'put' && o.k !== 'txn') || !Number.isSafeInteger(o.w) || !Number.isSafeInteger(o.n) || !Number.isSafeInteger(o.rev)) {
          throw new Error('bad fields');
        }
        acks.push({ k: o.k, w: o.w, n: o.n, rev: o.rev, round });
      } catch (e) {
        bad ??= new Error(`unexpected stdout line ${JSON.stringify(line)}: ${(e as Error).message}`);
      }
    }
    if (!killed && acks.length >= target) {
      killed = true;
      process.kill(pid, 'SIGKILL');
      reached();
    }
  });
  const early = exited(c).then(() => {
    if (!killed) throw new Error(`writer exited before ${target} acks (${acks.length} seen, code ${c.exitCode}, signal ${c.signalCode}):\n${stderr}`);
  });
  try {
    await withTimeout(Promise.race([reachedP, early]), ACK_WAIT_MS, `${target} acks from the writer (round ${round}, ${acks.length} seen)\n${stderr}`);
  } finally {
    if (alive(c)) process.kill(pid, 'SIGKILL');
  }
  await withTimeout(exited(c), EXIT_WAIT_MS, `writer ${pid} to exit after SIGKILL`);
  // Lines the child wrote before it died are acks too: drain the pipe to its end.
  await withTimeout(stdoutDone, EXIT_WAIT_MS, `writer ${pid} stdout to close`);
  expect(c.signalCode, `writer should die of SIGKILL; stderr:\n${stderr}`).toBe('SIGKILL');
  if (bad) throw bad;
  // A trailing partial line (no newline) is not an ack; with small atomic pipe writes there is none.
  expect(buf, 'no partial line on stdout').toBe('');
  return { acks, stderr, pid, target };
}

/** Opens the directory in-process and checks every invariant; returns stats for the log. */
async function verify(round: number, run: RoundRun): Promise<Record<string, number>> {
  // The killed writer left its LOCK behind: the open below must take it over.
  const lockPath = join(dir, 'brick', 'LOCK');
  const staleLock = existsSync(lockPath);
  if (staleLock) expect(readFileSync(lockPath, 'utf8').trim()).toBe(String(run.pid));

  const vol = await withTimeout(openVolume({ dir, leaseMs: 10 }), 10_000, 'reopening the volume');
  try {
    const currentRev = (await vol.get('/crash-test/none')).rev;
    const puts = await scan(vol, '/w/');
    const txns = await scan(vol, '/t/');

    // Acked writes of every round so far, this one included.
    let acksChecked = 0;
    for (const a of allAcks) {
      expect(a.rev, `ack ${JSON.stringify(a)} rev ≤ current rev ${currentRev}`).toBeLessThanOrEqual(currentRev);
      const want = valueOf(a.w, a.n);
      if (a.k === 'put') {
        const kv = puts.get(`/w/${a.w}/${a.n}`);
        expect(kv, `acked put ${JSON.stringify(a)} is present`).toBeDefined();
        expect(text(kv), `acked put ${JSON.stringify(a)} value`).toBe(want);
        expect(kv?.modRev, `acked put ${JSON.stringify(a)} modRev`).toBe(a.rev);
      } else {
        const ka = txns.get(`/t/${a.w}/${a.n}/a`);
        const kb = txns.get(`/t/${a.w}/${a.n}/b`);
        expect([ka !== undefined, kb !== undefined], `acked txn ${JSON.stringify(a)} has both keys`).toEqual([true, true]);
        expect(text(ka), `acked txn ${JSON.stringify(a)} value a`).toBe(want);
        expect(text(kb), `acked txn ${JSON.stringify(a)} value b`).toBe(want);
        expect(ka?.modRev, `acked txn ${JSON.stringify(a)} modRev a`).toBe(a.rev);
        expect(kb?.modRev, `acked txn ${JSON.stringify(a)} modRev b`).toBe(a.rev);
      }
      acksChecked++;
    }

    // Every txn pair in the store, acked or not: never one key without the other, one rev.
    const pairs = new Map<string, { a?: KeyValue; b?: KeyValue }>();
    for (const [key, kv] of txns) {
      const m = /^\/t\/(\d+)\/(\d+)\/([ab])$/.exec(key);
      expect(m, `unexpected key ${key} under /t/`).not.toBeNull();
      if (!m) continue;
      const id = `${m[1]}/${m[2]}`;
      const p = pairs.get(id) ?? {};
      if (m[3] === 'a') p.a = kv;
      else p.b = kv;
      pairs.set(id, p);
    }
    for (const [id, p] of pairs) {
      expect(p.a !== undefined && p.b !== undefined, `txn pair ${id}: a ${p.a ? 'present' : 'MISSING'}, b ${p.b ? 'present' : 'MISSING'}`).toBe(true);
      expect(p.a?.modRev, `txn pair ${id}: one modRev`).toBe(p.b?.modRev);
      const [w, n] = id.split('/').map(Number) as [number, number];
      expect(text(p.a), `txn pair ${id}: value a`).toBe(valueOf(w, n));
      expect(text(p.b), `txn pair ${id}: value b`).toBe(valueOf(w, n));
      expect(p.a?.modRev ?? 0).toBeLessThanOrEqual(currentRev);
    }
    for (const [key, kv] of puts) {
      const m = /^\/w\/(\d+)\/(\d+)$/.exec(key);
      expect(m, `unexpected key ${key} under /w/`).not.toBeNull();
      if (m) expect(text(kv), `value of ${key}`).toBe(valueOf(Number(m[1]), Number(m[2])));
      expect(kv.modRev).toBeLessThanOrEqual(currentRev);
    }

    return {
      target: run.target,
      acks: run.acks.length,
      acksPut: run.acks.filter((a) => a.k === 'put').length,
      acksTxn: run.acks.filter((a) => a.k === 'txn').length,
      acksCheckedTotal: acksChecked,
      putKeys: puts.size,
      txnPairs: pairs.size,
      unackedPutsFound: puts.size - allAcks.filter((a) => a.k === 'put').length,
      unackedTxnsFound: pairs.size - allAcks.filter((a) => a.k === 'txn').length,
      currentRev,
      staleLock: staleLock ? 1 : 0,
    };
  } finally {
    await withTimeout(vol.close(), 10_000, 'closing the volume');
  }
}

describe('crash safety: SIGKILL during concurrent fsynced writes', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coordvol-crash-'));
  });

  afterAll(async () => {
    if (child?.pid !== undefined && alive(child)) {
      process.kill(child.pid, 'SIGKILL');
      await withTimeout(exited(child), EXIT_WAIT_MS, 'writer to exit in afterAll').catch(() => {});
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (let round = 0; round < ROUNDS; round++) {
    it(`round ${round}: every ack survives, no half txn`, { timeout: ROUND_TIMEOUT_MS }, async () => {
      const target = killTarget(round);
      const run = await runChild(round, target);
      expect(run.acks.length).toBeGreaterThanOrEqual(target);
      // Revs never go back across a crash: this run's writes come after every earlier ack.
      const earlierMax = Math.max(0, ...maxRevByRound);
      for (const a of run.acks) expect(a.rev, `ack ${JSON.stringify(a)} after earlier rounds' max rev ${earlierMax}`).toBeGreaterThan(earlierMax);
      maxRevByRound.push(Math.max(...run.acks.map((a) => a.rev)));
      allAcks.push(...run.acks);
      const stats = await verify(round, run);
      console.log(`crash round ${round}: ${JSON.stringify(stats)}`);
    });
  }
});
