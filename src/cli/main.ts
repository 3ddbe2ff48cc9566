#!/usr/bin/env node
// The coordvol command line. Commands parse their arguments and call the library (STYLE §8).
import { Command } from 'commander';
import { DEFAULT_SECRET_FILE, DEFAULT_SERVER } from './context.js';
import { registerCluster } from './cluster.js';
import { registerInspect } from './inspect.js';
import { registerKv } from './kv.js';
import { registerLock } from './lock.js';
import { registerPeer } from './peer.js';
import { registerPeerProbe } from './peer-probe.js';
import { registerSession } from './session.js';
import { registerStart } from './start.js';
import { registerVolume } from './volume.js';
import { registerVolumeInfo } from './volume-info.js';
import { registerWatch } from './watch.js';

const program = new Command();
program
  .name('coordvol')
  .description('a self-hosted coordination store for a GlusterFS-style cluster')
  .option('--server <host:port>', `a master to talk to (env COORDVOL_SERVER; default ${DEFAULT_SERVER}); several, comma-separated`)
  .option('--secret-file <path>', `the cluster secret (env COORDVOL_SECRET_FILE; default ${DEFAULT_SECRET_FILE})`)
  .option('--json', 'print results as JSON (errors as JSON on stderr)')
  .option('--timeout <ms>', 'deadline of each request', '10000')
  .showHelpAfterError()
  .addHelpText('after', '\nExamples:\n  coordvol start\n  coordvol kv put /a 1\n  coordvol kv get /a --json\n  coordvol status');
registerStart(program);
registerKv(program);
registerWatch(program);
registerSession(program);
registerLock(program);
registerInspect(program);
registerCluster(program);
registerVolumeInfo(registerVolume(program));
registerPeerProbe(registerPeer(program));

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`coordvol: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
