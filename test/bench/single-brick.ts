// Single-brick, in-process benchmark (issue 2): puts, gets and txns through the whole translator
// stack with fsync on — 256-byte values, 10,000 keys, 64 concurrent callers. Each workload runs
// in rounds on a fresh volume; the table reports the median round with its p50/p99 latency.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openVolume, type EmbeddedVolume } from '../../src/client/index.js';

export interface WorkloadResult {
  readonly name: string;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Process CPU over the run, in % of one core (the load generator shares the process). */
  readonly cpuPct: number;
}

export interface SingleBrickOptions {
  readonly rounds: number;
  readonly concurrency: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly putOps: number;
  readonly getOps: number;
  readonly txnOps: number;
  readonly fsync: boolean;
  readonly progress: (line: string) => void;
}

const quantile = (sorted: Float64Array, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

/** Runs `total` calls of `op` from `concurrency` callers; returns throughput and latency. */
async function drive(name: string, total: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<WorkloadResult> {
  const lat = new Float64Array(total);
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total; i = next++) {
        const s = performance.now();
        await op(i);
        lat[i] = performance.now() - s;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lat.sort();
  return {
    name,
    ops: total,
    opsPerSec: total / secs,
    p50Ms: quantile(lat, 0.5),
    p99Ms: quantile(lat, 0.99),
    cpuPct: ((cpu.user + cpu.system) / 1e6 / secs) * 100,
  };
}

async function withVolume<T>(o: SingleBrickOptions, f: (v: EmbeddedVolume) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'coordvol-bench-'));
  const v = await openVolume({ dir, fsync: o.fsync, leaseMs: 10 });
  try {
    // Preload every key so gets and txns hit existing keys.
    const value = Buffer.alloc(o.valueBytes, 7);
    await drive('preload', o.keys, o.concurrency, (i) => v.put(`/bench/${i}`, value));
    return await f(v);
  } finally {
    await v.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(rs: readonly WorkloadResult[]): WorkloadResult {
  const s = [...rs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return s[Math.floor(s.length / 2)] as WorkloadResult;
}

export async function runSingleBrick(o: SingleBrickOptions): Promise<WorkloadResult[]> {
  const rounds: Record<string, WorkloadResult[]> = { put: [], get: [], txn: [] };
  for (let r = 1; r <= o.rounds; r++) {
    await withVolume(o, async (v) => {
      const value = Buffer.alloc(o.valueBytes, r);
      const key = (i: number): string => `/bench/${(i * 7919) % o.keys}`;
      const put = await drive('put', o.putOps, o.concurrency, (i) => v.put(key(i), value));
      o.progress(`round ${r}/${o.rounds}: put ${put.opsPerSec.toFixed(0)}/s`);
      const get = await drive('get', o.getOps, o.concurrency, (i) => v.get(key(i)));
      o.progress(`round ${r}/${o.rounds}: get ${get.opsPerSec.toFixed(0)}/s`);
      // A compare-and-set: succeed only if the key exists, then write it (one rev per txn).
      const txn = await drive('txn', o.txnOps, o.concurrency, (i) =>
        v.txn({ compare: [{ key: key(i), target: 'version', op: '>', value: 0 }], success: [{ op: 'put', key: key(i), value }] }),
      );
      o.progress(`round ${r}/${o.rounds}: txn ${txn.opsPerSec.toFixed(0)}/s`);
      (rounds['put'] as WorkloadResult[]).push(put);
      (rounds['get'] as WorkloadResult[]).push(get);
      (rounds['txn'] as WorkloadResult[]).push(txn);
    });
  }
  return Object.values(rounds).map(median);
}
