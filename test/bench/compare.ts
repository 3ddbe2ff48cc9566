// `npm run bench -- compare`: coordvol side by side with etcd and ZooKeeper (issue 3), in one
// invocation so the ratios are not spoiled by the drift between runs on this machine. For each
// round, for each system (the order rotates every round), the system starts fresh (temp data
// dir, 10,000 keys preloaded), runs every workload back to back, and stops. The table shows the
// median of each column over the rounds, and coordvol's throughput over etcd's and ZooKeeper's.
// The watch and session workloads of issue 4 (W3, W5, W6: coord-workloads.ts) run only when
// --workloads names them, after W1/W2 on the same started system, and have their own section.
// W4 failover (workloads-failover.ts; --members 3 only) runs when named, after the others, on a
// cluster started for it alone (it kills the leader); etcd runs it once with the etcd3 client's
// circuit breaker off and, unless --etcd-breaker off, once more with it on, each on a fresh cluster.
// With --members 3, W1/W2 and W4 go to their own section of BENCHMARKS.md (bench:replicated).
//
//   npm run bench -- compare [--rounds N] [--systems coordvol,etcd,zookeeper] [--quick] [--write]
//                            [--members 1|3] [--duration S] [--warmup S] [--ops N]
//                            [--connections N] [--workloads w1-put-64,...] [--keys N]
//   npm run bench -- compare --workloads w3,w5,w6 [--watchers N] [--watch-connections N]
//                            [--expiry-reps N] [--sessions N,N] [--session-ttl S] [--window S] …
//   npm run bench -- compare --members 3 --workloads w1,w2,w4 [--etcd-breaker off|on|both] …
// A --workloads entry names a workload or, before a '-', a family of them (w1, w6-sessions).
import { readFileSync, writeFileSync } from 'node:fs';
import { machine, upsertSection } from './machine.js';
import { clientLibraries, errMsg, fmtInt, fmtMs, machineCores, median, stamp } from './report-common.js';
import { FAILOVER_DEFAULTS, runFailover, summarizeFailover, type FailoverResult, type FailoverSettings } from './workloads-failover.js';
import { coordReport, summarize } from './coord-report.js';
import { coordWorkloads, runCoordWorkload, type CoordResult, type CoordSettings, type CoordWorkload } from './coord-workloads.js';
import { installCleanup, killEverything, withTimeout } from './systems/proc.js';
import { LABEL, SYSTEMS, Unavailable, type KvClient, type SystemDriver } from './systems/index.js';
import { CLIENT_BOUND_PCT, runWorkload, WORKLOADS, type RunLimits, type RunResult, type Workload } from './workloads.js';

export interface CompareOptions {
  readonly rounds: number;
  readonly systems: readonly string[];
  readonly workloads: readonly Workload[];
  readonly members: number;
  readonly connections: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly limits: RunLimits;
  /** W3/W5/W6, when selected; they run after the W1/W2 workloads. */
  readonly coord: readonly CoordWorkload[];
  readonly coordSettings: CoordSettings;
  /** W4, when selected (--members 3): it runs last, on a cluster of its own. */
  readonly failover: boolean;
  readonly failoverSettings: Omit<FailoverSettings, 'circuitBreaker'>;
  /** etcd's W4 runs: with the etcd3 client's per-host circuit breaker off, on, or both (two rows). */
  readonly etcdBreaker: 'off' | 'on' | 'both';
  readonly progress: (line: string) => void;
}

/** W4's id and row label. */
export const FAILOVER_WORKLOAD = { id: 'w4-failover', label: 'W4 failover: kill -9 the leader under ~200 puts/s' } as const;
/** The table row of etcd's W4 run with the client's default circuit breaker. */
const ETCD_BREAKER_ROW = 'etcd+breaker';

interface Outcome {
  /** Per system, per workload id: one result per round that ran. */
  readonly results: Map<string, Map<string, RunResult[]>>;
  readonly failures: { system: string; round: number; what: string; error: string }[];
  readonly descriptions: Map<string, string>;
  /** The same for W3/W5/W6. */
  readonly coord: Map<string, Map<string, CoordResult[]>>;
  /** Systems that cannot run W3/W5/W6 in this tree (their W1/W2 still run), with why. */
  readonly unavailable: Map<string, string>;
  /** W4, per row (a system, or etcd+breaker): one result per round that ran. */
  readonly failover: Map<string, FailoverResult[]>;
}

