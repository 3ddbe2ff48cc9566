// `npm run bench -- compare`: coordvol side by side with etcd and ZooKeeper (issue 3), in one
// invocation so the ratios are not spoiled by the drift between runs on this machine. For each
// round, for each system (the order rotates every round), the system starts fresh (temp data
// dir, 10,000 keys preloaded), runs every workload back to back, and stops. The table shows the
// median of each column over the rounds, and coordvol's throughput over etcd's and ZooKeeper's.
//
//   npm run bench -- compare [--rounds N] [--systems coordvol,etcd,zookeeper] [--quick] [--write]
//                            [--members 1|3] [--duration S] [--warmup S] [--ops N]
//                            [--connections N] [--workloads w1-put-64,...] [--keys N]
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { machine, replaceSection } from './machine.js';
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
  readonly progress: (line: string) => void;
}

interface Outcome {
  /** Per system, per workload id: one result per round that ran. */
  readonly results: Map<string, Map<string, RunResult[]>>;
  readonly failures: { system: string; round: number; what: string; error: string }[];
  readonly descriptions: Map<string, string>;
}

const PRELOAD_IN_FLIGHT = 64;

function parseArgs(args: readonly string[]): { o: Omit<CompareOptions, 'progress'>; write: boolean } {
  const known = new Set(['--rounds', '--systems', '--quick', '--write', '--members', '--duration', '--warmup', '--ops', '--connections', '--workloads', '--keys']);
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
  const ids = str('--workloads')?.split(',').filter(Boolean);
  for (const id of ids ?? []) if (!WORKLOADS.some((w) => w.id === id)) throw new Error(`compare: unknown workload ${id} (known: ${WORKLOADS.map((w) => w.id).join(', ')})`);
  const warmupMs = num('--warmup', quick ? 1 : 2, 0) * 1000;
  const ops = str('--ops') === undefined ? undefined : num('--ops', 0, 1);
  const durationMs = num('--duration', quick ? 3 : 10, 0.1) * 1000;
  return {
    write: args.includes('--write'),
    o: {
      rounds: num('--rounds', quick ? 1 : 3, 1),
      systems,
      workloads: ids ? WORKLOADS.filter((w) => ids.includes(w.id)) : WORKLOADS,
      members: num('--members', 1, 1),
      connections: num('--connections', 1, 1),
      keys: num('--keys', 10_000, 1),
      valueBytes: 256,
      limits: ops !== undefined ? { warmupMs, ops, maxMs: warmupMs + 10 * 60_000 } : { warmupMs, durationMs, maxMs: warmupMs + durationMs + 60_000 },
    },
  };
}

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fmtMs = (n: number): string => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 0.1 ? n.toFixed(2) : n.toFixed(3)) : '—');
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The machine's busy time less the system's servers and the load generator: whatever else ran. */
const otherCpuPct = (r: RunResult): number => r.machineCpuPct - r.clientCpuPct - (Number.isFinite(r.serverCpuPct) ? r.serverCpuPct : 0);
/** Above this (% of a core) the report says other work shared the machine. */
const OTHER_BUSY_PCT = 25;

function median(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

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
    what = 'preload';
    await withTimeout(driver.preload(keys, value, PRELOAD_IN_FLIGHT), 10 * 60_000, `${name}: preload`);
    o.progress(`  ${name}: started and preloaded ${o.keys.toLocaleString('en-US')} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    what = 'connect';
    for (let i = 0; i < o.connections; i++) clients.push(await driver.client());
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
  const out: Outcome = { results: new Map(), failures: [], descriptions: new Map() };
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

function pkgVersion(name: string, from = import.meta.url): { version: string; path: string } {
  try {
    const req = createRequire(from);
    let dir = dirname(req.resolve(name));
    for (let i = 0; i < 8; i++) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return { version: pkg.version ?? '?', path: join(dir, 'package.json') };
      } catch {
        /* keep walking up */
      }
      dir = dirname(dir);
    }
  } catch {
    /* not installed */
  }
  return { version: '?', path: '' };
}

function clientLibraries(systems: readonly string[]): string {
  const libs: string[] = [];
  if (systems.includes('etcd')) {
    const etcd3 = pkgVersion('etcd3');
    const grpc = etcd3.path ? pkgVersion('@grpc/grpc-js', etcd3.path) : { version: '?' };
    libs.push(`etcd: npm \`etcd3\` ${etcd3.version} (\`@grpc/grpc-js\` ${grpc.version}, pure JS), one gRPC channel per connection`);
  }
  if (systems.includes('zookeeper')) {
    libs.push(`ZooKeeper: npm \`node-zookeeper-client\` ${pkgVersion('node-zookeeper-client').version} (pure JS; sync sent as a raw OpCode.sync, pipelined with getData)`);
  }
  if (systems.includes('coordvol')) libs.push('coordvol: this tree\'s `connect()` (src/client)');
  return libs.map((l) => `- ${l}`).join('\n');
}

export function report(o: CompareOptions, out: Outcome, command: string, started: Date): string {
  const sys = o.systems.filter((s) => out.results.has(s));
  const lines: string[] = [
    '### Side by side with etcd and ZooKeeper (issue 3)',
    '',
    `${started.toISOString().slice(0, 16).replace('T', ' ')} UTC · ${machine()} · \`${command}\``,
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
  if (out.failures.length > 0) {
    lines.push('', 'Failures:', '');
    for (const f of out.failures) lines.push(`- round ${f.round}, ${LABEL[f.system] ?? f.system}, ${f.what}: ${f.error.split('\n')[0]}`);
  }
  return lines.join('\n');
}

function machineCores(): number {
  return (readFileSync('/proc/stat', 'utf8').match(/^cpu\d+ /gm) ?? []).length || 1;
}

export async function runCompare(args: readonly string[]): Promise<void> {
  const { o: parsed, write } = parseArgs(args);
  const o: CompareOptions = { ...parsed, progress: (l) => process.stderr.write(`${l}\n`) };
  const started = new Date();
  const command = `npm run bench -- compare${args.length ? ' ' + args.join(' ') : ''}`;
  o.progress(`coordvol bench compare: ${machine()}`);
  o.progress(`systems ${o.systems.join(', ')}; ${o.rounds} round(s); ${o.members} member(s) each; workloads ${o.workloads.map((w) => w.id).join(', ')}`);
  let out: Outcome;
  try {
    out = await compare(o);
  } finally {
    killEverything(); // nothing should be left; if something is, it goes now
  }
  const section = report(o, out, command, started);
  process.stdout.write(section + '\n');
  if (write) {
    const path = 'BENCHMARKS.md';
    writeFileSync(path, replaceSection(readFileSync(path, 'utf8'), 'compare', section, path));
    process.stderr.write(`wrote ${path}\n`);
  }
  if (out.results.size === 0) throw new Error('no system ran');
}
