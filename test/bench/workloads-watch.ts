// W3, watch fan-out (issue 4): `watchers` watchers on one prefix, spread round-robin over
// `connections` connections, and one more connection writing `writes` new keys under the prefix
// at `writesPerSec`. For every watcher and every write: the time from the write's
// acknowledgment (to the writer) to the watcher's receipt of its own notification, and whether
// it got one at all. A change a watcher learnt of only from a later re-arm (ZooKeeper) or a
// resync (coordvol) counts as missed, as does one never seen; coordvol must miss none.
//
// Every watcher is proven armed before the clock starts: a sentinel key is written and every
// watcher must have received it. Writes go one at a time (each waits for the previous ack, on a
// fixed schedule), so the write order is the commit order and the keys (k00000, k00001, …) sort
// in it, which is what ZooKeeper's watcher needs to attribute a notification (coord.ts). All
// times are performance.now() in this one process: the writer and the watchers share a clock.
import { cpuSample, cpuWindow, type CpuWindow } from './cpu-window.js';
import { errMsg, quantile } from './report-common.js';
import type { CoordClient, WatchHandle } from './systems/coord.js';
import { sleep, waitUntil, withTimeout, type Progress } from './systems/proc.js';
import { forEachLimited } from './systems/types.js';

export interface WatchFanoutOptions {
  readonly watchers: number;
  readonly connections: number;
  readonly writes: number;
  readonly writesPerSec: number;
  /** After the last ack, how long notifications still on their way are waited for. */
  readonly drainMs: number;
  readonly progress: Progress;
}

export interface WatchFanoutResult extends CpuWindow {
  readonly watchers: number;
  readonly connections: number;
  readonly writes: number;
  /** From the first write issued to the last one acknowledged. */
  readonly writeSecs: number;
  /** watchers × writes: every change each watcher should be told of. */
  readonly expected: number;
  /** Changes that reached a watcher with a notification of their own. */
  readonly delivered: number;
  /** expected − delivered. */
  readonly missed: number;
  /** Of the missed: changes a watcher never learnt of at all by the end of the drain. */
  readonly neverSeen: number;
  /** Notifications received before the writer had its ack (their latency counts as 0). */
  readonly beforeAck: number;
  /** The same change notified to the same watcher more than once. */
  readonly duplicates: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /**
   * The same notifications timed from when the write was sent: a system that notifies watchers
   * before it answers the writer (ZooKeeper does) shows ~0 from the ack, so this says how long
   * a change really took to reach them.
   */
  readonly p50FromSendMs: number;
  readonly p99FromSendMs: number;
  /** The writes' own latency (send → ack), median. */
  readonly writeP50Ms: number;
  readonly errors: number;
  readonly firstError?: string;
}

/** Connections are opened this many at a time. */
const OPEN_IN_FLIGHT = 16;
const ARM_TIMEOUT_MS = 120_000;
const CALL_TIMEOUT_MS = 30_000;

/** What one watcher received: its own notifications (key → receipt time) and every key it learnt of. */
interface WatcherLog {
  readonly own: Map<string, number>;
  readonly seen: Set<string>;
  duplicates: number;
}

