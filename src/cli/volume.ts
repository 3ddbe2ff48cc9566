// `coordvol volume reconfigure`: the volume's membership, one brick at a time (DESIGN §4.7) —
// the step `peer probe --as-master` and `peer detach` are built from. Adding a brick is two
// changes: `add-learner` (the holder heals it, by snapshot if its log is too far behind), then
// `promote` once it has caught up; `--wait` retries the refusals that only mean "not yet".
import type { Command } from 'commander';
import { coordError, isCoordError } from '../common/errors.js';
import type { ConfigChange, ConfigChangeResult, Volume } from '../client/index.js';
import { CONFIG_OPS } from '../../replication/config.js';
import { globals, run } from './context.js';
import { table } from './output.js';

/** Refusals that clear by themselves: an earlier change still committing, a learner still catching up. */
const RETRYABLE = new Set(['config-pending', 'learner-behind']);

export function configChangeOf(op: string, arg: string): ConfigChange {
  if (!(CONFIG_OPS as readonly string[]).includes(op)) throw coordError('invalid-argument', `the change is one of ${CONFIG_OPS.join(', ')}, not ${JSON.stringify(op)}`);
  if (op === 'quorum-count') {
    const n = Number(arg);
    if (!Number.isSafeInteger(n) || n < 1) throw coordError('invalid-argument', `quorum-count takes a whole number, not ${JSON.stringify(arg)}`);
    return { op, count: n };
  }
  return { op: op as 'add-learner' | 'promote' | 'remove', brick: arg };
}

/** Applies `change`, retrying `config-pending` and `learner-behind` every 200 ms until `untilMs` when waiting. */
export async function reconfigure(v: Volume, change: ConfigChange, untilMs: number | undefined): Promise<ConfigChangeResult> {
  for (;;) {
    try {
      return await v.reconfigure(change);
    } catch (e) {
      if (untilMs === undefined || !isCoordError(e) || !RETRYABLE.has(e.code) || Date.now() >= untilMs) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Adds `volume reconfigure`; returns the `volume` command, for the volume-info subcommands. */
export function registerVolume(program: Command): Command {
  const volume = program.command('volume').description("the coordination volume's membership, and the storage cluster's volume info");
  volume
    .command('reconfigure')
    .description('one membership change: add-learner BRICK, promote BRICK, remove BRICK, or quorum-count N (BRICK is host:path)')
    .argument('<change>', CONFIG_OPS.join(' | '))
    .argument('<brick-or-count>', 'host:path of the brick, or the quorum-count')
    .option('--wait', 'retry while an earlier change is committing or the learner is catching up (until --timeout)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  coordvol volume reconfigure add-learner 10.0.0.4:/var/lib/coordvol/brick',
        '  coordvol volume reconfigure promote 10.0.0.4:/var/lib/coordvol/brick --wait',
        '  coordvol volume reconfigure remove 10.0.0.2:/var/lib/coordvol/brick',
        '  coordvol volume reconfigure quorum-count 3 --json',
      ].join('\n'),
    )
    .action(async (op: string, arg: string, o: { wait?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      await run(cmd, (v) => reconfigure(v, configChangeOf(op, arg), o.wait === true ? Date.now() + g.timeout : undefined), {
        human: (r) =>
          table([
            ['Config rev', r.rev],
            ['Voters', r.config.bricks.join(' ')],
            ['Learners', (r.config.learners ?? []).join(' ') || '(none)'],
            ['Quorum-count', r.config.quorumCount],
          ]),
        json: (r) => r,
      });
    });
  return volume;
}
