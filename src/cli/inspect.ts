// `coordvol status|heal info|statedump|profile`: what an operator looks at.
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type { Volume } from '../client/index.js';
import type { StatusResult } from '../../translators/fops.js';
import { run } from './context.js';
import { columns, table } from './output.js';

export function registerInspect(program: Command): void {
  program
    .command('status')
    .description('the volume: holder, epoch, revisions, quorum, and each brick')
    .addHelpText('after', '\nExamples:\n  coordvol status\n  coordvol status --server 10.0.0.5:7420 --json')
    .action(async (_o: unknown, cmd: Command) => {
      await run(cmd, (v) => v.status(), {
        human: ({ volume }) => {
          if (!volume) return 'no volume status (is this a brick-only server?)';
          const head = table([
            ['Volume', `${volume.volumeName} (${volume.volumeId})`],
            ['Holder', volume.holder || '(none)'],
            ['Epoch', volume.epoch],
            ['Commit rev', volume.commitRev],
            ['Compact rev', volume.compactRev],
            ['Quorum', `${volume.quorum} of ${volume.bricks.length}`],
          ]);
          const bricks = columns(
            ['BRICK', 'ROLE', 'PATH', 'LAST-REV', 'COMMIT-REV', 'LAG', 'KEYS'],
            volume.bricks.map((b) => [b.brickId, b.role, b.path, String(b.lastRev), String(b.commitRev), String(b.lag), String(b.keys)]),
          );
          return `${head}\n\n${bricks}`;
        },
        json: (r) => r,
      });
    });

  program
    .command('heal')
    .description('self-heal of the bricks')
    .command('info')
    .description('per brick: role, reachable, last rev, lag behind the holder, heal in progress')
    .option('--wait', 'wait until every reachable brick has caught up, with a progress bar')
    .addHelpText('after', '\nExamples:\n  coordvol heal info\n  coordvol heal info --wait\n  coordvol heal info --json')
    .action(async (o: { wait?: boolean }, cmd: Command) => {
      await run(cmd, (v) => (o.wait === true ? waitHealed(v, cmd.optsWithGlobals<{ json?: boolean }>().json === true) : v.status()), {
        human: ({ volume }) => {
          if (!volume) return 'no volume status (is this a brick-only server?)';
          return columns(
            ['BRICK', 'ROLE', 'REACHABLE', 'LAST-REV', 'LAG', 'HEAL'],
            volume.bricks.map((b) => [b.brickId, b.role, b.reachable === undefined ? '?' : b.reachable ? 'yes' : 'no', String(b.lastRev), String(b.lag), healState(b.lag, b.reachable, b.needsSnapshot)]),
          );
        },
        json: (r) => ({ commitRev: r.volume?.commitRev, holder: r.volume?.holder, bricks: (r.volume?.bricks ?? []).map((b) => ({ ...b, heal: healState(b.lag, b.reachable, b.needsSnapshot) })) }),
      });
    });

  program
    .command('statedump')
    .description("every translator's state, top of the graph first")
    .action(async (_o: unknown, cmd: Command) => {
      await run(cmd, (v) => v.statedump(), {
        human: (dump) =>
          dump
            .map((d) => {
              const rows = Object.entries(d.state).map(([k, v]) => [k, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)] as const);
              return `[${d.name}] ${d.type}${rows.length ? '\n' + table(rows.map(([k, v]) => [`  ${k}`, v])) : ''}`;
            })
            .join('\n\n'),
        json: (r) => r,
      });
    });

  program
    .command('profile')
    .description('fop counts, errors and latency at each io-stats translator')
    .action(async (_o: unknown, cmd: Command) => {
      await run(cmd, (v) => v.profile(), {
        human: (profile) =>
          columns(
            ['TRANSLATOR', 'FOP', 'COUNT', 'ERRORS', 'P50-MS', 'P99-MS', 'MAX-MS'],
            profile.flatMap((p) => Object.entries(p.fops).map(([fop, s]) => [p.name, fop, String(s.count), String(s.errors), s.latencyMsP50.toFixed(3), s.latencyMsP99.toFixed(3), s.latencyMsMax.toFixed(3)])),
          ),
        json: (r) => r,
      });
    });
}

function healState(lag: number, reachable: boolean | undefined, needsSnapshot: boolean | undefined): string {
  if (lag === 0) return 'healed';
  if (needsSnapshot === true) return 'needs a snapshot heal (not built yet)';
  return reachable === false ? 'waiting (unreachable)' : 'in progress';
}

/** Polls status until no reachable brick lags, showing the remaining lag as a progress bar. */
async function waitHealed(v: Volume, json: boolean): Promise<StatusResult> {
  const lagOf = (s: StatusResult): number => (s.volume?.bricks ?? []).filter((b) => b.reachable !== false).reduce((n, b) => n + b.lag, 0);
  let s = await v.status();
  const total = Math.max(1, lagOf(s));
  const bar = json || !process.stderr.isTTY ? undefined : new SingleBar({ format: 'heal [{bar}] {value}/{total} revs', stream: process.stderr });
  bar?.start(total, total - lagOf(s));
  while (lagOf(s) > 0) {
    await new Promise((r) => setTimeout(r, 200));
    s = await v.status();
    bar?.update(Math.max(0, total - lagOf(s)));
  }
  bar?.stop();
  return s;
}
