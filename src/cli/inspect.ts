// `coordvol status|statedump|profile`: what an operator looks at.
import type { Command } from 'commander';
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
