// `npm run bench -- compare`: coordvol side by side with etcd and ZooKeeper (issue 3), in one
// invocation so the ratios are not spoiled by the drift between runs on this machine. For each
// round, for each system (the order rotates every round), the system starts fresh (temp data
// dir, 10,000 keys preloaded), runs every workload back to back, and stops. The table shows the
// median of each column over the rounds, and coordvol's throughput over etcd's and ZooKeeper's.
// The watch and session workloads of issue 4 (W3, W5, W6: coord-workloads.ts) run only when
// --workloads names them, after W1/W2 on the same started system, and have their own section.
//
//   npm run bench -- compare [--rounds N] [--systems coordvol,etcd,zookeeper] [--quick] [--write]
//                            [--members 1|3] [--duration S] [--warmup S] [--ops N]
//                            [--connections N] [--workloads w1-put-64,...] [--keys N]
//   npm run bench -- compare --workloads w3,w5,w6 [--watchers N] [--watch-connections N]
//                            [--expiry-reps N] [--sessions N,N] [--session-ttl S] [--window S] …
// A --workloads entry names a workload or, before a '-', a family of them (w1, w6-sessions).
import { readFileSync, writeFileSync } from 'node:fs';
import { machine, replaceSection } from './machine.js';
import { clientLibraries, errMsg, fmtInt, fmtMs, machineCores, median, stamp } from './report-common.js';
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
  readonly progress: (line: string) => void;
}

interface Outcome {
  /** Per system, per workload id: one result per round that ran. */
  readonly results: Map<string, Map<string, RunResult[]>>;
  readonly failures: { system: string; round: number; what: string; error: string }[];
  readonly descriptions: Map<string, string>;
  /** The same for W3/W5/W6. */
  readonly coord: Map<string, Map<string, CoordResult[]>>;
  /** Systems that cannot run W3/W5/W6 in this tree (their W1/W2 still run), with why. */
  readonly unavailable: Map<string, string>;
}

/** A W3/W5/W6 run that has not finished by then is abandoned as stuck (W6 with 10,000 sessions takes minutes). */
const COORD_RUN_MAX_MS = 20 * 60_000;

const PRELOAD_IN_FLIGHT = 64;

function parseArgs(args: readonly string[]): { o: Omit<CompareOptions, 'progress'>; write: boolean } {
  const known = new Set([
    '--rounds', '--systems', '--quick', '--write', '--members', '--duration', '--warmup', '--ops', '--connections', '--workloads', '--keys',
    '--watchers', '--watch-connections', '--expiry-reps', '--sessions', '--session-ttl', '--window',
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
    if (![...WORKLOADS, ...coordAll].some((w) => w.id === sel || w.id.startsWith(`${sel}-`))) {
      throw new Error(`compare: unknown workload ${sel} (known: ${[...WORKLOADS, ...coordAll].map((w) => w.id).join(', ')}, or a family: w1, w2, w3, w5, w6)`);
    }
  }
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
      members: num('--members', 1, 1),
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

export async function compare(o: CompareOptions): Promise<Outcome> {
  const out: Outcome = { results: new Map(), failures: [], descriptions: new Map(), coord: new Map(), unavailable: new Map() };
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
        await runSystemRound(name, round, o, out, (d) => (current = d));
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

export function report(o: CompareOptions, out: Outcome, command: string, started: Date): string {
  const sys = o.systems.filter((s) => out.results.has(s));
  const lines: string[] = [
    '### Side by side with etcd and ZooKeeper (issue 3)',
    '',
    `${stamp(started)} UTC · ${machine()} · \`${command}\``,
    '',
    'Systems:',
    '',
    ...o.systems.map((s) => `- ${LABEL[s] ?? s}: ${out.descriptions.get(s) ?? 'did not start'}`),
    '',
    'Clients, all in one Node process (the load generator):',
    '',
    clientLibraries(o.systems),
    '',
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
  const base = ['coordvol', 'coordvol-embedded'].find((s) => sys.includes(s));
  const others = sys.filter((s) => s !== base && !s.startsWith('coordvol'));
  const pairs: [string, string][] = base ? others.map((s) => [base, s]) : others.length >= 2 ? [[others[1] as string, others[0] as string]] : [];
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
  const failures = out.failures.filter((f) => !o.coord.some((w) => w.id === f.what)); // W3/W5/W6 failures go to their own section
  if (failures.length > 0) {
    lines.push('', 'Failures:', '');
    for (const f of failures) lines.push(`- round ${f.round}, ${LABEL[f.system] ?? f.system}, ${f.what}: ${f.error.split('\n')[0]}`);
  }
  return lines.join('\n');
}

export async function runCompare(args: readonly string[]): Promise<void> {
  const { o: parsed, write } = parseArgs(args);
  const o: CompareOptions = { ...parsed, progress: (l) => process.stderr.write(`${l}\n`) };
  const started = new Date();
  const command = `npm run bench -- compare${args.length ? ' ' + args.join(' ') : ''}`;
  o.progress(`coordvol bench compare: ${machine()}`);
  o.progress(`systems ${o.systems.join(', ')}; ${o.rounds} round(s); ${o.members} member(s) each; workloads ${[...o.workloads, ...o.coord].map((w) => w.id).join(', ')}`);
  let out: Outcome;
  try {
    out = await compare(o);
  } finally {
    killEverything(); // nothing should be left; if something is, it goes now
  }
  // Each table goes to its own section, and only when its workloads ran in this invocation.
  const sections: [string, string][] = [];
  if (o.workloads.length > 0) sections.push(['compare', report(o, out, command, started)]);
  if (o.coord.length > 0) sections.push(['coordination', coordReport(o, out, command, started)]);
  for (const [, text] of sections) process.stdout.write(text + '\n\n');
  if (write) {
    const path = 'BENCHMARKS.md';
    let text = readFileSync(path, 'utf8');
    for (const [name, section] of sections) text = replaceSection(text, name, section, path);
    writeFileSync(path, text);
    process.stderr.write(`wrote ${path} (${sections.map(([n]) => n).join(', ')})\n`);
  }
  if (out.results.size === 0 && out.coord.size === 0) throw new Error('no system ran');
}