/** A W3/W5/W6 run that has not finished by then is abandoned as stuck (W6 with 10,000 sessions takes minutes). */
const COORD_RUN_MAX_MS = 20 * 60_000;

const PRELOAD_IN_FLIGHT = 64;

function parseArgs(args: readonly string[]): { o: Omit<CompareOptions, 'progress'>; write: boolean } {
  const known = new Set([
    '--rounds', '--systems', '--quick', '--write', '--members', '--duration', '--warmup', '--ops', '--connections', '--workloads', '--keys',
    '--watchers', '--watch-connections', '--expiry-reps', '--sessions', '--session-ttl', '--window', '--etcd-breaker',
  ]);
  for (const a of args) if (a.startsWith('--') && !known.has(a)) throw new Error(`compare: unknown option ${a} (known: ${[...known].join(' ')})`);
  const str = (name: string): string | undefined => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`compare: ${name} needs a value`);
    return v;
  };
  const num = (name: string, dflt: number, min: number): number => {
    const s = str(name);
    const n = s === undefined ? dflt : Number(s);
    if (!Number.isFinite(n) || n < min) throw new Error(`compare: ${name} must be a number ≥ ${min}, not ${s}`);
    return n;
  };
  const quick = args.includes('--quick');
  const systems = (str('--systems') ?? 'coordvol,etcd,zookeeper').split(',').filter(Boolean);
  for (const s of systems) if (!SYSTEMS[s]) throw new Error(`compare: unknown system ${s} (known: ${Object.keys(SYSTEMS).join(', ')})`);
  const sessions = (str('--sessions') ?? '1000,10000').split(',').filter(Boolean).map(Number);
  for (const n of sessions) if (!Number.isInteger(n) || n < 1) throw new Error(`compare: --sessions takes whole numbers ≥ 1, comma-separated, not ${str('--sessions')}`);
  const coordAll = coordWorkloads(sessions);
  const ids = str('--workloads')?.split(',').filter(Boolean);
  const picked = (id: string): boolean => (ids ?? []).some((sel) => id === sel || id.startsWith(`${sel}-`));
  for (const sel of ids ?? []) {
    if (![...WORKLOADS, ...coordAll, FAILOVER_WORKLOAD].some((w) => w.id === sel || w.id.startsWith(`${sel}-`))) {
      throw new Error(`compare: unknown workload ${sel} (known: ${[...WORKLOADS, ...coordAll, FAILOVER_WORKLOAD].map((w) => w.id).join(', ')}, or a family: w1, w2, w3, w4, w5, w6)`);
    }
  }
  const members = num('--members', 1, 1);
  const failover = picked(FAILOVER_WORKLOAD.id);
  if (failover && members < 3) throw new Error('compare: W4 (failover) kills a leader: it needs --members 3');
  const etcdBreaker = str('--etcd-breaker') ?? 'both';
  if (etcdBreaker !== 'off' && etcdBreaker !== 'on' && etcdBreaker !== 'both') throw new Error(`compare: --etcd-breaker takes off, on or both, not ${etcdBreaker}`);
  const warmupMs = num('--warmup', quick ? 1 : 2, 0) * 1000;
  const ops = str('--ops') === undefined ? undefined : num('--ops', 0, 1);
  const durationMs = num('--duration', quick ? 3 : 10, 0.1) * 1000;
  return {
    write: args.includes('--write'),
    o: {
      rounds: num('--rounds', quick ? 1 : 3, 1),
      systems,
      // Without --workloads, W1/W2 only: the issue-3 table stays what it was.
      workloads: ids ? WORKLOADS.filter((w) => picked(w.id)) : WORKLOADS,
      coord: ids ? coordAll.filter((w) => picked(w.id)) : [],
      coordSettings: {
        watchers: num('--watchers', 1_000, 1),
        watchConnections: num('--watch-connections', 50, 1),
        writes: 100,
        writesPerSec: 10,
        drainMs: 5_000,
        expiryReps: num('--expiry-reps', quick ? 3 : 5, 1),
        expiryTtlMs: 2_000,
        sessionTtlMs: num('--session-ttl', 10, 2) * 1000,
        settleMs: quick ? 3_000 : 5_000,
        windowMs: num('--window', quick ? 10 : 20, 1) * 1000,
      },
      failover,
      failoverSettings: FAILOVER_DEFAULTS,
      etcdBreaker,
      members,
      connections: num('--connections', 1, 1),
      keys: num('--keys', 10_000, 1),
      valueBytes: 256,
      limits: ops !== undefined ? { warmupMs, ops, maxMs: warmupMs + 10 * 60_000 } : { warmupMs, durationMs, maxMs: warmupMs + durationMs + 60_000 },
    },
  };
}

