// CPU over a measured window, as every workload reports it: the system's server processes
// (/proc/PID/stat, summed with their descendants), the load generator (process.cpuUsage()) and
// the whole machine (/proc/stat), each in % of one core.
import { machineCpu, procCpuSeconds, withDescendants } from './systems/proc.js';

/** The share of one core the load generator may use before it is flagged as the limit. */
export const CLIENT_BOUND_PCT = 90;

export interface CpuSample {
  readonly t: number;
  readonly server: number | undefined;
  readonly client: NodeJS.CpuUsage;
  readonly machine: { busy: number; total: number; cores: number };
}

export interface CpuWindow {
  readonly secs: number;
  /** Server processes' CPU, summed, in % of one core (NaN if none to measure). */
  readonly serverCpuPct: number;
  /** This process's CPU, in % of one core. */
  readonly clientCpuPct: number;
  /** The whole machine's busy time, in % of one core (all cores: up to 100 × cores). */
  readonly machineCpuPct: number;
  /** The load generator used ≥ CLIENT_BOUND_PCT of one core: it may be what limits the figures. */
  readonly clientBound: boolean;
}

export function cpuSample(serverPids: readonly number[]): CpuSample {
  const pids = serverPids.length > 0 ? withDescendants(serverPids) : []; // a /proc scan: before the clock reads
  const server = serverPids.length > 0 ? pids.reduce((sum, pid) => sum + (procCpuSeconds(pid) ?? 0), 0) : undefined;
  return { t: performance.now(), server, client: process.cpuUsage(), machine: machineCpu() };
}

export function cpuWindow(start: CpuSample, end: CpuSample): CpuWindow {
  const secs = (end.t - start.t) / 1000;
  const clientCpu = (end.client.user - start.client.user + end.client.system - start.client.system) / 1e6;
  const machine = end.machine.total > start.machine.total ? (end.machine.busy - start.machine.busy) / (end.machine.total - start.machine.total) : NaN;
  const clientCpuPct = (clientCpu / secs) * 100;
  return {
    secs,
    serverCpuPct: start.server !== undefined && end.server !== undefined ? ((end.server - start.server) / secs) * 100 : NaN,
    clientCpuPct,
    machineCpuPct: machine * end.machine.cores * 100,
    clientBound: clientCpuPct >= CLIENT_BOUND_PCT,
  };
}
