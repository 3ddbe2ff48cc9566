// `coordvol peer status` and `coordvol pool list`: the cluster map (DESIGN §8) as the store holds
// it — every peer record under /cluster/peers/ with its role, and Connected while its daemon's
// liveness key under /cluster/alive/ exists (src/mgmt/cluster-map.ts). `peer probe` and
// `peer detach` are subcommands another module adds to the `peer` command this returns.
import type { Command } from 'commander';
import { readClusterMap, type ClusterMap } from '../mgmt/cluster-map.js';
import { globals, run } from './context.js';
import { columns } from './output.js';

/** What a table leaves out, as lines after it: running daemons not in the pool, records that do not decode. */
function notes(m: ClusterMap): string[] {
  return [
    ...m.unprobed.map((a) => `running but not probed: ${a.uuid} at ${a.address} (pid ${a.pid}, since ${a.startedAt})`),
    ...m.skipped.map((s) => `skipped ${s.key}: ${s.reason}`),
  ];
}

/** --json prints the peers alone (a list, for scripts); the notes then go to stderr, one JSON object each. */
function jsonPeers(cmd: Command, m: ClusterMap): unknown {
  if (globals(cmd).json) {
    for (const a of m.unprobed) process.stderr.write(JSON.stringify({ warning: { code: 'unprobed', alive: a } }) + '\n');
    for (const s of m.skipped) process.stderr.write(JSON.stringify({ warning: { code: 'store-invalid', key: s.key, message: s.reason } }) + '\n');
  }
  return m.peers;
}

function statusText(m: ClusterMap): string {
  const connected = m.peers.filter((p) => p.state === 'Connected').length;
  const summary = m.peers.length === 0 ? `no peers at rev ${m.rev}` : `${m.peers.length} peer${m.peers.length === 1 ? '' : 's'} (${connected} connected) at rev ${m.rev}`;
  const rows = m.peers.map((p) => [p.uuid, p.hostname, p.address, p.role, p.state]);
  return [...(rows.length > 0 ? [columns(['UUID', 'HOSTNAME', 'ADDRESS', 'ROLE', 'STATE'], rows)] : []), summary, ...notes(m)].join('\n');
}

/** GlusterFS's `pool list` columns. No `localhost` row: the CLI talks to a server, it is not a peer. */
function poolText(m: ClusterMap): string {
  const rows = m.peers.map((p) => [p.uuid, p.hostname, p.state]);
  return [columns(['UUID', 'Hostname', 'State'], rows), ...notes(m)].join('\n');
}

/** Adds `peer status` and `pool list`; returns the `peer` command, for `probe` and `detach`. */
export function registerPeer(program: Command): Command {
  const peer = program.command('peer').description('the cluster map: the peers of the pool and whether their daemons run');
  peer
    .command('status')
    .description('list every peer with its role and Connected/Disconnected, from the store')
    .addHelpText(
      'after',
      '\nA peer is Connected while its daemon keeps its liveness key (/cluster/alive/<uuid>) under a\nsession; a daemon that dies shows Disconnected within about its session ttl (10 s by default).\nRecords come from /cluster/peers/<uuid>, read at the same rev as the liveness keys.\n\nExamples:\n  coordvol peer status\n  coordvol peer status --json | jq \'.[] | select(.state == "Disconnected") | .address\'',
    )
    .action(async (_o: unknown, cmd: Command) => {
      await run(cmd, (v) => readClusterMap(v), { human: statusText, json: (m) => jsonPeers(cmd, m) });
    });

  const pool = program.command('pool').description('the trusted storage pool, as GlusterFS lists it');
  pool
    .command('list')
    .description('list every peer: UUID, hostname, state')
    .addHelpText('after', '\nExamples:\n  coordvol pool list\n  coordvol pool list --json')
    .action(async (_o: unknown, cmd: Command) => {
      await run(cmd, (v) => readClusterMap(v), { human: poolText, json: (m) => jsonPeers(cmd, m) });
    });
  return peer;
}
