// `coordvol volume create|info|list|start|stop|delete|set`: the storage cluster's volume info
// (DESIGN §8) as GlusterFS's CLI shows it, kept in the store by src/mgmt/volume-info.ts — every
// command one txn with compares, so two racing commands never both win.
import type { Command } from 'commander';
import { coordError } from '../common/errors.js';
import {
  createVolume, deleteVolume, getVolume, listVolumes, setVolumeOption, startVolume, stopVolume,
  type CreateVolumeArgs, type VolumeChange, type VolumeInfo, type VolumeList,
} from '../mgmt/volume-info.js';
import { globals, run } from './context.js';

/** `NAME [replica N] [transport tcp] BRICK...`, GlusterFS's create syntax. */
export function createArgsOf(name: string, words: readonly string[]): CreateVolumeArgs {
  let replica: number | undefined;
  const bricks: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === 'replica' || w === 'transport') {
      const v = words[++i];
      if (v === undefined) throw coordError('invalid-argument', `${w} needs a value`);
      if (w === 'transport' && v !== 'tcp') throw coordError('invalid-argument', `transport ${JSON.stringify(v)}: only tcp is supported`);
      if (w === 'replica') {
        if (replica !== undefined || bricks.length > 0) throw coordError('invalid-argument', 'replica N comes once, before the bricks');
        if (!/^\d+$/.test(v)) throw coordError('invalid-argument', `replica count must be a whole number, not ${JSON.stringify(v)}`);
        replica = Number(v);
      }
    } else bricks.push(w);
  }
  return { name, bricks, ...(replica !== undefined ? { replica } : {}) };
}

/** "2 x 3 = 6" for replicated volumes, the count alone for Distribute (as GlusterFS prints it). */
function brickCount(v: VolumeInfo): string {
  if (v.replicaCount === 1) return String(v.bricks.length);
  return `${v.bricks.length / v.replicaCount} x ${v.replicaCount} = ${v.bricks.length}`;
}

/** One volume, GlusterFS's `volume info` layout. */
export function infoText(v: VolumeInfo): string {
  const options = Object.entries(v.options);
  return [
    `Volume Name: ${v.name}`,
    `Type: ${v.type}`,
    `Volume ID: ${v.uuid}`,
    `Status: ${v.status}`,
    `Number of Bricks: ${brickCount(v)}`,
    'Transport-type: tcp',
    'Bricks:',
    ...v.bricks.map((b, i) => `Brick${i + 1}: ${b}`),
    ...(options.length > 0 ? ['Options Reconfigured:', ...options.map(([k, val]) => `${k}: ${val}`)] : []),
  ].join('\n');
}

/** Record problems, on stderr: one line each (a JSON warning object with --json). */
function warnSkipped(cmd: Command, l: VolumeList): void {
  const json = globals(cmd).json;
  for (const s of l.skipped) {
    process.stderr.write(json ? JSON.stringify({ warning: { code: 'store-invalid', key: s.key, message: s.reason } }) + '\n' : `coordvol: skipped ${s.key}: ${s.reason}\n`);
  }
}

/** GlusterFS's one-line success: `volume start: gv0: success`. */
const done = (verb: string, note = '') => (c: VolumeChange): string => `volume ${verb}: ${c.info.name}: success${note}`;
const changeJson = (c: VolumeChange): unknown => ({ rev: c.rev, volume: c.info });

/** Adds the volume-info subcommands to the `volume` command (registerVolume in volume.ts returns it). */
export function registerVolumeInfo(volume: Command): void {
  volume
    .command('create')
    .description('create a volume of the storage cluster (status Created): NAME [replica N] HOST:/BRICK...')
    .argument('<name>', 'letters, digits, - and _ (at most 64)')
    .argument('<spec...>', '[replica N] [transport tcp] HOST:/BRICK...')
    .addHelpText(
      'after',
      [
        '',
        'The brick count is a multiple of N (Replicate when equal, Distributed-Replicate when more);',
        'without replica the volume is Distribute. A name or brick already taken is refused',
        '(already-exists, brick-in-use) and nothing is written.',
        '',
        'Examples:',
        '  coordvol volume create gv0 replica 3 server1:/data/brick1/gv0 server2:/data/brick1/gv0 server3:/data/brick1/gv0',
        '  coordvol volume create scratch server1:/data/scratch server2:/data/scratch --json',
      ].join('\n'),
    )
    .action(async (name: string, spec: string[], _o: unknown, cmd: Command) => {
      await run(cmd, (v) => createVolume(v, createArgsOf(name, spec)), { human: done('create', ': please start the volume to access data'), json: changeJson });
    });

  volume
    .command('info')
    .description('show volumes as GlusterFS does: one (NAME), or every one (none, or all)')
    .argument('[name]', 'a volume name, or all')
    .addHelpText('after', '\nExamples:\n  coordvol volume info gv0\n  coordvol volume info --json | jq \'.volumes[] | {name, status}\'')
    .action(async (name: string | undefined, _o: unknown, cmd: Command) => {
      if (name !== undefined && name !== 'all') {
        await run(cmd, (v) => getVolume(v, name), { human: (r) => infoText(r.info), json: (r) => ({ rev: r.rev, volume: r.info }) });
        return;
      }
      await run(cmd, (v) => listVolumes(v), {
        human: (l) => {
          warnSkipped(cmd, l);
          return l.volumes.length === 0 ? 'No volumes present' : l.volumes.map(infoText).join('\n\n');
        },
        json: (l) => {
          warnSkipped(cmd, l);
          return { rev: l.rev, volumes: l.volumes };
        },
      });
    });

  volume
    .command('list')
    .description('list volume names, one a line (nothing when there are none)')
    .addHelpText('after', '\nExamples:\n  coordvol volume list\n  coordvol volume list --json')
    .action(async (_o: unknown, cmd: Command) => {
      await run(cmd, (v) => listVolumes(v), {
        human: (l) => {
          warnSkipped(cmd, l);
          return l.volumes.map((v) => v.name).join('\n');
        },
        json: (l) => {
          warnSkipped(cmd, l);
          return l.volumes.map((v) => v.name);
        },
      });
    });

  const transitions = [
    ['start', 'Created or Stopped → Started', startVolume],
    ['stop', 'Started → Stopped', stopVolume],
    ['delete', 'Created or Stopped → deleted (its record and brick index go; GlusterFS forgets it)', deleteVolume],
  ] as const;
  for (const [verb, what, f] of transitions) {
    volume
      .command(verb)
      .description(`${what}; any other status is refused (illegal-transition)`)
      .argument('<name>')
      .addHelpText('after', `\nExamples:\n  coordvol volume ${verb} gv0\n  coordvol volume ${verb} gv0 --json`)
      .action(async (name: string, _o: unknown, cmd: Command) => {
        await run(cmd, (v) => f(v, name), { human: done(verb), json: changeJson });
      });
  }

  volume
    .command('set')
    .description('set an option of a volume (in any status), shown under "Options Reconfigured:"')
    .argument('<name>')
    .argument('<option>', 'dotted lowercase words, like performance.cache-size')
    .argument('<value>', 'one line, at most 4 KiB')
    .addHelpText('after', '\nExamples:\n  coordvol volume set gv0 performance.cache-size 256MB\n  coordvol volume set gv0 auth.allow 10.0.0.* --json')
    .action(async (name: string, key: string, value: string, _o: unknown, cmd: Command) => {
      await run(cmd, (v) => setVolumeOption(v, name, key, value), { human: done('set'), json: changeJson });
    });
}
