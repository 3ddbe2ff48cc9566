// `npm run bench -- bootstrap`: how long `peer probe --as-master` takes to grow a volume holding
// data (issue 6): one master with K keys written, then a second and a third probed in — each
// joins, is healed as a learner (by a snapshot when the holder's log no longer reaches back to
// rev 1, as it will not after 10,000 revs) and promoted. Three daemons in this one process,
// fsync on, on loopback; the times are the probe's wall clock from the first request to the
// peer record, the same steps `coordvol peer probe` runs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type RemoteVolume } from '../../src/client/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { probe, type ProbeProgress } from '../../src/mgmt/probe.js';
import { machine, upsertSection } from './machine.js';

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });

interface Step {
  readonly name: string;
  readonly ms: number;
  readonly healedBy: 'snapshot' | 'appends';
}

export async function runBootstrapBench(args: readonly string[]): Promise<void> {
  const value = (name: string, dflt: number): number => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const keys = value('--keys', args.includes('--quick') ? 10_000 : 100_000);
  const valueBytes = 256;
  const root = mkdtempSync(join(tmpdir(), 'coordvol-bench-bootstrap-'));
  const daemons: Daemon[] = [];
  let cluster: RemoteVolume | undefined;
  try {
    const nodes: { d: Daemon; address: string; dir: string }[] = [];
    for (const name of ['n1', 'n2', 'n3']) {
      const dir = join(root, name);
      const address = `127.0.0.1:${await freePort()}`;
      const d = await Daemon.start({ dir, fsync: true, listen: address, livenessTtlMs: false, watchVolfile: false });
      daemons.push(d);
      nodes.push({ d, address, dir });
    }
    const [n1] = nodes as [(typeof nodes)[number]];
    const secret = readFileSync(join(n1.dir, 'secret'), 'utf8');
    cluster = await connect({ servers: [n1.address], secret, timeoutMs: 30_000 });
    const v = 'x'.repeat(valueBytes);
    const t0 = performance.now();
    for (let i = 0; i < keys; i += 256) {
      await Promise.all(Array.from({ length: Math.min(256, keys - i) }, (_, j) => (cluster as RemoteVolume).put(`/bench/k${String(i + j).padStart(8, '0')}`, v)));
    }
    process.stderr.write(`  wrote ${keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const steps: Step[] = [];
    for (const [i, n] of nodes.slice(1).entries()) {
      let snapshot = false;
      const started = performance.now();
      await probe(n.address, true, {
        cluster,
        clusterSecret: secret,
        untilMs: Date.now() + 600_000,
        onProgress: (p: ProbeProgress) => {
          if (p.snapshot) snapshot = true;
        },
        connectPeer: (which, expectVolumeId) =>
          connect({ servers: [n.address], secret: which === 'peer' ? readFileSync(join(n.dir, 'secret'), 'utf8') : secret, timeoutMs: 5_000, exactlyOnce: false, ...(expectVolumeId ? { expectVolumeId } : {}) }),
      });
      steps.push({ name: `${i + 1} → ${i + 2} masters`, ms: performance.now() - started, healedBy: snapshot ? 'snapshot' : 'appends' });
      process.stderr.write(`  probe ${i + 1} → ${i + 2}: ${(steps.at(-1) as Step).ms.toFixed(0)} ms\n`);
    }
    const started = new Date().toISOString().slice(0, 16).replace('T', ' ');
    const section = [
      '### Bootstrap: peer probe --as-master (issue 6)',
      '',
      `${started} UTC · ${machine()} · \`npm run bench -- bootstrap${args.length ? ' ' + args.join(' ') : ''}\``,
      '',
      `One master holding ${keys.toLocaleString('en-US')} keys of ${valueBytes} B (written before the probes), two fresh`,
      'daemons probed in one after the other: join, heal as a learner, promotion, peer record. Three',
      'daemons in one process, fsync on, loopback. "healed by" says whether the probe saw a snapshot',
      "heal stream (the holder's log keeps 10,000 revs behind its commit point, so a volume older than",
      'that heals a new brick by snapshot).',
      '',
      '| step | wall clock | keys/s healed | healed by |',
      '|---|---:|---:|---|',
      ...steps.map((s) => `| ${s.name} | ${(s.ms / 1000).toFixed(2)} s | ${Math.round(keys / (s.ms / 1000)).toLocaleString('en-US')} | ${s.healedBy} |`),
    ].join('\n');
    process.stdout.write(section + '\n');
    if (args.includes('--write')) {
      const path = 'BENCHMARKS.md';
      writeFileSync(path, upsertSection(readFileSync(path, 'utf8'), 'bootstrap', section, '## Growing a volume: peer probe'));
      process.stderr.write(`wrote ${path}\n`);
    }
  } finally {
    await cluster?.close().catch(() => undefined);
    for (const d of daemons.reverse()) await d.close().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
}
