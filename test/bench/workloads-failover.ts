// W4, failover (issue: "~200 writes/s, kill -9 the leader/holder, longest gap with no successful
// write, and writes that failed"; aim: gap ≤ 1 s, no acknowledged write lost). On a cluster of
// three started for this run alone:
//
//  - an open-loop writer puts a new key every `intervalMs` (5 ms ≈ 200/s) over one client
//    connected to every member, at most `maxOutstanding` puts unanswered (a slot that finds that
//    many outstanding is skipped and counted; the default cap is above rate × timeout, a safety
//    net), each put bounded by `callTimeoutMs`;
//  - after `steadyMs` it asks the system who leads (etcd: endpoint status; ZooKeeper: srvr;
//    coordvol: status().volume.holder), SIGKILLs that member's PID, and keeps writing `afterMs`;
//  - then every acknowledged key is read back (linearizable, over a new client) and compared with
//    what was written: one missing or different is an acknowledged write lost. The failed ones
//    are read too: a failed put may still have been applied (reported, not an error).
//
// The gap is the longest time between consecutive acknowledgments from `lookBackMs` before the
// kill to the end of writing (and from the last acknowledgment to the end, if writes never
// resumed). A put answered after its timeout counts as failed, not as an acknowledgment.
import { errMsg, fmtInt as fmtIntSigned, fmtMs, quantile } from './report-common.js';
import { forEachLimited, type FailoverClient, type Leader, type SystemDriver } from './systems/types.js';
import { pidAlive, sleep, withTimeout, type Progress } from './systems/proc.js';

export interface FailoverSettings {
  readonly intervalMs: number;
  readonly maxOutstanding: number;
  readonly callTimeoutMs: number;
  readonly steadyMs: number;
  readonly afterMs: number;
  readonly lookBackMs: number;
  /** etcd: the etcd3 client's default per-host circuit breaker kept (another row of the table). */
  readonly circuitBreaker: boolean;
}

export const FAILOVER_DEFAULTS: Omit<FailoverSettings, 'circuitBreaker'> = {
  intervalMs: 5,
  // Above rate × timeout (200/s × 3 s = 600), so it never binds unless puts outlive their timeout:
  // at 64, the puts that hang at a leaderless cluster until their timeout (etcd's do: 3 s) hold
  // every slot, no new put goes out, and the gap measures the timeout instead of the failover.
  maxOutstanding: 1_024,
  callTimeoutMs: 3_000,
  steadyMs: 3_000,
  afterMs: 6_000,
  lookBackMs: 1_000,
};

export interface FailoverResult {
  readonly killed: string;
  /** Who led once writing ended (if the system could say). */
  readonly newLeader: string;
  /** Slots of the schedule in the whole run, puts sent, acknowledged, failed (errors and timeouts). */
  readonly slots: number;
  readonly issued: number;
  readonly acked: number;
  readonly failed: number;
  readonly timedOut: number;
  /** Slots skipped because maxOutstanding puts were unanswered. */
  readonly skipped: number;
  readonly firstError?: string;
  /** Longest time without an acknowledgment around the kill, ms; and when it began, relative to the kill. */
  readonly gapMs: number;
  readonly gapStartMs: number;
  /** Kill → the earliest acknowledgment of any put sent after the kill (NaN if none). */
  readonly recoveryMs: number;
  /** Longest gap in the steady phase before the kill, for scale. */
  readonly steadyGapMs: number;
  /** Put latency, acknowledged puts, p50 and p99 ms (whole run), and the slowest acknowledged put sent after the kill. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly slowestAckMs: number;
  /** Acknowledged keys read back, missing or with another value (lost), and reads that never succeeded. */
  readonly checked: number;
  readonly lost: number;
  readonly firstLost?: string;
  readonly unreadable: number;
  /** Failed puts whose key exists afterwards with the value written. */
  readonly failedButApplied: number;
  /** Achieved rate of sent puts in the steady phase, per second. */
  readonly steadyRate: number;
}

const textEncoder = new TextEncoder();
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

interface Put {
  readonly key: string;
  readonly value: Uint8Array;
  readonly sentAt: number;
  /** performance.now() at acknowledgment, or undefined. */
  ackAt?: number;
  failed?: boolean;
}

/** Reads `keys` back, retrying each read a few times; returns the value per key or an error per key. */
async function readBack(client: FailoverClient, puts: readonly Put[], timeoutMs: number): Promise<Map<string, Uint8Array | undefined | Error>> {
  const out = new Map<string, Uint8Array | undefined | Error>();
  await forEachLimited(puts, 32, async (p) => {
    let last: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        out.set(p.key, await withTimeout(client.get(p.key), timeoutMs, `read back ${p.key}`));
        return;
      } catch (e) {
        last = e;
        await sleep(250 * (attempt + 1));
      }
    }
    out.set(p.key, last instanceof Error ? last : new Error(String(last)));
  });
  return out;
}

