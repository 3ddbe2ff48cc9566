// W6, the steady cost of sessions and watches (issue 4): `sessions` clients, each on its own
// connection (as ZooKeeper requires: a session is a connection) with one session kept alive by
// its client library, one ephemeral key in it (a daemon announcing itself) and one watch on a
// prefix nothing writes to (the cluster map, quiet in steady state). Nothing else happens: after
// a settle period, the server's CPU over a `windowMs` window (% of one core, summed over its
// processes, /proc/PID/stat) and its resident memory at the end (VmRSS, summed) are the cost.
//
// Sessions lost before the end mean the load generator could not keep them alive: the figures
// are then not those of N live sessions, and the report says so.
import { cpuSample, cpuWindow, type CpuWindow } from './cpu-window.js';
import { errMsg } from './report-common.js';
import type { CoordClient, Endpoint, SessionHandle, WatchHandle } from './systems/coord.js';
import { connectCoord } from './systems/coord.js';
import { serverRssBytes, sleep, withTimeout, type Progress } from './systems/proc.js';
import { forEachLimited } from './systems/types.js';

export interface SteadyOptions {
  readonly sessions: number;
  readonly ttlMs: number;
  /** Between the last session opened and the window: keepalive timers spread, setup work drains. */
  readonly settleMs: number;
  readonly windowMs: number;
  readonly progress: Progress;
}

export interface SteadyResult extends CpuWindow {
  readonly sessions: number;
  readonly ttlMs: number;
  readonly grantedTtlMs: number;
  /** Opening every connection, session, key and watch. */
  readonly setupSecs: number;
  /** Server RSS before the first session and at the end of the window, in bytes (summed). */
  readonly rssBeforeBytes: number;
  readonly rssBytes: number;
  /** Sessions the system ended before close (the load generator fell behind, or the server expired them). */
  readonly lost: number;
  /** Of those, lost during the measured window (the rest went during setup or settling). */
  readonly lostInWindow: number;
  readonly firstLost?: string;
  /** Events on the quiet prefix: there should be none. */
  readonly watchEvents: number;
}

/** Clients are opened this many at a time: a herd of 10,000 handshakes at once would time out. */
const OPEN_IN_FLIGHT = 64;
const CALL_TIMEOUT_MS = 60_000;

interface Member {
  readonly client: CoordClient;
  session?: SessionHandle;
  watch?: WatchHandle;
}

export async function runSteady(endpoint: Endpoint, serverPids: readonly number[], o: SteadyOptions): Promise<SteadyResult> {
  const members: Member[] = [];
  const value = new Uint8Array(64).fill(0x36);
  let lost = 0;
  let lostInWindow = 0;
  let inWindow = false;
  let firstLost: string | undefined;
  let closing = false;
  let watchEvents = 0;
  let granted = NaN;
  const rssBeforeBytes = serverRssBytes(serverPids);
  const t0 = performance.now();
  try {
    let opened = 0;
    const ids = Array.from({ length: o.sessions }, (_, i) => i);
    await forEachLimited(ids, OPEN_IN_FLIGHT, async (i) => {
      const client = await withTimeout(connectCoord(endpoint, { sessionTtlMs: o.ttlMs }), CALL_TIMEOUT_MS, `W6 connection ${i}`);
      const m: Member = { client };
      members.push(m);
      m.session = await withTimeout(client.session(), CALL_TIMEOUT_MS, `W6 session ${i}`);
      granted = m.session.grantedTtlMs;
      void m.session.lost.then((why) => {
        if (closing) return;
        lost++;
        if (inWindow) lostInWindow++;
        firstLost ??= why;
      });
      await withTimeout(m.session.putEphemeral(`/w6/n${o.sessions}/s${String(i).padStart(5, '0')}`, value), CALL_TIMEOUT_MS, `W6 ephemeral ${i}`);
      m.watch = await withTimeout(
        client.watchPrefix('/w6/map/', { event: () => void watchEvents++, unnotified: () => undefined, error: () => undefined }),
        CALL_TIMEOUT_MS,
        `W6 watch ${i}`,
      );
      if (++opened % Math.max(1, Math.round(o.sessions / 4)) === 0) o.progress(`W6: ${opened.toLocaleString('en-US')}/${o.sessions.toLocaleString('en-US')} sessions open`);
    });
    const setupSecs = (performance.now() - t0) / 1000;
    await sleep(o.settleMs);
    const lostBefore = lost;
    if (lostBefore > 0) o.progress(`W6: ${lostBefore} sessions lost before the window (${firstLost ?? '?'})`);
    inWindow = true;
    const start = cpuSample(serverPids);
    await sleep(o.windowMs);
    const end = cpuSample(serverPids);
    inWindow = false;
    const rssBytes = serverRssBytes(serverPids);
    return {
      ...cpuWindow(start, end),
      sessions: o.sessions,
      ttlMs: o.ttlMs,
      grantedTtlMs: granted,
      setupSecs,
      rssBeforeBytes,
      rssBytes,
      lost,
      lostInWindow,
      ...(firstLost !== undefined ? { firstLost } : {}),
      watchEvents,
    };
  } finally {
    closing = true;
    const t = performance.now();
    let closeErrors = 0;
    await forEachLimited(members, OPEN_IN_FLIGHT, async (m) => {
      try {
        if (m.watch) await withTimeout(m.watch.cancel(), 10_000, 'W6 watch cancel');
        if (m.session) await withTimeout(m.session.close(), 10_000, 'W6 session close');
      } catch (e) {
        if (closeErrors++ === 0) o.progress(`W6: closing: ${errMsg(e)}`);
      }
      await withTimeout(m.client.close(), 10_000, 'W6 client close').catch(() => undefined);
    });
    o.progress(`W6: closed ${members.length.toLocaleString('en-US')} clients in ${((performance.now() - t) / 1000).toFixed(1)} s${closeErrors ? ` (${closeErrors} close errors)` : ''}`);
  }
}
