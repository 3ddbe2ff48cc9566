// `coordvol start`: run a master in the foreground. With no configuration it is the embedded
// default: a single-brick volume with its data in ./coordvol-data.
import type { Command } from 'commander';
import { startMaster } from '../daemon/master.js';
import { fail, table } from './output.js';

interface StartOpts {
  dir: string;
  volfile?: string;
  fsync: boolean;
  json: boolean;
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('start a master: the embedded single-brick volume by default')
    .option('--dir <dir>', 'data directory (volfile and brick)', './coordvol-data')
    .option('--volfile <file>', 'start from this volfile instead of <dir>/coordvol.vol')
    .option('--no-fsync', 'do not fsync commits (benchmarks only: voids durability)')
    .option('--json', 'print the start-up summary as JSON', false)
    .addHelpText('after', '\nExamples:\n  coordvol start\n  coordvol start --dir /var/lib/coordvol\n  coordvol start --volfile /etc/coordvol/master1.vol')
    .action(async (o: StartOpts) => {
      // Signal handlers go in before anything is printed: a script that reacts to the summary
      // by stopping the master must find them installed.
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      process.once('SIGINT', () => stop());
      process.once('SIGTERM', () => stop());
      try {
        const master = await startMaster({ dir: o.dir, fsync: o.fsync, ...(o.volfile ? { volfile: o.volfile } : {}) });
        const { volume, brick } = await master.top.call('status', {}, {});
        const summary = {
          volume: volume?.volumeName ?? '',
          volumeId: volume?.volumeId ?? '',
          epoch: volume?.epoch ?? 0,
          rev: volume?.commitRev ?? 0,
          keys: brick?.keys ?? 0,
          brick: brick?.path ?? '',
          volfile: master.volfilePath,
          serving: 'in-process only: this build has no network listener (protocol/server) in the graph',
        };
        if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
        else process.stdout.write(`coordvol master ready\n${table(Object.entries(summary))}\n`);
        // Until a network listener holds the event loop open, a timer does: the master runs
        // until it is told to stop.
        const keepAlive = setInterval(() => undefined, 1 << 30);
        await stopped;
        clearInterval(keepAlive);
        await master.close();
        if (!o.json) process.stdout.write('coordvol master stopped\n');
      } catch (e) {
        fail(e, o.json);
      }
    });
}
