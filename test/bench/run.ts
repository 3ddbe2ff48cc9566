// `npm run bench`: runs the benchmarks and prints a markdown table; with --write, replaces the
// generated section of BENCHMARKS.md.
//   npm run bench [-- single] [--rounds N] [--quick] [--write] [--no-fsync]   the in-process single brick (issue 2)
//   npm run bench -- compare [--rounds N] [--systems coordvol,etcd,zookeeper] [--quick] [--write] …
//                                                                        side by side with etcd and ZooKeeper (compare.ts)
//   npm run bench -- compare --workloads w3,w5,w6 [--sessions 1000,10000] …   watches and sessions (issue 4, coord-workloads.ts)
//   npm run bench -- compare --members 3 --workloads w1,w2,w4 …              three members each: W1/W2 and W4 failover
//                                                                        (workloads-failover.ts), its own section (bench:replicated)
//   npm run bench -- bootstrap [--keys N] [--quick] [--write]               peer probe --as-master of two daemons into a volume holding data (bootstrap.ts)
import { readFileSync, writeFileSync } from 'node:fs';
import { machine, replaceSection } from './machine.js';
import { runSingleBrick, type WorkloadResult } from './single-brick.js';

const argv = process.argv.slice(2);
const command = argv[0] === 'compare' || argv[0] === 'single' || argv[0] === 'bootstrap' ? argv[0] : 'single';
const args = argv[0] === command ? argv.slice(1) : argv;
const flag = (name: string): boolean => args.includes(name);
const value = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};

function rows(rs: readonly WorkloadResult[]): string {
  const lines = ['| workload | ops | ops/s | p50 ms | p99 ms | process CPU (% of one core) |', '|---|---:|---:|---:|---:|---:|'];
  for (const r of rs) {
    lines.push(`| ${r.name} | ${r.ops} | ${Math.round(r.opsPerSec).toLocaleString('en-US')} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.cpuPct.toFixed(0)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const quick = flag('--quick');
  const rounds = value('--rounds', quick ? 1 : 3);
  const started = new Date().toISOString().slice(0, 16).replace('T', ' ');
  process.stderr.write(`coordvol bench: ${machine()}\n`);
  const single = await runSingleBrick({
    rounds,
    concurrency: 64,
    keys: 10_000,
    valueBytes: 256,
    putOps: quick ? 5_000 : 60_000,
    getOps: quick ? 50_000 : 1_000_000,
    txnOps: quick ? 5_000 : 60_000,
    fsync: !flag('--no-fsync'),
    progress: (l) => process.stderr.write(`  ${l}\n`),
  });
  const section = [
    `### Single brick, in-process (issue 2)`,
    ``,
    `${started} UTC · ${machine()} · \`npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}\``,
    ``,
    `openVolume() with the default graph (io-stats → replicate → io-stats → locks → storage/lmdb),`,
    `fsync ${flag('--no-fsync') ? 'OFF' : 'on'}, 256-byte values over 10,000 keys, 64 concurrent callers in the same process;`,
    `median of ${rounds} round(s), each on a fresh volume.`,
    ``,
    rows(single),
  ].join('\n');
  process.stdout.write(section + '\n');
  if (flag('--write')) {
    const path = 'BENCHMARKS.md';
    writeFileSync(path, replaceSection(readFileSync(path, 'utf8'), 'single-brick', section, path));
    process.stderr.write(`wrote ${path}\n`);
  }
}

(command === 'compare' ? import('./compare.js').then((m) => m.runCompare(args)) : command === 'bootstrap' ? import('./bootstrap.js').then((m) => m.runBootstrapBench(args)) : main()).catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
