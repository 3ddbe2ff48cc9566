// Formatting shared by the side-by-side reports (compare.ts for W1/W2, coord-report.ts for
// W3/W5/W6): number formats, medians, the client libraries' versions, the machine's cores.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
export const fmtMs = (n: number): string => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 0.1 ? n.toFixed(2) : n.toFixed(3)) : '—');
export const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export function median(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Nearest-rank quantile of an ascending array (NaN when empty), as the W1/W2 latencies use. */
export const quantile = (sorted: ArrayLike<number>, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

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

/** One bullet per system's client library, with versions. `zkNote` says how that report uses ZooKeeper's client. */
export function clientLibraries(systems: readonly string[], zkNote = 'sync sent as a raw OpCode.sync, pipelined with getData'): string {
  const libs: string[] = [];
  if (systems.includes('etcd')) {
    const etcd3 = pkgVersion('etcd3');
    const grpc = etcd3.path ? pkgVersion('@grpc/grpc-js', etcd3.path) : { version: '?' };
    libs.push(`etcd: npm \`etcd3\` ${etcd3.version} (\`@grpc/grpc-js\` ${grpc.version}, pure JS), one gRPC channel per connection`);
  }
  if (systems.includes('zookeeper')) {
    libs.push(`ZooKeeper: npm \`node-zookeeper-client\` ${pkgVersion('node-zookeeper-client').version} (pure JS; ${zkNote})`);
  }
  if (systems.includes('coordvol')) libs.push('coordvol: this tree\'s `connect()` (src/client)');
  return libs.map((l) => `- ${l}`).join('\n');
}

export function machineCores(): number {
  return (readFileSync('/proc/stat', 'utf8').match(/^cpu\d+ /gm) ?? []).length || 1;
}

/** "2026-11-22 01:42" for the report header. */
export const stamp = (d: Date): string => d.toISOString().slice(0, 16).replace('T', ' ');
