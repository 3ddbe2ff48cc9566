// `npm run sim -- --seeds N --from S [--bug NAME] [--trace] [--duration MS] [--retain REVS --pin REVS]`: runs seeds S..S+N−1
// and prints one line per seed; a failing seed prints its violation and the command that
// reproduces it exactly (with --trace, the run's notable events up to the violation).
import { Command, InvalidArgumentError } from 'commander';
import { BUGS, reproduceCommand, runSeed, type BugName } from './seeds.js';

const int = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('a non-negative integer');
  return n;
};

const program = new Command('sim')
  .description('run the deterministic replication simulator over a range of seeds')
  .option('--seeds <n>', 'how many seeds', int, 100)
  .option('--from <seed>', 'first seed', int, 1)
  .option('--bug <name>', `run a deliberately broken variant: ${Object.keys(BUGS).join(', ')}`)
  .option('--duration <ms>', 'simulated ms with faults per seed', int, 20_000)
  .option('--retain <revs>', 'committed entries each brick log keeps (default: seed-chosen)', int)
  .option('--pin <revs>', "how far behind the commit point the holder's pin may keep the log (default: seed-chosen)", int)
  .option('--trace', 'print the trace of failing seeds')
  .option('--keep-going', 'do not stop at the first failing seed')
  .parse();

const o = program.opts<{ seeds: number; from: number; bug?: string; duration: number; retain?: number; pin?: number; trace?: boolean; keepGoing?: boolean }>();
const log = { ...(o.retain === undefined ? {} : { retainRevs: o.retain }), ...(o.pin === undefined ? {} : { pinRevsMax: o.pin }) };
if (o.bug !== undefined && !(o.bug in BUGS)) {
  console.error(`sim: unknown --bug ${o.bug} (known: ${Object.keys(BUGS).join(', ')})`);
  process.exit(2);
}
const bug = o.bug as BugName | undefined;
let failed = 0;
const totals = { snapshots: 0, configs: 0, configsWhileStale: 0 };
const t0 = performance.now();
for (let seed = o.from; seed < o.from + o.seeds; seed++) {
  const r = runSeed(seed, { bug, trace: o.trace === true, durationMs: o.duration, ...log });
  const s = r.stats;
  totals.snapshots += s.snapshotsInstalled ?? 0;
  totals.configs += s.configsCommitted ?? 0;
  totals.configsWhileStale += s.operatorAppliedWhileStale ?? 0;
  if (r.ok) {
    console.log(`seed ${seed} ok  ${r.ms.toFixed(0)} ms  ops ${s.ops}  committed ${s.committed}  elections ${s.elections}  holders ${s.holders}  crashes ${s.crashes}  partitions ${s.partitions}  lost ${s.lost}  sessions ${s.sessions} (${s.sessionsBounded} ended in bound, ${s.keepaliveAcks} keepalive acks)  snapshots ${s.snapshotsInstalled}  configs ${s.configsCommitted}  watch events ${s.watchEvents} (${s.watchRevs} revs, ${s.watchProgress} progress, ${s.watchClientMoved} moved, ${s.watchResyncs} resyncs)`);
    continue;
  }
  failed++;
  console.log(`seed ${seed} FAILED  ${r.violation?.message}`);
  if (o.trace === true) for (const line of r.trace) console.log(`  ${line}`);
  console.log(`  reproduce: ${reproduceCommand(seed, bug)}${o.retain === undefined ? '' : ` --retain ${o.retain}`}${o.pin === undefined ? '' : ` --pin ${o.pin}`}${o.duration === 20_000 ? '' : ` --duration ${o.duration}`}`);
  if (o.keepGoing !== true) break;
}
console.log(`${failed === 0 ? 'all ok' : `${failed} failed`}: ${o.seeds} seeds from ${o.from} in ${((performance.now() - t0) / 1000).toFixed(1)} s (${totals.snapshots} snapshots installed, ${totals.configs} configs committed, ${totals.configsWhileStale} config changes made while a master was down or cut off)`);
process.exit(failed === 0 ? 0 : 1);
