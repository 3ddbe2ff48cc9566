// `coordvol start`: run a master in the foreground. With no configuration it is the embedded
// default: a single-brick volume with its data in ./coordvol-data, served on 127.0.0.1:7420
// (protocol/server) and 127.0.0.1:7421 (HTTP).
import type { Command } from 'commander';
import { startApi } from '../api/listen.js';
import { sessionFops } from '../api/routes-sessions.js';
import { FopVolume, type FopCaller } from '../client/volume.js';
import { coordError } from '../common/errors.js';
import { Daemon, type DaemonEvent } from '../daemon/daemon.js';
import { CLIENT_VOLFILE_NAME, writeAtomically } from '../daemon/join.js';
import { clientVolfile } from '../daemon/volfiles.js';
import { connect } from '../client/remote.js';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { globals, readSecret } from './context.js';
import { serverAddress } from '../daemon/server-info.js';
import { fail, table } from './output.js';

interface StartOpts {
  dir: string;
  volfile?: string;
  fsync: boolean;
  listen: string | false;
  http: string | false;
  httpToken?: string;
  join?: string;
  livenessTtl: string;
}

/**
 * `--join SERVER`: a plain peer of the volume SERVER serves. Its client volfile names every
 * master SERVER knows, and the cluster secret (--secret-file) is copied beside it.
 */
async function writePeerVolfile(dir: string, server: string, secretFile: string, listen: string, timeoutMs: number): Promise<void> {
  const secret = readSecret(secretFile);
  const v = await connect({ servers: server.split(','), secret, timeoutMs, exactlyOnce: false });
  try {
    const info = await v.peerInfo();
    const masters = info.join?.masters.map((m) => m.address) ?? [info.address];
    mkdirSync(dir, { recursive: true });
    writeAtomically(join(dir, 'secret'), `${secret}\n`, 0o600);
    writeAtomically(join(dir, CLIENT_VOLFILE_NAME), clientVolfile({ masters, listen, secretFile: 'secret', volumeId: info.volumeId }), 0o644);
  } finally {
    await v.close().catch(() => undefined);
  }
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
    .option('--join <host:port>', 'start as a plain peer of the volume this master serves (with --secret-file of that volume)')
    .option('--liveness-ttl <ms>', 'session ttl of the liveness key in /cluster/alive/ (0: none)', '10000')
    .addHelpText('after', '\nExamples:\n  coordvol start\n  coordvol start --dir /var/lib/coordvol --listen 0.0.0.0:7420\n  coordvol start --volfile /etc/coordvol/master1.vol --json\n  coordvol start --dir ./peer1 --listen 127.0.0.1:7450 --http 127.0.0.1:7451 --join 127.0.0.1:7420 --secret-file ./coordvol-data/secret')
    .action(async (o: StartOpts, cmd: Command) => {
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      // Signal handlers go in before anything is printed: a script that reacts to the summary
      // by stopping the master must find them installed.
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      process.once('SIGINT', () => stop());
      process.once('SIGTERM', () => stop());
      let master: Daemon | undefined;
      let api: { close(): Promise<void> } | undefined;
      try {
        if (o.listen !== false) hostPort(o.listen, '--listen');
        const http = o.http === false ? undefined : hostPort(o.http, '--http');
        if (o.join !== undefined) {
          if (o.listen === false) throw coordError('invalid-argument', '--join needs a --listen address: probes and local clients reach the peer there');
          if (existsSync(join(resolve(o.dir), 'coordvol.vol'))) throw coordError('already-configured', `${o.dir} holds a master's volfile: a plain peer starts in a directory of its own`);
          await writePeerVolfile(resolve(o.dir), o.join, globals(cmd).secretFile, o.listen, globals(cmd).timeout);
        }
        const ttl = Number(o.livenessTtl);
        const onEvent = (e: DaemonEvent): void => {
          if (json) return;
          if (e.kind === 'joined') process.stdout.write(`joined volume ${e.volumeId} as a ${e.role}\n`);
          else if (e.kind === 'volfile-rewritten') process.stdout.write(`volfile ${e.file} rewritten (membership at rev ${e.rev})\n`);
          else if (e.kind === 'graph-switched') process.stdout.write(`volfile ${e.file} edited: the new graph serves\n`);
          else if (e.kind === 'error') process.stderr.write(`coordvol: ${e.what}: ${e.error instanceof Error ? e.error.message : String(e.error)}\n`);
        };
        master = await Daemon.start({
          dir: o.dir,
          fsync: o.fsync,
          ...(o.volfile ? { volfile: o.volfile } : {}),
          ...(o.listen !== false ? { listen: o.listen } : {}),
          livenessTtlMs: Number.isSafeInteger(ttl) && ttl > 0 ? ttl : false,
          onEvent,
        });
        const daemon = master;
        const caller: FopCaller = (fop, ctx, args) => daemon.call(fop, ctx, args);
        const volume = new FopVolume(caller, async () => undefined);
        const server = serverAddress(daemon.graph);
        let httpAddress = '';
        if (http) {
          const a = await startApi({ volume, host: http.host, port: http.port, ...(o.httpToken ? { token: o.httpToken } : {}), ...(server ? { extraMetrics: () => serverAddress(daemon.graph)?.metrics() ?? '' } : {}), sessions: sessionFops(caller) });
          api = a;
          httpAddress = a.address;
        }
        const { volume: vs, brick } = await volume.status();
        const summary = {
          role: daemon.role,
          uuid: daemon.uuid,
          volume: vs?.volumeName ?? '',
          volumeId: vs?.volumeId ?? '',
          epoch: vs?.epoch ?? 0,
          rev: vs?.commitRev ?? 0,
          // A plain peer has no brick: the status it relays is a master's.
          keys: daemon.role === 'master' ? (brick?.keys ?? 0) : '',
          brick: daemon.role === 'master' ? (brick?.path ?? '') : '',
          volfile: master.volfilePath,
          listen: server ? `${server.host}:${server.port}` : '',
          secretFile: server?.secretFile ?? '',
          http: httpAddress,
        };
        if (json) process.stdout.write(JSON.stringify(summary) + '\n');
        else {
          const env = server ? `\n\nto use it from another shell:\n  export COORDVOL_SERVER=${summary.listen} COORDVOL_SECRET_FILE=${server.secretFile}` : '';
          process.stdout.write(`coordvol ${daemon.role} ready\n${table(Object.entries(summary).map(([k, v]) => [k, v === '' ? '-' : v]))}${env}\n`);
        }
        // Until a listener holds the event loop open (with --no-listen --no-http), a timer does.
        const keepAlive = setInterval(() => undefined, 1 << 30);
        await stopped;
        clearInterval(keepAlive);
        await api?.close();
        await master.close();
        if (!json) process.stdout.write('coordvol stopped\n');
      } catch (e) {
        fail(e, json);
        await api?.close().catch(() => undefined);
        await master?.close().catch(() => undefined);
      }
    });
}

