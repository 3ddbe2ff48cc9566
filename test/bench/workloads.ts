// The side-by-side workloads (issue 3), closed loop: `inFlight` callers each issue one op, wait
// for its reply, and issue the next, spread round-robin over the clients. A run warms up, then
// measures a window (a fixed duration, or until a fixed count of ops completes): throughput and
// latency of the ops in the window, the CPU of the system's server processes over the window
// (/proc/PID/stat, summed, with descendants), the load generator's own CPU (process.cpuUsage())
// and the machine's. When the load generator uses ≥ 90 % of one core it is flagged: it, not the
// system, may be the limit.
import { CLIENT_BOUND_PCT, cpuSample as sample, cpuWindow, type CpuSample } from './cpu-window.js';
import { withTimeout } from './systems/proc.js';
import type { KvClient, ReadMode } from './systems/types.js';

export { CLIENT_BOUND_PCT };

export interface Workload {
  readonly id: string;
  /** Row label in the table. */
  readonly label: string;
  readonly op: 'put' | 'get';
  readonly inFlight: number;
  readonly mode?: ReadMode;
}

/** W1 puts at 64 and 256 in flight; W2 gets at 64 in flight, serializable and linearizable. */
export const WORKLOADS: readonly Workload[] = [
  { id: 'w1-put-64', label: 'W1 puts, 64 in flight', op: 'put', inFlight: 64 },
  { id: 'w1-put-256', label: 'W1 puts, 256 in flight', op: 'put', inFlight: 256 },
  { id: 'w2-get-ser', label: 'W2 gets, 64 in flight, serializable', op: 'get', inFlight: 64, mode: 'serializable' },
  { id: 'w2-get-lin', label: 'W2 gets, 64 in flight, linearizable', op: 'get', inFlight: 64, mode: 'linearizable' },
];

export interface RunLimits {
  readonly warmupMs: number;
  /** Measure for this long … */
  readonly durationMs?: number;
  /** … or until this many ops have completed in the window. */
  readonly ops?: number;
  /** A run that has not finished by then is abandoned as stuck. */
  readonly maxMs: number;
}

export interface RunResult {
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly secs: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Server processes' CPU over the window, summed, in % of one core (NaN if none to measure). */
  readonly serverCpuPct: number;
  /** This process's CPU over the window, in % of one core. */
  readonly clientCpuPct: number;
  /** The whole machine's busy time over the window, in % of one core (all cores: up to 100 × cores). */
  readonly machineCpuPct: number;
  /** The load generator used ≥ 90 % of one core: it may be what limits the throughput. */
  readonly clientBound: boolean;
}

/** A run stops early after this many failed ops. */
const ERRORS_MAX = 1_000;

const quantile = (sorted: Float64Array, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/**
 * Runs one workload: `keys` are the preloaded keys, `value` what puts write. Callers pick keys
 * with a stride over the key space so consecutive ops touch different keys.
 */
export async function runWorkload(w: Workload, clients: readonly KvClient[], serverPids: readonly number[], keys: readonly string[], value: Uint8Array, limits: RunLimits): Promise<RunResult> {
  if (clients.length === 0 || keys.length === 0) throw new Error('runWorkload needs clients and keys');
  if ((limits.durationMs === undefined) === (limits.ops === undefined)) throw new Error('runWorkload needs exactly one of durationMs and ops');
  const mode: ReadMode = w.mode ?? 'linearizable';
  const lat: number[] = [];
  let completed = 0;
  let phase: 'warmup' | 'measure' | 'done' = 'warmup';
  let errors = 0;
  let firstError: string | undefined;
  let seq = 0;
  let start: CpuSample | undefined;
  let end: CpuSample | undefined;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));

  const endWindow = (): void => {
    if (phase === 'measure') end = sample(serverPids);
    phase = 'done';
    finish();
  };

  const t0 = performance.now();
  const warmupEnd = t0 + limits.warmupMs;
  let measureEnd = Infinity;
  const beginWindow = (): void => {
    if (phase !== 'warmup') return;
    start = sample(serverPids);
    phase = 'measure';
    if (limits.durationMs !== undefined) measureEnd = start.t + limits.durationMs;
  };
  // Phases change on the clock, checked before every op (an in-process volume can answer from
  // microtasks alone, which would starve timers), with timers as well for when no op completes.
  /** Moves to the phase the clock says; false once the run is over. */
  const tick = (now: number): boolean => {
    if (phase === 'warmup' && now >= warmupEnd) beginWindow();
    if (phase === 'measure' && now >= measureEnd) endWindow();
    return phase !== 'done';
  };

  const caller = async (n: number): Promise<void> => {
    const client = clients[n % clients.length] as KvClient;
    while (phase !== 'done') {
      if (!tick(performance.now())) break;
      const i = seq++;
      // Let I/O and timers in now and then, whatever the volume does.
      if (i % 1024 === 1023) await new Promise((r) => setImmediate(r));
      const key = keys[(i * 7919) % keys.length] as string;
      const counted = phase === 'measure';
      const opStart = performance.now();
      try {
        if (w.op === 'put') await client.put(key, value);
        else await client.get(key, mode);
      } catch (e) {
        errors++;
        firstError ??= e instanceof Error ? e.message : String(e);
        if (errors >= ERRORS_MAX) endWindow();
        // A client that fails at once must not starve the timers that end the phases.
        await new Promise((r) => setImmediate(r));
        continue;
      }
      // Throughput counts the ops completed inside the window; latency those also issued in it.
      if (phase === 'measure') {
        completed++;
        if (counted) lat.push(performance.now() - opStart);
        if (limits.ops !== undefined && completed >= limits.ops) endWindow();
      }
    }
  };

  const timers: NodeJS.Timeout[] = [];
  timers.push(
    setTimeout(() => {
      beginWindow();
      if (limits.durationMs !== undefined) timers.push(setTimeout(() => tick(performance.now()), Math.max(0, measureEnd - performance.now()) + 1));
    }, limits.warmupMs),
  );
  const callers = Promise.all(Array.from({ length: w.inFlight }, (_, n) => caller(n)));
  try {
    await withTimeout(finished, limits.maxMs, `${w.id} to finish its window`);
    // The ops still in flight drain (they are not counted), within the same bound.
    await withTimeout(callers, Math.max(1_000, limits.maxMs - (performance.now() - t0)), `${w.id}: ops in flight to drain`);
  } finally {
    for (const t of timers) clearTimeout(t);
    phase = 'done';
  }
  if (errors >= ERRORS_MAX) throw new Error(`${w.id}: stopped after ${errors} failed ops; first: ${firstError ?? '?'}`);
  if (!start || !end) throw new Error(`${w.id}: the measured window never ran`);
  const cpu = cpuWindow(start, end);
  const sorted = Float64Array.from(lat).sort();
  return {
    ops: completed,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    secs: cpu.secs,
    opsPerSec: completed / cpu.secs,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    serverCpuPct: cpu.serverCpuPct,
    clientCpuPct: cpu.clientCpuPct,
    machineCpuPct: cpu.machineCpuPct,
    clientBound: cpu.clientBound,
  };
}
