// `coordvol peer probe HOST:PORT [--as-master]` and `coordvol peer detach HOST:PORT [--force]`
// (DESIGN §8): the bootstrap. Run against any master (--server); the probed daemon is reached
// with its own secret (--peer-secret-file, default the cluster's: daemons started with a shared
// secret need none) until it has joined, then with the cluster's.
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { connect } from '../client/remote.js';
import { parseAddress } from '../wire/address.js';
import { detach, probe, type ProbeProgress } from '../mgmt/probe.js';
import { globals, readSecret, run } from './context.js';
import { table } from './output.js';

interface ProbeOpts {
  asMaster?: boolean;
  peerSecretFile?: string;
  wait: string;
}

/** Shows a probe's stages on stderr, the heal as a bar (a terminal only; nothing with --json). */
function progressPrinter(json: boolean): { onProgress: (p: ProbeProgress) => void; done: () => void } {
  if (json) return { onProgress: () => undefined, done: () => undefined };
  let bar: SingleBar | undefined;
  let total = 0;
  let last = '';
  return {
    onProgress: (p) => {
      if (p.stage === 'healing' && process.stderr.isTTY) {
        const lag = p.lag ?? 0;
        if (!bar) {
          total = Math.max(1, lag);
          bar = new SingleBar({ format: 'heal [{bar}] {value}/{total} revs{snapshot}', stream: process.stderr });
          bar.start(total, 0, { snapshot: '' });
        }
        const snap = p.snapshot ? ` (snapshot: ${p.snapshot.versionsSent} versions sent)` : '';
        bar.update(Math.max(0, total - lag), { snapshot: snap });
        return;
      }
      if (p.stage === last) return;
      last = p.stage;
      bar?.stop();
      bar = undefined;
      const lag = p.lag !== undefined ? ` (${p.lag} revs behind)` : '';
      process.stderr.write(`${p.stage}${lag}\n`);
    },
    done: () => bar?.stop(),
  };
}

export function registerPeerProbe(peer: Command): void {
  peer
    .command('probe')
    .description('add a daemon to the pool: with --as-master its brick joins the coordination volume (learner, healed, then voter)')
    .argument('<host:port>', "the daemon's protocol address (coordvol start --listen)")
    .option('--as-master', 'make it a master: its brick joins the volume, one brick at a time')
    .option('--peer-secret-file <path>', "the probed daemon's own secret file, until it has joined (default: the cluster secret)")
    .option('--wait <ms>', 'how long the whole probe (join, heal, promotion) may take', '120000')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  coordvol peer probe 10.0.0.2:7420 --as-master --peer-secret-file /tmp/node2.secret',
        '  coordvol peer probe 127.0.0.1:7430 --as-master --peer-secret-file ./n2/secret',
        '  coordvol peer probe 10.0.0.7:7420            # a plain peer',
      ].join('\n'),
    )
    .action(async (address: string, o: ProbeOpts, cmd: Command) => {
      const g = globals(cmd);
      const progress = progressPrinter(g.json);
      await run(
        cmd,
        async (cluster) => {
          parseAddress(address, 'peer probe HOST:PORT');
          const clusterSecret = readSecret(g.secretFile);
          const peerSecret = o.peerSecretFile !== undefined ? readSecret(o.peerSecretFile) : clusterSecret;
          const wait = Number(o.wait);
          try {
            return await probe(address, o.asMaster === true, {
              cluster,
              clusterSecret,
              untilMs: Date.now() + (Number.isFinite(wait) && wait > 0 ? wait : 120_000),
              onProgress: progress.onProgress,
              connectPeer: (which, expectVolumeId) =>
                connect({
                  servers: [address],
                  secret: which === 'peer' ? peerSecret : clusterSecret,
                  timeoutMs: Math.min(g.timeout, 5_000),
                  exactlyOnce: false,
                  ...(expectVolumeId !== undefined ? { expectVolumeId } : {}),
                }),
            });
          } finally {
            progress.done();
          }
        },
        {
          human: (r) =>
            `peer probe: success\n${table([
              ['UUID', r.uuid],
              ['Address', r.address],
              ['Role', r.role],
              ...(r.brick !== undefined ? [['Brick', r.brick] as [string, string]] : []),
              ['Voters', r.voters.join(' ')],
              ['Learners', r.learners.join(' ') || '(none)'],
              ['Quorum', r.quorum],
            ])}`,
          json: (r) => r,
        },
      );
    });

  peer
    .command('detach')
    .description("remove a daemon from the pool: a master's brick leaves the volume (one brick at a time), a plain peer's record goes")
    .argument('<host:port>', "the daemon's protocol address, as `peer status` shows it")
    .option('--force', 'detach a master even when the voters left that answer now are fewer than their quorum')
    .addHelpText('after', '\nExamples:\n  coordvol peer detach 127.0.0.1:7440\n  coordvol peer detach 10.0.0.3:7420 --force --json')
    .action(async (address: string, o: { force?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      await run(cmd, (cluster) => detach(cluster, address, { force: o.force === true, untilMs: Date.now() + g.timeout }), {
        human: (r) =>
          `peer detach: success\n${table([
            ['Address', r.address],
            ['Role', r.role],
            ...(r.brick !== undefined ? [['Brick', r.brick] as [string, string]] : []),
            ['Voters', r.voters.join(' ')],
            ['Quorum', r.quorum],
          ])}`,
        json: (r) => r,
      });
    });
}
