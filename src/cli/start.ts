// `coordvol start`: run a master in the foreground. With no configuration it is the embedded
// default: a single-brick volume with its data in ./coordvol-data, served on 127.0.0.1:7420
// (protocol/server) and 127.0.0.1:7421 (HTTP).
import type { Command } from 'commander';
import { startApi } from '../api/listen.js';
import { sessionFops } from '../api/routes-sessions.js';
import { FopVolume, type FopCaller } from '../client/volume.js';
import { coordError } from '../common/errors.js';
import { startMaster, type Master } from '../daemon/master.js';
import { serverAddress } from '../daemon/server-info.js';
import { fail, table } from './output.js';

interface StartOpts {
  dir: string;
  volfile?: string;
  fsync: boolean;
  listen: string | false;
  http: string | false;
  httpToken?: string;
}

function hostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || !(port >= 0 && port < 65536)) throw coordError('invalid-argument', `${what} must be host:port, not ${JSON.stringify(s)}`);
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('start a master: the embedded single-brick volume by default')
    .option('--dir <dir>', 'data directory (volfile, brick, secret)', './coordvol-data')
    .option('--volfile <file>', 'start from this volfile instead of <dir>/coordvol.vol')
    .option('--listen <host:port>', 'serve the volume protocol here', '127.0.0.1:7420')
    .option('--no-listen', 'no protocol listener (in-process only)')
    .option('--http <host:port>', 'serve the HTTP API here', '127.0.0.1:7421')
    .option('--no-http', 'no HTTP API')
    .option('--http-token <token>', 'bearer token the HTTP API requires (mandatory off loopback)')
    .option('--no-fsync', 'do not fsync commits (benchmarks only: voids durability)')
    .addHelpText('after', '\nExamples:\n  coordvol start\n  coordvol start --dir /var/lib/coordvol --listen 0.0.0.0:7420\n  coordvol start --volfile /etc/coordvol/master1.vol --json')
    .action(async (o: StartOpts, cmd: Command) => {
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      // Signal handlers go in before anything is printed: a script that reacts to the summary
      // by stopping the master must find them installed.
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      process.once('SIGINT', () => stop());
      process.once('SIGTERM', () => stop());
      let master: Master | undefined;
      let api: { close(): Promise<void> } | undefined;
      try {
        if (o.listen !== false) hostPort(o.listen, '--listen');
        const http = o.http === false ? undefined : hostPort(o.http, '--http');
        master = await startMaster({ dir: o.dir, fsync: o.fsync, ...(o.volfile ? { volfile: o.volfile } : {}), ...(o.listen !== false ? { listen: o.listen } : {}) });
        const top = master.top;
        const caller: FopCaller = (fop, ctx, args) => top.call(fop, ctx, args);
        const volume = new FopVolume(caller, async () => undefined);
        const server = serverAddress(master.graph);
        let httpAddress = '';
        if (http) {
          const a = await startApi({ volume, host: http.host, port: http.port, ...(o.httpToken ? { token: o.httpToken } : {}), ...(server ? { extraMetrics: server.metrics } : {}), sessions: sessionFops(caller) });
          api = a;
          httpAddress = a.address;
        }
        const { volume: vs, brick } = await volume.status();
        const summary = {
          volume: vs?.volumeName ?? '',
          volumeId: vs?.volumeId ?? '',
          epoch: vs?.epoch ?? 0,
          rev: vs?.commitRev ?? 0,
          keys: brick?.keys ?? 0,
          brick: brick?.path ?? '',
          volfile: master.volfilePath,
          listen: server ? `${server.host}:${server.port}` : '',
          secretFile: server?.secretFile ?? '',
          http: httpAddress,
        };
        if (json) process.stdout.write(JSON.stringify(summary) + '\n');
        else {
          const env = server ? `\n\nto use it from another shell:\n  export COORDVOL_SERVER=${summary.listen} COORDVOL_SECRET_FILE=${server.secretFile}` : '';
          process.stdout.write(`coordvol master ready\n${table(Object.entries(summary).map(([k, v]) => [k, v === '' ? '-' : v]))}${env}\n`);
        }
        // Until a listener holds the event loop open (with --no-listen --no-http), a timer does.
        const keepAlive = setInterval(() => undefined, 1 << 30);
        await stopped;
        clearInterval(keepAlive);
        await api?.close();
        await master.close();
        if (!json) process.stdout.write('coordvol master stopped\n');
      } catch (e) {
        fail(e, json);
        await api?.close().catch(() => undefined);
        await master?.close().catch(() => undefined);
      }
    });
}