/** One W4 run on a started three-member `driver`; the driver is left to the caller to stop. */
export async function runFailover(driver: SystemDriver, s: FailoverSettings, progress: Progress): Promise<FailoverResult> {
  if (!driver.leader || !driver.failoverClient) throw new Error(`${driver.name}: no leader()/failoverClient(): W4 cannot run on it`);
  const clientOpts = { callTimeoutMs: s.callTimeoutMs, circuitBreaker: s.circuitBreaker };
  const writer = await driver.failoverClient(clientOpts);
  const puts: Put[] = [];
  let outstanding = 0;
  let skipped = 0;
  let failed = 0;
  let timedOut = 0;
  let firstError: string | undefined;
  let leader: Leader | undefined;
  let killAt = NaN;
  const tag = `${process.pid}-${Date.now().toString(36)}`;

  const send = (seq: number): void => {
    const key = `/w4/k${String(seq).padStart(6, '0')}`;
    const p: Put = { key, value: textEncoder.encode(`${tag} ${key}`), sentAt: performance.now() };
    puts.push(p);
    outstanding++;
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      outstanding--;
      failed++;
      timedOut++;
      p.failed = true;
      firstError ??= `timed out after ${s.callTimeoutMs} ms`;
    }, s.callTimeoutMs);
    writer.put(p.key, p.value).then(
      () => {
        if (done) return; // answered after its timeout: stays failed
        done = true;
        clearTimeout(timer);
        outstanding--;
        p.ackAt = performance.now();
      },
      (e: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        outstanding--;
        failed++;
        p.failed = true;
        firstError ??= errMsg(e).split('\n')[0];
      },
    );
  };

  const t0 = performance.now();
  const killDue = t0 + s.steadyMs;
  let endAt = Infinity;
  let slots = 0;
  let lastReport = t0;
  let reported = { acked: 0, failed: 0 };
  const acked = (): number => puts.reduce((a, p) => a + (p.ackAt !== undefined ? 1 : 0), 0);
  const report = (now: number): void => {
    const a = acked();
    const sinceKill = Number.isFinite(killAt) ? `, ${((now - killAt) / 1000).toFixed(1)} s after the kill` : '';
    progress(
      `W4 t=${((now - t0) / 1000).toFixed(1)} s${sinceKill}: ${puts.length} sent, +${a - reported.acked} acked, +${failed - reported.failed} failed, ${outstanding} outstanding, ${skipped} skipped`,
    );
    reported = { acked: a, failed };
    lastReport = now;
  };
  let killing: Promise<void> | undefined;
  let killError: unknown;

  try {
    // The schedule: slot i is due at t0 + i × interval; a late timer sends every slot that is due.
    for (;;) {
      const now = performance.now();
      if (now >= endAt) break;
      const due = Math.floor((now - t0) / s.intervalMs) + 1;
      while (slots < due) {
        if (outstanding >= s.maxOutstanding) skipped++;
        else send(slots);
        slots++;
      }
      if (!killing && now >= killDue) {
        // Find the leader and kill it while the writer keeps going.
        killing = (async (): Promise<void> => {
          try {
            leader = await withTimeout(driver.leader!(), 10_000, `${driver.name}: find the leader`);
            process.kill(leader.pid, 'SIGKILL');
            killAt = performance.now();
            endAt = killAt + s.afterMs;
            progress(`W4: kill -9 the leader ${leader.name}, pid ${leader.pid}, after ${((killAt - t0) / 1000).toFixed(1)} s of writes`);
          } catch (e) {
            killError = e;
            endAt = performance.now();
          }
        })();
      }
      if (now - lastReport >= 1_000) report(now);
      await sleep(Math.max(1, Math.min(s.intervalMs, t0 + due * s.intervalMs - performance.now())));
    }
    await killing;
    if (killError !== undefined) throw killError;
    report(performance.now());
    // Let the last puts finish (each is bounded by its own timeout).
    const drainUntil = performance.now() + s.callTimeoutMs + 1_000;
    while (outstanding > 0 && performance.now() < drainUntil) await sleep(20);
  } finally {
    await withTimeout(writer.close(), 10_000, `${driver.name}: writer close`).catch(() => undefined);
  }
  if (leader && pidAlive(leader.pid)) throw new Error(`${driver.name}: the killed leader (pid ${leader.pid}) is still alive`);

  // The gap: the longest stretch without an acknowledgment from lookBackMs before the kill to the end of writing.
  const acks = puts.flatMap((p) => (p.ackAt !== undefined ? [p.ackAt] : [])).sort((a, b) => a - b);
  const longestGap = (from: number, to: number): { gap: number; start: number } => {
    let prev = from;
    let best = { gap: 0, start: from };
    for (const t of acks) {
      if (t < from) continue;
      if (t > to) break;
      if (t - prev > best.gap) best = { gap: t - prev, start: prev };
      prev = t;
    }
    if (to - prev > best.gap) best = { gap: to - prev, start: prev };
    return best;
  };
  const windowFrom = Math.max(t0, killAt - s.lookBackMs);
  const lastBefore = acks.filter((t) => t <= windowFrom).pop();
  const around = longestGap(lastBefore ?? windowFrom, endAt);
  const steady = longestGap(t0 + 500, killAt); // the first half second is warm-up
  const firstAckAfter = puts.reduce((m, p) => (p.sentAt > killAt && p.ackAt !== undefined && !(p.ackAt >= m) ? p.ackAt : m), NaN);
  const steadySent = puts.filter((p) => p.sentAt < killAt).length;

  // Read everything back over a new client.
  progress(`W4: writing over (${puts.length} sent, ${acks.length} acked, ${failed} failed); reading back every key`);
  let newLeader = '?';
  try {
    newLeader = (await withTimeout(driver.leader(), 10_000, `${driver.name}: find the new leader`)).name;
  } catch (e) {
    newLeader = `? (${errMsg(e).split('\n')[0]})`;
  }
  const reader = await driver.failoverClient({ ...clientOpts, callTimeoutMs: 10_000 });
  let got: Map<string, Uint8Array | undefined | Error>;
  try {
    got = await readBack(reader, puts, 12_000);
  } finally {
    await withTimeout(reader.close(), 10_000, `${driver.name}: reader close`).catch(() => undefined);
  }
  let lost = 0;
  let unreadable = 0;
  let firstLost: string | undefined;
  let failedButApplied = 0;
  for (const p of puts) {
    const v = got.get(p.key);
    if (v instanceof Error) {
      if (p.ackAt !== undefined) unreadable++;
      continue;
    }
    const intact = v !== undefined && sameBytes(v, p.value);
    if (p.ackAt !== undefined && !intact) {
      lost++;
      firstLost ??= `${p.key} ${v === undefined ? 'missing' : 'has another value'} (acked ${((p.ackAt - killAt) / 1000).toFixed(2)} s after the kill)`;
    }
    if (p.failed && intact) failedButApplied++;
  }
  const lat = Float64Array.from(puts.flatMap((p) => (p.ackAt !== undefined ? [p.ackAt - p.sentAt] : []))).sort();
  return {
    killed: leader?.name ?? '?',
    newLeader,
    slots,
    issued: puts.length,
    acked: acks.length,
    failed,
    timedOut,
    skipped,
    ...(firstError !== undefined ? { firstError } : {}),
    gapMs: around.gap,
    gapStartMs: around.start - killAt,
    recoveryMs: firstAckAfter - killAt,
    steadyGapMs: steady.gap,
    p50Ms: quantile(lat, 0.5),
    p99Ms: quantile(lat, 0.99),
    slowestAckMs: puts.reduce((m, p) => (p.ackAt !== undefined && p.sentAt >= killAt && !(p.ackAt - p.sentAt <= m) ? p.ackAt - p.sentAt : m), NaN),
    checked: acks.length - unreadable,
    lost,
    ...(firstLost !== undefined ? { firstLost } : {}),
    unreadable,
    failedButApplied,
    steadyRate: steadySent / ((killAt - t0) / 1000),
  };
}

