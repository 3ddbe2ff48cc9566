// The markdown section for W3/W5/W6 (between the bench:coordination markers of BENCHMARKS.md),
// and the one-line summary of each run for the progress output. Medians over rounds, as the
// W1/W2 table has; W5 pools every repetition of every round. Lower is better in every column.
import { machine } from './machine.js';
import { clientLibraries, fmtInt, fmtMs, machineCores, median, stamp } from './report-common.js';
import type { CoordKind, CoordResult, CoordSettings, CoordWorkload } from './coord-workloads.js';
import type { SessionExpiryResult } from './workloads-session.js';
import type { SteadyResult } from './workloads-steady.js';
import type { WatchFanoutResult } from './workloads-watch.js';
import { CLIENT_BOUND_PCT, type CpuWindow } from './cpu-window.js';
import { LABEL } from './systems/index.js';

export interface CoordOutcome {
  /** Per system, per workload id: one result per round that ran. */
  readonly coord: Map<string, Map<string, CoordResult[]>>;
  /** Systems that cannot run W3/W5/W6 in this tree, with why. */
  readonly unavailable: Map<string, string>;
  readonly failures: readonly { system: string; round: number; what: string; error: string }[];
  readonly descriptions: Map<string, string>;
}

const MiB = 2 ** 20;
const fmtS = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '—');
/** A setting in seconds, as short as it is exact: 2, 0.5, 10. */
const fmtSetting = (ms: number): string => String(ms / 1000);
const fmtMiB = (b: number): string => (Number.isFinite(b) ? (b / MiB).toFixed(0) : '—');
const label = (s: string): string => LABEL[s] ?? s;
/** The machine's busy time less the system's servers and the load generator: whatever else ran (as compare.ts reports it). */
const otherCpuPct = (r: CpuWindow): number => r.machineCpuPct - r.clientCpuPct - (Number.isFinite(r.serverCpuPct) ? r.serverCpuPct : 0);
/** Above this (% of a core) the report says other work shared the machine. */
const OTHER_BUSY_PCT = 25;

/** One progress line for a finished run. */
export function summarize(res: CoordResult): string {
  const cpu = (r: { serverCpuPct: number; clientCpuPct: number; clientBound: boolean }): string =>
    `server ${fmtInt(r.serverCpuPct)} %, client ${fmtInt(r.clientCpuPct)} %${r.clientBound ? ' — load generator bound' : ''}`;
  switch (res.kind) {
    case 'watch': {
      const r = res.r;
      return (
        `${fmtInt(r.delivered)}/${fmtInt(r.expected)} notified, ${fmtInt(r.missed)} missed (${fmtInt(r.neverSeen)} never seen), ` +
        `p50 ${fmtMs(r.p50Ms)} ms, p99 ${fmtMs(r.p99Ms)} ms, max ${fmtMs(r.maxMs)} ms (${fmtInt(r.beforeAck)} before the ack, write p50 ${fmtMs(r.writeP50Ms)} ms; from the send p50 ${fmtMs(r.p50FromSendMs)}, p99 ${fmtMs(r.p99FromSendMs)} ms), ${cpu(r)}` +
        `${r.duplicates ? `, ${r.duplicates} duplicates` : ''}${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}`
      );
    }
    case 'expiry': {
      const r = res.r;
      return `TTL ${r.ttlMs} ms (granted ${fmtInt(r.grantedTtlMs)}): median ${fmtS(median(r.samplesMs))} s, max ${fmtS(Math.max(...r.samplesMs))} s over ${r.samplesMs.length} rep(s)${r.failures.length ? `, ${r.failures.length} failed` : ''}`;
    }
    case 'steady': {
      const r = res.r;
      return (
        `${fmtInt(r.sessions)} sessions (TTL ${fmtInt(r.grantedTtlMs)} ms) open in ${r.setupSecs.toFixed(1)} s; ${cpu(r)}, ` +
        `server RSS ${fmtMiB(r.rssBeforeBytes)} → ${fmtMiB(r.rssBytes)} MiB${r.lost ? `, ${r.lost} sessions LOST, ${r.lostInWindow} of them in the window (first: ${r.firstLost})` : ''}`
      );
    }
  }
}

interface ResultOfKind {
  readonly watch: WatchFanoutResult;
  readonly expiry: SessionExpiryResult;
  readonly steady: SteadyResult;
}

function resultsOf<K extends CoordKind>(out: CoordOutcome, system: string, id: string, kind: K): ResultOfKind[K][] {
  const rs: ResultOfKind[K][] = [];
  for (const x of out.coord.get(system)?.get(id) ?? []) if (x.kind === kind) rs.push(x.r as ResultOfKind[K]); // kind checked: the cast only names it
  return rs;
}

