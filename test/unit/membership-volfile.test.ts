// What a membership change leaves behind outside the log (DESIGN §8): the master addresses a
// config entry carries for bricks a probe added (kept across the wire and out of the volume id),
// the volfile a master rewrites from the committed config, and the masters list pushed to
// clients that follow the membership (and ignored by a link to one brick).
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { applyConfigChange } from '../../replication/config.js';
import { checkConfig, copyConfig } from '../../replication/wire-fields.js';
import { connect } from '../../src/client/index.js';
import { masterVolfile } from '../../src/daemon/volfiles.js';
import { withMembership } from '../../src/daemon/volfile-members.js';
import { volumeIdOf } from '../../store/identity.js';
import type { VolumeConfig } from '../../store/types.js';
import { ProtocolServerTranslator } from '../../translators/protocol/server.js';
import { ProtocolClientTranslator } from '../../translators/protocol/client.js';
import { parseVolfile } from '../../translators/volfile.js';
import { until, type Cleanup } from './fixtures/local-volume.js';
import { startNetMaster } from './helpers.js';

const cleanup: Cleanup = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

const initial: VolumeConfig = { volumeName: 'v', bricks: ['h:/a'], quorumCount: 1 };

describe('master addresses in config entries', () => {
  it('are added with a learner, kept on promotion, dropped on removal, and never change the volume id', () => {
    const added = applyConfigChange(initial, { op: 'add-learner', brick: 'h:/b', master: 'h:7430' }) as VolumeConfig;
    expect(added.learners).toEqual(['h:/b']);
    expect(added.masters).toEqual({ 'h:/b': 'h:7430' });
    const promoted = applyConfigChange(added, { op: 'promote', brick: 'h:/b' }) as VolumeConfig;
    expect(promoted.masters).toEqual({ 'h:/b': 'h:7430' });
    const removed = applyConfigChange(promoted, { op: 'remove', brick: 'h:/b' }) as VolumeConfig;
    expect(removed.masters).toBeUndefined();
    expect(removed).toEqual(initial);
    // The id of a config without addresses is what it was before they existed.
    expect(volumeIdOf(initial)).toBe(volumeIdOf({ volumeName: 'v', bricks: ['h:/a'], quorumCount: 1 }));
    expect(volumeIdOf(added)).not.toBe(volumeIdOf({ ...added, masters: { 'h:/b': 'h:9999' } }));
  });

  it('cross the wire whole, and a malformed map is refused', () => {
    const c: VolumeConfig = { ...initial, learners: ['h:/b'], masters: { 'h:/b': 'h:7430' } };
    checkConfig(c, 'config');
    expect(copyConfig(c)).toEqual(c);
    expect(() => checkConfig({ ...c, masters: ['h:7430'] }, 'config')).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => checkConfig({ ...c, masters: { 'h:/b': 7430 } }, 'config')).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
  });
});