/** One progress line for a finished run. */
export function summarizeFailover(r: FailoverResult): string {
  const fmtInt = (n: number): string => fmtIntSigned(Number.isFinite(n) ? Math.round(n) || 0 : n); // no "-0"
  return (
    `killed ${r.killed} → ${r.newLeader}: longest gap ${fmtInt(r.gapMs)} ms (from ${fmtInt(r.gapStartMs)} ms after the kill; steady before: ${fmtInt(r.steadyGapMs)} ms), ` +
    `earliest ack of a put sent after the kill at +${fmtInt(r.recoveryMs)} ms; ${fmtInt(r.issued)} sent (${fmtInt(r.steadyRate)}/s before the kill), ${fmtInt(r.acked)} acked, ` +
    `${fmtInt(r.failed)} failed (${fmtInt(r.timedOut)} timed out${r.firstError ? `; first: ${r.firstError}` : ''}), ${fmtInt(r.skipped)} slots skipped at the in-flight cap; ` +
    `put p50 ${fmtMs(r.p50Ms)} ms, p99 ${fmtMs(r.p99Ms)} ms, slowest acked put sent after the kill ${fmtInt(r.slowestAckMs)} ms; read back ${fmtInt(r.checked)} acked: ${r.lost} LOST${r.firstLost ? ` (first: ${r.firstLost})` : ''}` +
    `${r.unreadable ? `, ${r.unreadable} unreadable` : ''}; ${fmtInt(r.failedButApplied)} failed puts applied anyway`
  );
}
