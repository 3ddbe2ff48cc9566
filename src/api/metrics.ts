// /metrics in the Prometheus text exposition format (version 0.0.4): the fop counters of every
// io-stats translator (profile) and the volume's revs, epoch and keys (status). Each family is
// written whole, HELP and TYPE first, as the format requires.
import type { ProfileEntry, StatusResult } from '../../translators/fops.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Readonly<Record<string, string>>;
interface Sample {
  readonly labels: Labels;
  readonly value: number;
}

/** Label values escape backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function family(out: string[], name: string, type: 'counter' | 'gauge' | 'summary', help: string, samples: readonly Sample[]): void {
  out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  for (const s of samples) out.push(`${name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
}

export function renderMetrics(profile: readonly ProfileEntry[], status: StatusResult): string {
  const total: Sample[] = [];
  const errors: Sample[] = [];
  const latency: Sample[] = [];
  const latencyMax: Sample[] = [];
  const latencySum: Sample[] = [];
  const latencyCount: Sample[] = [];
  for (const p of profile) {
    for (const [fop, s] of Object.entries(p.fops)) {
      const labels = { translator: p.name, fop };
      total.push({ labels, value: s.count });
      errors.push({ labels, value: s.errors });
      latency.push({ labels: { ...labels, quantile: '0.5' }, value: s.latencyMsP50 }, { labels: { ...labels, quantile: '0.99' }, value: s.latencyMsP99 });
      latencySum.push({ labels, value: s.latencyMsSum });
      latencyCount.push({ labels, value: s.count });
      latencyMax.push({ labels, value: s.latencyMsMax });
    }
  }
  const out: string[] = [];
  family(out, 'coordvol_fop_total', 'counter', 'Fops that passed through an io-stats translator.', total);
  family(out, 'coordvol_fop_errors_total', 'counter', 'Fops that failed, per io-stats translator.', errors);
  // Quantiles over the most recent samples (a bounded ring per fop); _sum and _count since start.
  family(out, 'coordvol_fop_latency_ms', 'summary', 'Fop latency in milliseconds (quantiles over recent samples).', latency);
  for (const x of latencySum) out.push(`coordvol_fop_latency_ms_sum${formatLabels(x.labels)} ${formatValue(x.value)}`);
  for (const x of latencyCount) out.push(`coordvol_fop_latency_ms_count${formatLabels(x.labels)} ${formatValue(x.value)}`);
  family(out, 'coordvol_fop_latency_ms_max', 'gauge', 'Highest fop latency in milliseconds since start.', latencyMax);

  const v = status.volume;
  const volume = { volume: v?.volumeName ?? '' };
  const commitRev = v?.commitRev ?? status.brick?.commitRev;
  const compactRev = v?.compactRev ?? status.brick?.compactRev;
  // The keys of this process's brick, else of the holder's.
  const keys = status.brick?.keys ?? v?.bricks.find((b) => b.role === 'holder')?.keys;
  const gauge = (name: string, help: string, value: number | undefined): void => {
    if (value !== undefined) family(out, name, 'gauge', help, [{ labels: volume, value }]);
  };
  gauge('coordvol_commit_rev', 'The highest committed rev.', commitRev);
  gauge('coordvol_compact_rev', 'The compact rev: history below it is gone.', compactRev);
  gauge('coordvol_epoch', "The current holder's epoch.", v?.epoch);
  gauge('coordvol_keys', 'Live keys in the volume.', keys);
  return out.join('\n') + '\n';
}
