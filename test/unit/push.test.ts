// Server-pushed messages: a server pushes on numbered streams to one connection; the client
// hands each stream's pushes to its handler in order, large ones across frames. Watches ride
// on this (next issue); here the server's push API is driven directly.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMaster, type Master } from '../../src/daemon/master.js';
import { buildGraph, registry, systemClock, type Graph } from '../../translators/index.js';
import { ProtocolClientTranslator } from '../../translators/protocol/client.js';
import { ProtocolServerTranslator } from '../../translators/protocol/server.js';

let dir: string;
let master: Master;
let server: ProtocolServerTranslator;
let clientGraph: Graph;
let client: ProtocolClientTranslator;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coordvol-push-'));
  master = await startMaster({ dir, fsync: false, leaseMs: 10, listen: '127.0.0.1:0' });
  const srv = master.graph.translators.find((t) => t instanceof ProtocolServerTranslator);
  if (!(srv instanceof ProtocolServerTranslator)) throw new Error('no protocol/server in the master graph');
  server = srv;
  const volfile = `volume remote\n    type protocol/client\n    option remote 127.0.0.1:${server.address.port}\n    option secret-file ${join(dir, 'secret')}\nend-volume\n`;
  clientGraph = buildGraph(volfile, { file: 'client.vol', registry, env: { clock: systemClock, baseDir: dir } });
  await clientGraph.init();
  client = clientGraph.top as ProtocolClientTranslator;
  await client.whenOpen(systemClock.nowMs() + 5_000);
});

afterAll(async () => {
  await clientGraph?.fini();
  await master?.close();
  await rm(dir, { recursive: true, force: true });
});

function collect(stream: number, until: number): Promise<unknown[]> {
  const got: unknown[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stream ${stream}: ${got.length} of ${until} pushes in 5 s`)), 5_000);
    const off = client.onPush(stream, (body) => {
      got.push(body);
      if (got.length === until) {
        clearTimeout(timer);
        off();
        resolve(got);
      }
    });
  });
}

describe('server pushes', () => {
  it('arrive in order per stream, large ones across frames, interleaved with requests', async () => {
    const ids = server.connectionIds();
    expect(ids).toHaveLength(1);
    const [id] = ids as [number];
    const small = collect(1, 200);
    const large = collect(2, 2);
    const big = Buffer.alloc(6 * 1024 * 1024, 7); // over the 4 MiB frame cap
    for (let i = 0; i < 200; i++) {
      expect(server.push(id, 1, { seq: i })).toBe(true);
      if (i === 50) expect(server.push(id, 2, { blob: big })).toBe(true);
    }
    expect(server.push(id, 2, { blob: Buffer.from('end') })).toBe(true);
    expect(server.push(id, 99, { nobody: 'listens' })).toBe(true); // dropped by the client
    const r = await client.call('put', {}, { key: '/after-pushes', value: Buffer.from('x') });
    expect(r.rev).toBeGreaterThan(0);
    expect((await small).map((b) => (b as { seq: number }).seq)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    const [first, second] = (await large) as { blob: Uint8Array }[];
    expect(first?.blob.byteLength).toBe(big.byteLength);
    expect(Buffer.from(first?.blob ?? []).equals(big)).toBe(true);
    expect(Buffer.from(second?.blob ?? []).toString()).toBe('end');
  });

  it('a push to a connection that is gone reports false', () => {
    expect(server.push(1_000_000, 1, {})).toBe(false);
  });
});