function watchRows(w: CoordWorkload, systems: readonly string[], out: CoordOutcome): string[] {
  const lines = [
    '| system | notified / expected | missed | never seen | p50 ms | p99 ms | max ms | notified before the ack | write p50 ms | p50 / p99 ms from the send | server CPU | client CPU | other CPU | p99 ms by round |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const s of systems) {
    const rs = resultsOf(out, s, w.id, 'watch');
    if (rs.length === 0) {
      lines.push(`| ${label(s)} | ${out.unavailable.has(s) ? 'not available' : 'failed'} | | | | | | | | | | | | |`);
      continue;
    }
    const m = (f: (r: WatchFanoutResult) => number): number => median(rs.map(f));
    const sum = (f: (r: WatchFanoutResult) => number): number => rs.reduce((a, r) => a + f(r), 0);
    const beforeAckPct = (100 * sum((r) => r.beforeAck)) / sum((r) => r.delivered);
    const bound = rs.some((r) => r.clientBound) ? ' ‡' : '';
    lines.push(
      `| ${label(s)} | ${fmtInt(sum((r) => r.delivered))} / ${fmtInt(sum((r) => r.expected))} | ${fmtInt(sum((r) => r.missed))} | ${fmtInt(sum((r) => r.neverSeen))} | ` +
        `${fmtMs(m((r) => r.p50Ms))} | ${fmtMs(m((r) => r.p99Ms))}${bound} | ${fmtMs(m((r) => r.maxMs))} | ` +
        `${Number.isFinite(beforeAckPct) ? `${beforeAckPct.toFixed(0)} %` : '—'} | ${fmtMs(m((r) => r.writeP50Ms))} | ${fmtMs(m((r) => r.p50FromSendMs))} / ${fmtMs(m((r) => r.p99FromSendMs))} | ` +
        `${fmtInt(m((r) => r.serverCpuPct))} | ${fmtInt(m((r) => r.clientCpuPct))} | ${fmtInt(m(otherCpuPct))} | ` +
        `${rs.map((r) => fmtMs(r.p99Ms)).join(' / ')} |`,
    );
  }
  return lines;
}

function expiryRows(w: CoordWorkload, systems: readonly string[], out: CoordOutcome): string[] {
  const lines = ['| system | TTL asked → granted | median s | max s | every repetition, s |', '|---|---|---:|---:|---|'];
  for (const s of systems) {
    const rs = resultsOf(out, s, w.id, 'expiry');
    const samples = rs.flatMap((r) => r.samplesMs);
    if (samples.length === 0) {
      lines.push(`| ${label(s)} | ${out.unavailable.has(s) ? 'not available' : 'failed'} | | | |`);
      continue;
    }
    const granted = [...new Set(rs.map((r) => r.grantedTtlMs))].map((g) => `${fmtS(g)} s`).join(', ');
    const failed = rs.reduce((a, r) => a + r.failures.length, 0);
    lines.push(
      `| ${label(s)} | ${fmtS(rs[0]?.ttlMs ?? NaN)} s → ${granted} | ${fmtS(median(samples))} | ${fmtS(Math.max(...samples))} | ` +
        `${samples.map(fmtS).join(', ')}${failed ? ` (${failed} failed)` : ''} |`,
    );
  }
  return lines;
}

/** "(120 in the window)" when some sessions were lost, so setup losses and steady-state losses are told apart. */
const lostNote = (rs: readonly SteadyResult[]): string => {
  const lost = rs.reduce((a, r) => a + r.lost, 0);
  return lost > 0 ? ` (${fmtInt(rs.reduce((a, r) => a + r.lostInWindow, 0))} in the window)` : '';
};

function steadyRows(ws: readonly CoordWorkload[], systems: readonly string[], out: CoordOutcome): string[] {
  const lines = [
    '| workload | system | server CPU | server RSS MiB, before → with them | client CPU | other CPU | sessions lost | setup s | server CPU by round |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const w of ws) {
    for (const s of systems) {
      const rs = resultsOf(out, s, w.id, 'steady');
      if (rs.length === 0) {
        lines.push(`| ${w.label} | ${label(s)} | ${out.unavailable.has(s) ? 'not available' : 'failed'} | | | | | | |`);
        continue;
      }
      const m = (f: (r: SteadyResult) => number): number => median(rs.map(f));
      const bound = rs.some((r) => r.clientBound) ? ' ‡' : '';
      lines.push(
        `| ${w.label} | ${label(s)} | ${fmtMs(m((r) => r.serverCpuPct))} | ${fmtMiB(m((r) => r.rssBeforeBytes))} → ${fmtMiB(m((r) => r.rssBytes))} | ` +
          `${fmtInt(m((r) => r.clientCpuPct))}${bound} | ${fmtInt(m(otherCpuPct))} | ${fmtInt(rs.reduce((a, r) => a + r.lost, 0))}${lostNote(rs)} | ${m((r) => r.setupSecs).toFixed(1)} | ` +
          `${rs.map((r) => fmtMs(r.serverCpuPct)).join(' / ')} |`,
      );
    }
  }
  return lines;
}

