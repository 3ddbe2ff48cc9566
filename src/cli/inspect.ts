// `coordvol status|heal info|statedump|profile`: what an operator looks at.
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type { Volume } from '../client/index.js';
import type { SnapshotProgress, StatusResult, VolumeStatus } from '../../translators/fops.js';
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
            ['Quorum', `${volume.quorum} of ${volume.bricks.filter((b) => b.role === 'holder' || b.role === 'voter').length} voters`],
          ]);
          const bricks = columns(
            ['BRICK', 'ROLE', 'PATH', 'LAST-REV', 'COMMIT-REV', 'LAG', 'KEYS'],
            volume.bricks.map((b) => [b.brickId, b.role, b.path, String(b.lastRev), String(b.commitRev), String(b.lag), b.keys === undefined ? '-' : String(b.keys)]),
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
            volume.bricks.map((b) => [b.brickId, b.role, b.reachable === undefined ? '?' : b.reachable ? 'yes' : 'no', String(b.lastRev), String(b.lag), healState(b)]),
          );
        },
        json: (r) => ({ commitRev: r.volume?.commitRev, holder: r.volume?.holder, bricks: (r.volume?.bricks ?? []).map((b) => ({ ...b, heal: healState(b) })) }),
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

type BrickView = VolumeStatus['bricks'][number];

function healState(b: BrickView): string {
  if (b.snapshot) return `snapshot heal: ${snapshotText(b.snapshot)}`;
  if (b.lag === 0) return 'healed';
  if (b.needsSnapshot === true) return 'needs a snapshot heal';
  return b.reachable === false ? 'waiting (unreachable)' : 'in progress';
}

/**
 * A snapshot heal's progress. The export streams the history table and does not know its size
 * up front, so there is no total to show a fraction of: what has gone, and for how long.
 */
function snapshotText(p: SnapshotProgress): string {
  const mib = (p.bytesSent / (1024 * 1024)).toFixed(1);
  return `rev ${p.rev}, ${p.versionsSent.toLocaleString('en-US')} versions sent (${mib} MiB, ${p.chunksSent} chunks) in ${(p.elapsedMs / 1000).toFixed(1)} s`;
}

/** The snapshot heals in flight, as the progress bar's suffix. */
function snapshotSuffix(s: StatusResult): { snapshot: string } {
  const heals = (s.volume?.bricks ?? []).filter((b) => b.snapshot !== undefined);
  return { snapshot: heals.map((b) => ` | ${b.brickId}: snapshot ${(b.snapshot as SnapshotProgress).versionsSent.toLocaleString('en-US')} versions sent`).join('') };
}

/** Polls status until no reachable brick lags, showing the remaining lag as a progress bar. */
async function waitHealed(v: Volume, json: boolean): Promise<StatusResult> {
  const lagOf = (s: StatusResult): number => (s.volume?.bricks ?? []).filter((b) => b.reachable !== false).reduce((n, b) => n + b.lag, 0);
  let s = await v.status();
  const total = Math.max(1, lagOf(s));
  // A snapshot heal moves a brick's lag only when it installs: the bar shows what it has sent meanwhile.
  const bar = json || !process.stderr.isTTY ? undefined : new SingleBar({ format: 'heal [{bar}] {value}/{total} revs{snapshot}', stream: process.stderr });
  bar?.start(total, total - lagOf(s), snapshotSuffix(s));
  while (lagOf(s) > 0) {
    await new Promise((r) => setTimeout(r, 200));
    s = await v.status();
    bar?.update(Math.max(0, total - lagOf(s)), snapshotSuffix(s));
  }
  bar?.stop();
  return s;
}
