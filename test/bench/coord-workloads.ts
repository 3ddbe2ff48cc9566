// The coordination workloads of issue 4, as compare.ts selects and runs them next to W1/W2:
// W3 watch fan-out (workloads-watch.ts), W5 session expiry (workloads-session.ts), W6 the steady
// cost of N sessions and N watches (workloads-steady.ts), one W6 row per N. They run on a system
// the round has already started, through its endpoint (systems/coord.ts).
import { runSessionExpiry, type SessionExpiryResult } from './workloads-session.js';
import { runSteady, type SteadyResult } from './workloads-steady.js';
import { runWatchFanout, type WatchFanoutResult } from './workloads-watch.js';
import { connectCoord } from './systems/coord.js';
import type { Progress } from './systems/proc.js';
import { Unavailable, type SystemDriver } from './systems/types.js';

export type CoordKind = 'watch' | 'expiry' | 'steady';

export interface CoordWorkload {
  readonly id: string;
  /** Row label in the tables. */
  readonly label: string;
  readonly kind: CoordKind;
  /** W6: sessions (and watches) held open. */
  readonly sessions?: number;
}

export interface CoordSettings {
  readonly watchers: number;
  readonly watchConnections: number;
  readonly writes: number;
  readonly writesPerSec: number;
  readonly drainMs: number;
  readonly expiryReps: number;
  readonly expiryTtlMs: number;
  readonly sessionTtlMs: number;
  readonly settleMs: number;
  readonly windowMs: number;
}

export type CoordResult =
  | { readonly kind: 'watch'; readonly r: WatchFanoutResult }
  | { readonly kind: 'expiry'; readonly r: SessionExpiryResult }
  | { readonly kind: 'steady'; readonly r: SteadyResult };

/** W3, W5, then W6 for each N in `sessions` (ascending: the small run cannot inherit the big one's leftovers). */
export function coordWorkloads(sessions: readonly number[]): CoordWorkload[] {
  return [
    { id: 'w3-watch', label: 'W3 watch fan-out', kind: 'watch' },
    { id: 'w5-expiry', label: 'W5 session expiry', kind: 'expiry' },
    ...[...sessions].sort((a, b) => a - b).map((n): CoordWorkload => ({ id: `w6-sessions-${n}`, label: `W6 ${n.toLocaleString('en-US')} sessions + watches`, kind: 'steady', sessions: n })),
  ];
}

export async function runCoordWorkload(w: CoordWorkload, driver: SystemDriver, s: CoordSettings, progress: Progress): Promise<CoordResult> {
  const endpoint = driver.endpoint?.();
  if (!endpoint) throw new Unavailable(`${driver.name} cannot be reached from another process (W3/W5/W6 need an endpoint)`);
  const pids = driver.serverPids();
  switch (w.kind) {
    case 'watch':
      return {
        kind: 'watch',
        r: await runWatchFanout(() => connectCoord(endpoint), pids, {
          watchers: s.watchers,
          connections: s.watchConnections,
          writes: s.writes,
          writesPerSec: s.writesPerSec,
          drainMs: s.drainMs,
          progress,
        }),
      };
    case 'expiry': {
      const watcher = await connectCoord(endpoint);
      try {
        return { kind: 'expiry', r: await runSessionExpiry(endpoint, watcher, { reps: s.expiryReps, ttlMs: s.expiryTtlMs, progress }) };
      } finally {
        await watcher.close();
      }
    }
    case 'steady':
      return {
        kind: 'steady',
        r: await runSteady(endpoint, pids, { sessions: w.sessions ?? 1_000, ttlMs: s.sessionTtlMs, settleMs: s.settleMs, windowMs: s.windowMs, progress }),
      };
  }
}