interface Figure {
  readonly name: string;
  readonly v: number;
  /** Why there is no comparable figure, when there is none. */
  readonly void?: string;
}

/**
 * The figures of one system for one workload that the ratio table compares (lower is better for
 * all). W3 compares latency from the send: from the ack, a server that notifies before it
 * answers the writer scores 0 and the ratio says nothing. A W6 run that lost sessions did not
 * hold N of them, so it has no figure.
 */
function figures(out: CoordOutcome, s: string, w: CoordWorkload): Figure[] {
  switch (w.kind) {
    case 'watch': {
      const rs = resultsOf(out, s, w.id, 'watch');
      return [
        { name: 'p50 latency from the send', v: median(rs.map((r) => r.p50FromSendMs)) },
        { name: 'p99 latency from the send', v: median(rs.map((r) => r.p99FromSendMs)) },
      ];
    }
    case 'expiry':
      return [{ name: 'median SIGKILL → delete', v: median(resultsOf(out, s, w.id, 'expiry').flatMap((r) => r.samplesMs)) }];
    case 'steady': {
      const rs = resultsOf(out, s, w.id, 'steady');
      const lost = rs.some((r) => r.lost > 0) ? { void: `${label(s)} lost sessions` } : {};
      return [
        { name: 'server CPU', v: median(rs.map((r) => r.serverCpuPct)), ...lost },
        { name: 'server RSS growth', v: median(rs.map((r) => r.rssBytes - r.rssBeforeBytes)), ...lost },
      ];
    }
  }
}

function ratioRows(ws: readonly CoordWorkload[], systems: readonly string[], out: CoordOutcome): string[] {
  const base = systems.includes('coordvol') && out.coord.has('coordvol') ? 'coordvol' : undefined;
  const others = systems.filter((s) => s !== base && !s.startsWith('coordvol') && out.coord.has(s));
  const pairs: [string, string][] = base ? others.map((s) => [base, s]) : others.length >= 2 ? [[others[1] as string, others[0] as string]] : [];
  if (pairs.length === 0) return [];
  const lines = [
    '',
    'Ratios from this invocation (median over median; below 1 means the first system needs less time, CPU or memory):',
    '',
    `| workload | figure | ${pairs.map(([a, b]) => `${label(a)} / ${label(b)}`).join(' | ')} |`,
    `|---|---|${pairs.map(() => '---:').join('|')}|`,
  ];
  for (const w of ws) {
    const names = figures(out, pairs[0]?.[0] ?? '', w).map((f) => f.name);
    names.forEach((name, i) => {
      const cells = pairs.map(([a, b]) => {
        const fa = figures(out, a, w)[i];
        const fb = figures(out, b, w)[i];
        const why = fa?.void ?? fb?.void;
        if (why) return `— (${why})`;
        const r = (fa?.v ?? NaN) / (fb?.v ?? NaN);
        return Number.isFinite(r) && r > 0 ? `${r.toFixed(2)}×` : '—';
      });
      lines.push(`| ${w.label} | ${name} | ${cells.join(' | ')} |`);
    });
  }
  return lines;
}