export async function runWatchFanout(connect: () => Promise<CoordClient>, serverPids: readonly number[], o: WatchFanoutOptions): Promise<WatchFanoutResult> {
  if (o.watchers < 1 || o.connections < 1 || o.writes < 1 || !(o.writesPerSec > 0)) throw new Error('W3 needs watchers, connections, writes ≥ 1 and a write rate > 0');
  const prefix = '/w3/';
  const sentinel = `${prefix}a-ready`; // sorts before every written key (k…)
  const keys = Array.from({ length: o.writes }, (_, i) => `${prefix}k${String(i).padStart(5, '0')}`);
  const value = new Uint8Array(64).fill(0x33);
  const clients: CoordClient[] = [];
  const handles: WatchHandle[] = [];
  const logs: WatcherLog[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const fail = (e: unknown): void => {
    errors++;
    firstError ??= errMsg(e);
  };

  try {
    const slots = Array.from({ length: o.connections + 1 }, (_, i) => i);
    const opened: (CoordClient | undefined)[] = [];
    await forEachLimited(slots, OPEN_IN_FLIGHT, async (i) => {
      opened[i] = await withTimeout(connect(), CALL_TIMEOUT_MS, `W3 connection ${i}`);
    });
    for (const c of opened) if (c) clients.push(c);
    const writer = clients[o.connections] as CoordClient;
    await withTimeout(writer.put(`${prefix}.base`, value), CALL_TIMEOUT_MS, 'W3: creating the watched prefix'); // ZooKeeper needs the parent

    // Counted as they arrive, so the drain's "all seen?" check costs nothing in the window.
    let writesSeen = 0;
    const see = (log: WatcherLog, key: string): void => {
      if (log.seen.has(key)) return;
      log.seen.add(key);
      if (key !== sentinel) writesSeen++;
    };
    const watcherIds = Array.from({ length: o.watchers }, (_, i) => i);
    await forEachLimited(watcherIds, 64, async (i) => {
      const log: WatcherLog = { own: new Map(), seen: new Set(), duplicates: 0 };
      logs[i] = log;
      const client = clients[i % o.connections] as CoordClient;
      const h = await withTimeout(
        client.watchPrefix(prefix, {
          event: (key, type, at) => {
            if (type !== 'put') return;
            if (log.own.has(key)) log.duplicates++;
            else log.own.set(key, at);
            see(log, key);
          },
          unnotified: (ks) => {
            for (const k of ks) see(log, k);
          },
          error: fail,
        }),
        CALL_TIMEOUT_MS,
        `W3 watcher ${i} to arm`,
      );
      handles.push(h);
    });
    await withTimeout(writer.put(sentinel, value), CALL_TIMEOUT_MS, 'W3: sentinel write');
    await waitUntil('every W3 watcher to receive the sentinel', ARM_TIMEOUT_MS, async () => logs.every((l) => l.seen.has(sentinel)), 20);
    o.progress(`W3: ${o.watchers.toLocaleString('en-US')} watchers armed on ${o.connections} connections`);

    // The measured window: the writes, then the drain.
    const acks = new Float64Array(o.writes).fill(NaN);
    const sends = new Float64Array(o.writes).fill(NaN);
    const start = cpuSample(serverPids);
    const t0 = performance.now();
    for (let i = 0; i < o.writes; i++) {
      const due = t0 + (i * 1000) / o.writesPerSec;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      try {
        sends[i] = performance.now();
        await withTimeout(writer.put(keys[i] as string, value), CALL_TIMEOUT_MS, `W3 write ${i}`);
        acks[i] = performance.now();
      } catch (e) {
        fail(e);
      }
    }
    const lastAck = performance.now();
    const written = acks.filter((a) => !Number.isNaN(a)).length;
    while (performance.now() - lastAck < o.drainMs && writesSeen < o.watchers * written) await sleep(20);
    const end = cpuSample(serverPids);

    let delivered = 0;
    let missed = 0;
    let neverSeen = 0;
    let beforeAck = 0;
    const lat: number[] = [];
    const latFromSend: number[] = [];
    for (const l of logs) {
      keys.forEach((k, i) => {
        const ack = acks[i] as number;
        if (Number.isNaN(ack)) return; // a failed write is an error, not a change to be told of
        const at = l.own.get(k);
        if (at === undefined) {
          missed++;
          if (!l.seen.has(k)) neverSeen++;
          return;
        }
        delivered++;
        if (at < ack) beforeAck++;
        lat.push(Math.max(0, at - ack));
        latFromSend.push(at - (sends[i] as number));
      });
    }
    const sorted = Float64Array.from(lat).sort();
    const sortedFromSend = Float64Array.from(latFromSend).sort();
    const writeLat = Float64Array.from(keys.map((_, i) => (acks[i] as number) - (sends[i] as number)).filter((x) => !Number.isNaN(x))).sort();
    return {
      ...cpuWindow(start, end),
      watchers: o.watchers,
      connections: o.connections,
      writes: written,
      writeSecs: (lastAck - t0) / 1000,
      expected: o.watchers * written,
      delivered,
      missed,
      neverSeen,
      beforeAck,
      duplicates: logs.reduce((a, l) => a + l.duplicates, 0),
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : NaN,
      p50FromSendMs: quantile(sortedFromSend, 0.5),
      p99FromSendMs: quantile(sortedFromSend, 0.99),
      writeP50Ms: quantile(writeLat, 0.5),
      errors,
      ...(firstError !== undefined ? { firstError } : {}),
    };
  } finally {
    await Promise.all(handles.map((h) => withTimeout(h.cancel(), 10_000, 'W3 watch cancel').catch(() => undefined)));
    await forEachLimited(clients, OPEN_IN_FLIGHT, (c) => withTimeout(c.close(), 10_000, 'W3 client close').catch(() => undefined));
  }
}