describe('the volfile a master rewrites', () => {
  const text = masterVolfile({
    volumeName: 'v',
    initialBricks: ['h:/a'],
    self: { listen: 'h:7410', brick: 'h:/a' },
    others: [],
    brickDir: 'brick',
    secretFile: 'secret',
    fsync: false,
  });
  const grown: VolumeConfig = { ...initial, bricks: ['h:/a', 'h:/b'], learners: ['h:/c'], masters: { 'h:/b': 'h:7420', 'h:/c': 'h:7430' } };
  const members = (config: VolumeConfig): Parameters<typeof withMembership>[2] => ({
    config,
    rev: 9,
    self: 'h:/a',
    masters: [...config.bricks, ...(config.learners ?? [])].map((b) => ({ brick: b, address: b === 'h:/a' ? 'h:7410' : config.masters?.[b] })),
  });

  it('gains a link per other member, keeps the identity options, and is unchanged when nothing changed', () => {
    const out = withMembership(text, 'v.vol', members(grown));
    const decls = parseVolfile(out, 'v.vol');
    const replicate = decls.find((d) => d.type === 'cluster/replicate');
    const opt = (k: string): string | undefined => replicate?.options.find((o) => o.key === k)?.value;
    expect(opt('remote-bricks')).toBe('h:/b h:/c');
    expect(opt('remote-masters')).toBe('h:7420 h:7430');
    expect(replicate?.subvolumes.map((s) => s.name)).toHaveLength(3);
    const links = decls.filter((d) => d.type === 'protocol/client').map((d) => d.options.find((o) => o.key === 'remote')?.value);
    expect(links.sort()).toEqual(['h:7420', 'h:7430']);
    const storage = (t: string): string => JSON.stringify(parseVolfile(t, 'v.vol').find((d) => d.type === 'storage/lmdb')?.options.map((o) => [o.key, o.value]));
    expect(storage(out)).toBe(storage(text));
    expect(out).toMatch(/^# coordvol master volfile/);
    expect(withMembership(out, 'v.vol', members(grown))).toBe(out);
    expect(withMembership(text, 'v.vol', members(initial))).toBe(text);
  });

  it('drops the link of a removed member and keeps the others by name', () => {
    const out = withMembership(text, 'v.vol', members(grown));
    const nameOf = (t: string, addr: string): string | undefined =>
      parseVolfile(t, 'v.vol').find((d) => d.type === 'protocol/client' && d.options.some((o) => o.value === addr))?.name;
    const shrunk: VolumeConfig = { ...initial, bricks: ['h:/a', 'h:/b'], masters: { 'h:/b': 'h:7420' } };
    const after = withMembership(out, 'v.vol', members(shrunk));
    expect(nameOf(after, 'h:7430')).toBeUndefined();
    expect(nameOf(after, 'h:7420')).toBe(nameOf(out, 'h:7420'));
  });
});

describe('the masters list pushed to clients', () => {
  it('is followed by a client of the volume and ignored by a link to one brick', async () => {
    const net = await startNetMaster('coordvol-members-');
    cleanup.push(() => net.close());
    const secret = readFileSync(`${net.dir}/secret`, 'utf8');
    const v = await connect({ servers: [net.server], secret, timeoutMs: 3_000 });
    cleanup.push(() => v.close());
    const server = net.master.graph.translators.find((t): t is ProtocolServerTranslator => t instanceof ProtocolServerTranslator);
    const volumeId = (await v.status()).volume?.volumeId as string;
    server?.pushMembers({ volumeId, rev: 5, masters: [net.server, '127.0.0.1:1'] });
    const seen: string[][] = [];
    const link = new ProtocolClientTranslator(
      { name: 'link', type: 'protocol/client', options: { remote: net.server, secret: secret.trim(), 'follow-members': false, tls: false, 'handshake-timeout-ms': 3_000, 'request-timeout-ms': 3_000, 'ping-ms': 0, 'ping-timeout-ms': 1_000, 'reconnect-min-ms': 50, 'reconnect-max-ms': 500, 'resend-writes': false }, children: [], env: { clock: { nowMs: () => performance.now() }, baseDir: net.dir } },
    );
    const follower = new ProtocolClientTranslator(
      { name: 'follower', type: 'protocol/client', options: { remote: net.server, secret: secret.trim(), 'follow-members': true, tls: false, 'handshake-timeout-ms': 3_000, 'request-timeout-ms': 3_000, 'ping-ms': 0, 'ping-timeout-ms': 1_000, 'reconnect-min-ms': 50, 'reconnect-max-ms': 500, 'resend-writes': true }, children: [], env: { clock: { nowMs: () => performance.now() }, baseDir: net.dir } },
    );
    follower.onMembers((m) => seen.push([...m.masters]));
    await link.init();
    await follower.init();
    cleanup.push(() => link.fini(), () => follower.fini());
    // A connection that opens after the push gets the last list at once.
    await until(() => seen.length > 0, () => 'the follower to hear the members', 3_000, 10);
    expect(seen[0]).toEqual([net.server, '127.0.0.1:1']);
    expect(follower.serverList).toEqual([net.server, '127.0.0.1:1']);
    expect(link.serverList).toEqual([net.server]);
    // A list for another volume is ignored.
    server?.pushMembers({ volumeId: 'f'.repeat(32), rev: 6, masters: ['127.0.0.1:2'] });
    await new Promise((r) => setTimeout(r, 100));
    expect(follower.serverList).toEqual([net.server, '127.0.0.1:1']);
  }, 20_000);
});