export function coordReport(
  o: { readonly systems: readonly string[]; readonly rounds: number; readonly coord: readonly CoordWorkload[]; readonly coordSettings: CoordSettings },
  out: CoordOutcome,
  command: string,
  started: Date,
): string {
  const s = o.coordSettings;
  const watch = o.coord.find((w) => w.kind === 'watch');
  const expiry = o.coord.find((w) => w.kind === 'expiry');
  const steady = o.coord.filter((w) => w.kind === 'steady');
  const perConn = Math.ceil(s.watchers / s.watchConnections);
  const lines: string[] = [
    '### Watches and sessions side by side (issue 4)',
    '',
    `${stamp(started)} UTC · ${machine()} · \`${command}\``,
    '',
    'Systems (each started fresh every round, on loopback, data in a temp dir):',
    '',
    ...o.systems.map((x) => `- ${label(x)}: ${out.unavailable.get(x) ? `W3/W5/W6 not available: ${out.unavailable.get(x)}` : (out.descriptions.get(x) ?? 'did not start')}`),
    '',
    'Clients, all in one Node process (the load generator) but for W5\'s killed client:',
    '',
    clientLibraries(o.systems, 'prefix watches are one-shot getChildren watches, re-armed on every notification; a session is the connection\'s own'),
    '',
    `Each column is the median over ${o.rounds} round(s). CPU in % of one core (${machineCores()} cores here): server = the system's server`,
    'processes (/proc/PID/stat, summed), client = the load generator (process.cpuUsage()), other = the rest of the machine\'s busy',
    'time (/proc/stat): kernel threads such as page writeback, and any other process.',
    `‡ = the load generator used ≥ ${CLIENT_BOUND_PCT} % of a core in some round: it may be what the figure measures.`,
  ];
  if (watch) {
    lines.push(
      '',
      `**${watch.label}.** ${fmtInt(s.watchers)} watchers on one prefix over ${s.watchConnections} connections (${perConn} per connection), and one more`,
      `connection writing ${s.writes} new keys under the prefix at ${s.writesPerSec}/s, one at a time. Every watcher is armed before the clock`,
      'starts (a sentinel key must reach all of them). Latency runs from the writer\'s acknowledgment to a watcher\'s receipt of its',
      'own notification of that change; one that beats the ack counts as 0 ms, so the same notifications are also timed from',
      'when the write was sent: a server that sends the watch events of a commit before its reply to the writer (coordvol, and',
      'mostly ZooKeeper) shows ~0 from the ack, and the ratios below compare latency from the send. Missed = a change a watcher got no notification of',
      'its own for, out of watchers × writes: ZooKeeper\'s watches are one-shot, so a change made while a watcher re-arms shows up',
      'only in the re-arm\'s list (never seen = not even there, ' + `${s.drainMs / 1000} s after the last ack). ZooKeeper keeps one watch per session and`,
      `path: the ${perConn} watchers of a connection share one server notification, then each re-arms with its own getChildren.`,
      '',
      ...watchRows(watch, o.systems, out),
    );
  }
  if (expiry) {
    lines.push(
      '',
      `**${expiry.label}.** A client in a child process opens a session asking for a ${fmtSetting(s.expiryTtlMs)} s TTL (etcd: a lease; ZooKeeper:`,
      'sessionTimeout, granted as asked because the servers run with minSessionTimeout=2000; coordvol: openSession), puts one',
      'ephemeral key and is SIGKILLed; a watcher in the harness measures from the kill to receiving the key\'s delete. The kills',
      `land TTL/2 to TTL/2 + TTL/3 after the child reported its key (spread over one keepalive interval); ${s.expiryReps} repetitions`,
      'per round, median and max over all of them.',
      '',
      ...expiryRows(expiry, o.systems, out),
    );
  }
  if (steady.length > 0) {
    lines.push(
      '',
      `**W6 N sessions + N watches.** N clients, each on its own connection with one session (TTL ${fmtSetting(s.sessionTtlMs)} s, kept alive by`,
      'its library every TTL/3), one ephemeral key in it and one watch on a prefix nobody writes to; nothing else. After',
      `${s.settleMs / 1000} s to settle, server CPU over ${s.windowMs / 1000} s and server RSS at its end (summed over the server's processes;`,
      '"before" is the server before the N clients connected). Sessions lost = sessions the system ended before the harness',
      'closed them (a load generator that could not keep up, or a server that expired live sessions): such a row is not N live',
      'sessions and gets no ratio. RSS of a JVM (ZooKeeper) is the heap it has grown to, which earlier workloads in the round',
      'leave behind, more than what the sessions need.',
      '',
      ...steadyRows(steady, o.systems, out),
    );
  }
  const windows: CpuWindow[] = [...out.coord.values()].flatMap((byW) => [...byW.values()].flat()).flatMap((x) => (x.kind === 'expiry' ? [] : [x.r]));
  const otherMax = Math.max(0, ...windows.map(otherCpuPct).filter(Number.isFinite));
  if (otherMax >= OTHER_BUSY_PCT) {
    lines.push(
      '',
      `Other CPU reached ${otherMax.toFixed(0)} % of a core in some window: something else shared the machine then, so compare figures from the same round.`,
    );
  }
  lines.push(...ratioRows(o.coord, o.systems, out));
  const failures = out.failures.filter((f) => o.coord.some((w) => w.id === f.what) && !out.unavailable.has(f.system));
  if (failures.length > 0) {
    lines.push('', 'Failures:', '');
    for (const f of failures) lines.push(`- round ${f.round}, ${label(f.system)}, ${f.what}: ${f.error.split('\n')[0]}`);
  }
  return lines.join('\n');
}