/** The machine's busy time less the system's servers and the load generator: whatever else ran. */
const otherCpuPct = (r: RunResult): number => r.machineCpuPct - r.clientCpuPct - (Number.isFinite(r.serverCpuPct) ? r.serverCpuPct : 0);
/** Above this (% of a core) the report says other work shared the machine. */
const OTHER_BUSY_PCT = 25;

async function runSystemRound(name: string, round: number, o: CompareOptions, out: Outcome, setCurrent: (d: SystemDriver | undefined) => void): Promise<void> {
  const driver = (SYSTEMS[name] as NonNullable<(typeof SYSTEMS)[string]>)({ members: o.members, progress: (l) => o.progress(`  ${l}`) });
  setCurrent(driver);
  const clients: KvClient[] = [];
  const keys = Array.from({ length: o.keys }, (_, i) => `/bench/k${String(i).padStart(5, '0')}`);
  const value = new Uint8Array(o.valueBytes).fill(round & 0xff);
  let what = 'start';
  try {
    const t0 = performance.now();
    await driver.start();
    out.descriptions.set(name, await driver.describe());
    if (o.workloads.length > 0) {
      what = 'preload';
      await withTimeout(driver.preload(keys, value, PRELOAD_IN_FLIGHT), 10 * 60_000, `${name}: preload`);
      o.progress(`  ${name}: started and preloaded ${o.keys.toLocaleString('en-US')} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      what = 'connect';
      for (let i = 0; i < o.connections; i++) clients.push(await driver.client());
    } else {
      o.progress(`  ${name}: started in ${((performance.now() - t0) / 1000).toFixed(1)} s (no W1/W2 workload: nothing preloaded)`);
    }
    for (const w of o.workloads) {
      what = w.id;
      try {
        if (w.op === 'put') await withTimeout(driver.beforeWriteRun(), 5 * 60_000, `${name}: housekeeping before ${w.id}`);
        const r = await runWorkload(w, clients, driver.serverPids(), keys, value, o.limits);
        const byW = out.results.get(name) ?? new Map<string, RunResult[]>();
        out.results.set(name, byW);
        byW.set(w.id, [...(byW.get(w.id) ?? []), r]);
        const cpu = Number.isFinite(r.serverCpuPct) ? `server ${r.serverCpuPct.toFixed(0)} %, ` : '';
        o.progress(
          `  ${name} ${w.id}: ${fmtInt(r.opsPerSec)} ops/s, p50 ${fmtMs(r.p50Ms)} ms, p99 ${fmtMs(r.p99Ms)} ms, ${cpu}client ${r.clientCpuPct.toFixed(0)} %, whole machine ${r.machineCpuPct.toFixed(0)} %` +
            `${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}${r.clientBound ? ' — load generator bound' : ''}`,
        );
      } catch (e) {
        out.failures.push({ system: name, round, what, error: errMsg(e) });
        o.progress(`  ${name} ${w.id}: FAILED: ${errMsg(e)}`);
      }
    }
    for (const w of o.coord) {
      if (out.unavailable.has(name)) break;
      what = w.id;
      try {
        const r = await withTimeout(runCoordWorkload(w, driver, o.coordSettings, (l) => o.progress(`  ${name} ${l}`)), COORD_RUN_MAX_MS, `${name} ${w.id}`);
        const byW = out.coord.get(name) ?? new Map<string, CoordResult[]>();
        out.coord.set(name, byW);
        byW.set(w.id, [...(byW.get(w.id) ?? []), r]);
        o.progress(`  ${name} ${w.id}: ${summarize(r)}`);
      } catch (e) {
        if (e instanceof Unavailable) {
          // A missing piece of this tree (coordvol before its session API): W1/W2 still run.
          out.unavailable.set(name, errMsg(e));
          o.progress(`  ${name}: ${errMsg(e)} — W3/W5/W6 skipped for it from now on`);
          break;
        }
        out.failures.push({ system: name, round, what, error: errMsg(e) });
        o.progress(`  ${name} ${w.id}: FAILED: ${errMsg(e)}`);
      }
    }
  } catch (e) {
    if (e instanceof Unavailable) throw e;
    out.failures.push({ system: name, round, what, error: errMsg(e) });
    o.progress(`  ${name}: FAILED at ${what}: ${errMsg(e)}`);
  } finally {
    for (const c of clients) await withTimeout(c.close(), 10_000, `${name}: client close`).catch(() => undefined);
    await driver.stop().catch((e: unknown) => o.progress(`  ${name}: stop: ${errMsg(e)}`));
    setCurrent(undefined);
  }
}

/** W4 on a three-member cluster started for this run alone (the run kills its leader), stopped afterwards. */
async function runFailoverRound(
  name: string,
  row: string,
  circuitBreaker: boolean,
  round: number,
  o: CompareOptions,
  out: Outcome,
  setCurrent: (d: SystemDriver | undefined) => void,
): Promise<void> {
  const what = FAILOVER_WORKLOAD.id;
  const driver = (SYSTEMS[name] as NonNullable<(typeof SYSTEMS)[string]>)({ members: o.members, progress: (l) => o.progress(`  ${l}`) });
  if (!driver.leader || !driver.failoverClient) throw new Unavailable(`${name} cannot run W4 (its driver cannot name the leader)`);
  const rowName = row === ETCD_BREAKER_ROW ? 'etcd (etcd3 default circuit breaker)' : name === 'etcd' ? 'etcd (circuit breaker off)' : name;
  setCurrent(driver);
  try {
    const t0 = performance.now();
    await driver.start();
    if (!out.descriptions.has(name)) out.descriptions.set(name, await driver.describe());
    o.progress(`  ${rowName} ${what}: a fresh cluster started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const r = await withTimeout(
      runFailover(driver, { ...o.failoverSettings, circuitBreaker }, (l) => o.progress(`  ${rowName} ${l}`)),
      o.failoverSettings.steadyMs + o.failoverSettings.afterMs + 5 * 60_000,
      `${rowName} ${what}`,
    );
    out.failover.set(row, [...(out.failover.get(row) ?? []), r]);
    o.progress(`  ${rowName} ${what}: ${summarizeFailover(r)}`);
  } catch (e) {
    if (e instanceof Unavailable) throw e;
    out.failures.push({ system: row, round, what, error: errMsg(e) });
    o.progress(`  ${rowName} ${what}: FAILED: ${errMsg(e)}`);
  } finally {
    await driver.stop().catch((e: unknown) => o.progress(`  ${name}: stop: ${errMsg(e)}`));
    setCurrent(undefined);
  }
}

export async function compare(o: CompareOptions): Promise<Outcome> {
  const out: Outcome = { results: new Map(), failures: [], descriptions: new Map(), coord: new Map(), unavailable: new Map(), failover: new Map() };
  let current: SystemDriver | undefined;
  installCleanup(async () => {
    await current?.stop();
  });
  let systems = [...o.systems];
  for (let round = 1; round <= o.rounds; round++) {
    // Rotate the order each round so no system always runs first (or right after another).
    const order = systems.map((_, i) => systems[(i + round - 1) % systems.length] as string);
    o.progress(`round ${round}/${o.rounds}: ${order.join(', ')}`);
    for (const name of order) {
      try {
        if (o.workloads.length > 0 || o.coord.length > 0) await runSystemRound(name, round, o, out, (d) => (current = d));
        if (o.failover) {
          const rows: [string, boolean][] =
            name !== 'etcd' ? [[name, false]] : o.etcdBreaker === 'both' ? [[name, false], [ETCD_BREAKER_ROW, true]] : [[o.etcdBreaker === 'on' ? ETCD_BREAKER_ROW : name, o.etcdBreaker === 'on']];
          for (const [row, breaker] of rows) await runFailoverRound(name, row, breaker, round, o, out, (d) => (current = d));
        }
      } catch (e) {
        // Unavailable: a missing piece of this tree, not a failure to retry.
        out.failures.push({ system: name, round, what: 'start', error: errMsg(e) });
        out.descriptions.set(name, `not available: ${errMsg(e)}`);
        o.progress(`  ${name}: ${errMsg(e)} — skipped from now on`);
        systems = systems.filter((s) => s !== name);
      }
    }
  }
  return out;
}

// ---- the report ----------------------------------------------------------------------------

/** A section's head: title, when and how it ran, the systems and their client libraries. */
function reportHead(title: string, systemsIntro: string, o: CompareOptions, out: Outcome, command: string, started: Date): string[] {
  return [
    `### ${title}`,
    '',
    `${stamp(started)} UTC · ${machine()} · \`${command}\``,
    '',
    systemsIntro,
    '',
    ...o.systems.map((s) => `- ${LABEL[s] ?? s}: ${out.descriptions.get(s) ?? 'did not start'}`),
    '',
    'Clients, all in one Node process (the load generator):',
    '',
    clientLibraries(o.systems),
  ];
}

export function report(o: CompareOptions, out: Outcome, command: string, started: Date): string {
  return [
    ...reportHead('Side by side with etcd and ZooKeeper (issue 3)', 'Systems:', o, out, command, started),
    '',
    ...w12Lines(o, out),
  ].join('\n');
}

/** The W1/W2 table, its notes and ratios, and its failures. */
function w12Lines(o: CompareOptions, out: Outcome): string[] {
  const sys = o.systems.filter((s) => out.results.has(s));
  const lines: string[] = [
    `Each round starts every system fresh (data in a temp dir, ${o.keys.toLocaleString('en-US')} keys preloaded with ${o.valueBytes}-byte values) and runs the`,
    `workloads back to back; the systems take turns within a round (order rotated every round). Closed loop over ${o.connections} connection(s),`,
    `${o.limits.warmupMs / 1000} s warm-up, then ${o.limits.durationMs !== undefined ? `${o.limits.durationMs / 1000} s` : `${o.limits.ops} ops`} measured; etcd is compacted and defragmented (coordvol compacted)`,
    `before each put run. Each column is the median over ${o.rounds} round(s). CPU in % of one core (${machineCores()} cores here):`,
    'server = the system\'s server processes (/proc/PID/stat, summed), client = the load generator (process.cpuUsage()),',
    'other = the rest of the machine\'s busy time (/proc/stat): kernel threads such as page writeback, and any other process.',
    `‡ = the load generator used ≥ ${CLIENT_BOUND_PCT} % of a core in some round: it may be the limit.`,
    '',
    '| workload | system | ops/s | p50 ms | p99 ms | server CPU | client CPU | other CPU | ops/s by round |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const w of o.workloads) {
    for (const s of sys) {
      const rs = out.results.get(s)?.get(w.id) ?? [];
      if (rs.length === 0) {
        lines.push(`| ${w.label} | ${LABEL[s] ?? s} | failed | | | | | | |`);
        continue;
      }
      const m = (f: (r: RunResult) => number): number => median(rs.map(f));
      const bound = rs.some((r) => r.clientBound) ? ' ‡' : '';
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      lines.push(
        `| ${w.label} | ${LABEL[s] ?? s} | ${fmtInt(m((r) => r.opsPerSec))}${bound} | ${fmtMs(m((r) => r.p50Ms))} | ${fmtMs(m((r) => r.p99Ms))} | ` +
          `${fmtInt(m((r) => r.serverCpuPct))} | ${fmtInt(m((r) => r.clientCpuPct))} | ${fmtInt(m(otherCpuPct))} | ` +
          `${rs.map((r) => fmtInt(r.opsPerSec)).join(' / ')}${errors ? ` (${errors} errors)` : ''} |`,
      );
    }
  }
  const otherMax = Math.max(0, ...[...out.results.values()].flatMap((byW) => [...byW.values()].flat()).map(otherCpuPct).filter(Number.isFinite));
  if (otherMax >= OTHER_BUSY_PCT) {
    lines.push(
      '',
      `Other CPU reached ${otherMax.toFixed(0)} % of a core in some run. Kernel threads working for the system under test (page writeback, the`,
      'journal) count there, and so does any other process on the box: a run that shared the machine reads low, so trust ratios from the same round.',
    );
  }
  // Ratios: coordvol over each other system, from this invocation.
  const bases = ['coordvol', 'coordvol-at-most-once', 'coordvol-embedded'].filter((s) => sys.includes(s));
  const base = bases[0];
  const others = sys.filter((s) => !s.startsWith('coordvol'));
  const pairs: [string, string][] = base ? bases.flatMap((b) => others.map((s): [string, string] => [b, s])) : others.length >= 2 ? [[others[1] as string, others[0] as string]] : [];
  if (pairs.length > 0) {
    lines.push('', `Throughput ratios from this invocation (median ops/s over median ops/s; each round's own ratio in brackets):`, '');
    lines.push(`| workload | ${pairs.map(([a, b]) => `${LABEL[a] ?? a} / ${LABEL[b] ?? b}`).join(' | ')} |`, `|---|${pairs.map(() => '---:').join('|')}|`);
    for (const w of o.workloads) {
      const cells = pairs.map(([a, b]) => {
        const ra = out.results.get(a)?.get(w.id) ?? [];
        const rb = out.results.get(b)?.get(w.id) ?? [];
        const ratio = median(ra.map((r) => r.opsPerSec)) / median(rb.map((r) => r.opsPerSec));
        if (!Number.isFinite(ratio)) return '—';
        const perRound = ra.length === rb.length && ra.length > 1 ? ` [${ra.map((r, i) => (r.opsPerSec / (rb[i] as RunResult).opsPerSec).toFixed(2)).join(', ')}]` : '';
        return `${ratio.toFixed(2)}×${perRound}`;
      });
      lines.push(`| ${w.label} | ${cells.join(' | ')} |`);
    }
  }
  if (!base) lines.push('', `coordvol: ${out.descriptions.get('coordvol') ?? 'not in this run'}.`);
  // W3/W5/W6 failures go to their own section, W4's to its table.
  const failures = out.failures.filter((f) => !o.coord.some((w) => w.id === f.what) && f.what !== FAILOVER_WORKLOAD.id);
  if (failures.length > 0) {
    lines.push('', 'Failures:', '');
    for (const f of failures) lines.push(`- round ${f.round}, ${LABEL[f.system] ?? f.system}, ${f.what}: ${f.error.split('\n')[0]}`);
  }
  return lines;
}

/** Row labels of the W4 table. */
const failoverLabel = (row: string): string =>
  row === ETCD_BREAKER_ROW ? 'etcd, etcd3 default circuit breaker' : row === 'etcd' ? 'etcd, circuit breaker off' : (LABEL[row] ?? row);

/** The W4 table and its notes. */
function failoverLines(o: CompareOptions, out: Outcome): string[] {
  const f = o.failoverSettings;
  const rows = o.systems.flatMap((s) => (s !== 'etcd' ? [s] : o.etcdBreaker === 'both' ? ['etcd', ETCD_BREAKER_ROW] : [o.etcdBreaker === 'on' ? ETCD_BREAKER_ROW : 'etcd']));
  const lines: string[] = [
    `**${FAILOVER_WORKLOAD.label}.** Every round starts a fresh three-member cluster per system for this run alone. An open-loop`,
    `writer puts a new key every ${f.intervalMs} ms (≈ ${fmtInt(1000 / f.intervalMs)}/s), each bounded by ${fmtInt(f.callTimeoutMs)} ms, over one client connected to all three`,
    `members; at most ${fmtInt(f.maxOutstanding)} unanswered (a slot finding that many is skipped): more than rate × timeout, so the cap binds only if`,
    'puts outlive their timeout. (A cap of 64 did bind: puts sent to a leaderless etcd hang until their timeout, they held every slot,',
    `and the gap came out as the timeout.) After ${f.steadyMs / 1000} s the leader is found`,
    '(etcd: `etcdctl endpoint status`; ZooKeeper: `srvr`, Mode: leader; coordvol: `status().volume.holder`, the volume-lock holder)',
    `and its PID is SIGKILLed; writing goes on for ${f.afterMs / 1000} s. Longest gap = the longest time with no acknowledged put, from ${f.lookBackMs / 1000} s`,
    'before the kill to the end of writing; first ack = from the kill to the earliest acknowledgment of a put sent after it; slowest',
    'acked put = the longest a put sent after the kill waited for its acknowledgment (what one caller saw). Failed =',
    `puts that returned an error or no answer within ${fmtInt(f.callTimeoutMs)} ms (one answered later still counts as failed). Afterwards every key is`,
    'read back (linearizable, new client): acked lost = an acknowledged key missing or holding another value (aim: 0); failed but',
    'applied = a failed put whose key is there anyway (allowed: its outcome was unknown). Aim (issue): gap ≤ 1 s.',
    ...(!o.systems.includes('etcd')
      ? []
      : o.etcdBreaker === 'on'
        ? ['etcd runs with the etcd3 client\'s default per-host circuit breaker (3 consecutive failures open it for 5 s).']
        : [
            'etcd runs with the etcd3 client\'s per-host circuit breaker off (its global retry, 3 attempts over shuffled hosts, kept)' +
              (o.etcdBreaker === 'both' ? ', and again on another fresh cluster with the default breaker (3 consecutive failures open it for 5 s).' : '.'),
          ]),
    `Medians over ${o.rounds} round(s); totals summed.`,
    '',
    '| system | longest gap, median ms | max ms | gap by round, ms | kill → first ack, median ms | slowest acked put sent after the kill, median ms | failed writes, median (total) | acked lost (total / acked) | failed but applied | puts/s before the kill | slots skipped at the cap, median | leader killed → new leader (last round) |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const row of rows) {
    const rs = out.failover.get(row) ?? [];
    if (rs.length === 0) {
      lines.push(`| ${failoverLabel(row)} | failed | | | | | | | | | | |`);
      continue;
    }
    const m = (g: (r: FailoverResult) => number): number => median(rs.map(g));
    const sum = (g: (r: FailoverResult) => number): number => rs.reduce((a, r) => a + g(r), 0);
    const unreadable = sum((r) => r.unreadable);
    const last = rs[rs.length - 1] as FailoverResult;
    lines.push(
      `| ${failoverLabel(row)} | ${fmtInt(m((r) => r.gapMs))} | ${fmtInt(Math.max(...rs.map((r) => r.gapMs)))} | ${rs.map((r) => fmtInt(r.gapMs)).join(' / ')} | ` +
        `${fmtInt(m((r) => r.recoveryMs))} | ${fmtInt(m((r) => r.slowestAckMs))} | ${fmtInt(m((r) => r.failed))} (${fmtInt(sum((r) => r.failed))}) | ` +
        `${fmtInt(sum((r) => r.lost))}${sum((r) => r.lost) > 0 ? ' **LOST**' : ''} / ${fmtInt(sum((r) => r.acked))}${unreadable ? ` (${fmtInt(unreadable)} unreadable)` : ''} | ` +
        `${fmtInt(sum((r) => r.failedButApplied))} | ${fmtInt(m((r) => r.steadyRate))} | ${fmtInt(m((r) => r.skipped))} | ${last.killed} → ${last.newLeader} |`,
    );
  }
  const gap = (row: string): number => median((out.failover.get(row) ?? []).map((r) => r.gapMs));
  const ratios = rows
    .filter((r) => r !== 'coordvol')
    .map((r) => [r, gap('coordvol') / gap(r)] as const)
    .filter(([, x]) => Number.isFinite(x) && x > 0);
  if (ratios.length > 0) {
    lines.push('', `Longest gap, coordvol over the others (median over median; below 1 = coordvol resumes sooner): ${ratios.map(([r, x]) => `coordvol / ${failoverLabel(r)} ${x.toFixed(2)}×`).join('; ')}.`);
  }
  const errs = rows.flatMap((row) => (out.failover.get(row) ?? []).flatMap((r, i) => (r.firstError ? [`${failoverLabel(row)}, round ${i + 1}: ${r.firstError}`] : [])));
  if (errs.length > 0) lines.push('', 'First failed put of each run:', '', ...errs.map((e) => `- ${e}`));
  const lost = rows.flatMap((row) => (out.failover.get(row) ?? []).flatMap((r, i) => (r.firstLost ? [`${failoverLabel(row)}, round ${i + 1}: ${r.lost} lost, first ${r.firstLost}`] : [])));
  if (lost.length > 0) lines.push('', 'Acknowledged writes lost:', '', ...lost.map((e) => `- ${e}`));
  const failures = out.failures.filter((x) => x.what === FAILOVER_WORKLOAD.id);
  if (failures.length > 0) {
    lines.push('', 'Failures:', '');
    for (const x of failures) lines.push(`- round ${x.round}, ${failoverLabel(x.system)}: ${x.error.split('\n')[0]}`);
  }
  return lines;
}

/** The section of a --members 3 run (bench:replicated): W1/W2 and W4, whichever ran. */
export function replicatedReport(o: CompareOptions, out: Outcome, command: string, started: Date): string {
  const lines: string[] = reportHead('Three members each: throughput and failover', `Systems (${o.members} members each on loopback, data in temp dirs, fsync on):`, o, out, command, started);
  if (o.workloads.length > 0) {
    const [first, ...rest] = w12Lines(o, out);
    lines.push('', `**W1/W2.** ${first ?? ''}`, ...rest);
  }
  else lines.push('', 'W1/W2: not run in this invocation.');
  if (o.failover) lines.push('', ...failoverLines(o, out));
  else lines.push('', 'W4 failover: not run in this invocation.');
  return lines.join('\n');
}

/** For a section BENCHMARKS.md does not have yet: the heading and text the writer appends with its markers. */
const SECTION_HEADINGS: Readonly<Record<string, string>> = {
  'replicated-coordination': [
    '## Watches and sessions on three members each',
    '',
    '`npm run bench -- compare --members 3 --workloads w3[,w5,w6]` runs the watch and session workloads of the section above on',
    'three-member clusters: coordvol as three masters (`coordvol cluster up`), watchers spread over all three, each served by its',
    "master's own brick.",
  ].join('\n'),
  replicated: [
    '## Three members each: throughput and failover',
    '',
    '`npm run bench -- compare --members 3 --workloads w1,w2,w4` runs coordvol as three masters (`coordvol cluster up --masters 3`,',
    'volume-lock lease 500 ms, fsync on) next to three-member etcd and ZooKeeper clusters, all on loopback: W1 puts and W2 gets as',
    'above, and W4, a kill -9 of the leader (coordvol: the volume-lock holder) under ~200 puts/s, on a fresh cluster each round:',
    'the longest time with no acknowledged put, the puts that failed, and whether every acknowledged put is still there.',
  ].join('\n'),
  coordination: '## Watches and sessions side by side (issue 4)',
};

export async function runCompare(args: readonly string[]): Promise<void> {
  const { o: parsed, write } = parseArgs(args);
  const o: CompareOptions = { ...parsed, progress: (l) => process.stderr.write(`${l}\n`) };
  const started = new Date();
  const command = `npm run bench -- compare${args.length ? ' ' + args.join(' ') : ''}`;
  o.progress(`coordvol bench compare: ${machine()}`);
  o.progress(
    `systems ${o.systems.join(', ')}; ${o.rounds} round(s); ${o.members} member(s) each; workloads ${[...o.workloads, ...o.coord, ...(o.failover ? [FAILOVER_WORKLOAD] : [])].map((w) => w.id).join(', ')}`,
  );
  let out: Outcome;
  try {
    out = await compare(o);
  } finally {
    killEverything(); // nothing should be left; if something is, it goes now
  }
  // Each table goes to its own section, and only when its workloads ran in this invocation.
  const sections: [string, string][] = [];
  // A replicated run (--members 3) has a section of its own, so the single-member figures stay.
  if (o.members > 1 && (o.workloads.length > 0 || o.failover)) sections.push(['replicated', replicatedReport(o, out, command, started)]);
  else if (o.workloads.length > 0) sections.push(['compare', report(o, out, command, started)]);
  // W3/W5/W6 of a replicated run likewise go to a section of their own.
  if (o.coord.length > 0) sections.push([o.members > 1 ? 'replicated-coordination' : 'coordination', coordReport(o, out, command, started)]);
  for (const [, text] of sections) process.stdout.write(text + '\n\n');
  if (write) {
    const path = 'BENCHMARKS.md';
    let text = readFileSync(path, 'utf8');
    for (const [name, section] of sections) text = upsertSection(text, name, section, SECTION_HEADINGS[name] ?? name);
    writeFileSync(path, text);
    process.stderr.write(`wrote ${path} (${sections.map(([n]) => n).join(', ')})\n`);
  }
  if (out.results.size === 0 && out.coord.size === 0 && out.failover.size === 0) throw new Error('no system ran');
}
