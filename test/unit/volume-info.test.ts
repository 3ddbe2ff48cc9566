// Volume info of the storage cluster (issue 7, part 1): each volume command's validation gives
// its typed error and changes nothing; the state machine created → started ↔ stopped → deleted;
// two CLIs racing to create the same volume (or to take the same brick) — exactly one wins and
// the loser's error is typed; a daemon-style watcher of /volumes/ sees every change in order,
// also after a resync; `volume info` as GlusterFS prints it; /v1/volumes.
// One single-brick master on loopback (fsync off, 10 ms lease); the CLI runs as child processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/app.js';
import { watchVolumes, type Volume, type VolumeInfoEvent, type VolumeWatcher, type Watcher, type WatchMessage } from '../../src/client/index.js';
import { asRev, asSessionId, type Rev } from '../../src/common/ids.js';
import { createArgsOf, infoText } from '../../src/cli/volume-info.js';
import {
  BRICKS_PREFIX, UPDATE_ATTEMPTS_MAX, brickKey, checkCreateArgs, createVolume, deleteVolume, getVolume, infoKey, listVolumes, newVolumeInfo,
  parseBrick, setVolumeOption, startVolume, stopVolume, type VolumeInfo,
} from '../../src/mgmt/volume-info.js';
import type { KeyValue } from '../../translators/fops.js';
import { cliAgainst, refusal, startNetMaster, type NetMaster } from './helpers.js';


let net: NetMaster;
let vol: Volume;

beforeAll(async () => {
  net = await startNetMaster('coordvol-volume-info-');
  vol = net.vol;
});

afterAll(async () => {
  await net?.close(); // kills the child processes first
});

const bricks = (tag: string, n: number): string[] => Array.from({ length: n }, (_, i) => `server${i + 1}:/data/${tag}/brick`);

/** Everything under /volumes/ and the rev it was read at: what "changes nothing" compares. */
async function snapshot(): Promise<{ rev: Rev; kvs: readonly KeyValue[] }> {
  const r = await vol.range({ prefix: '/volumes/' });
  return { rev: r.rev, kvs: r.kvs };
}

describe('arguments (no I/O)', () => {
  it('normalizes bricks and derives the type from replica and brick counts', () => {
    expect(parseBrick('Server1:/data//brick1/')).toBe('server1:/data/brick1');
    expect(checkCreateArgs({ name: 'gv0', bricks: bricks('a', 2) }).type).toBe('Distribute');
    expect(checkCreateArgs({ name: 'gv0', replica: 3, bricks: bricks('a', 3) })).toMatchObject({ type: 'Replicate', replicaCount: 3 });
    expect(checkCreateArgs({ name: 'gv0', replica: 2, bricks: bricks('a', 6) }).type).toBe('Distributed-Replicate');
    expect(createArgsOf('gv0', ['replica', '2', 'transport', 'tcp', 'a:/b', 'c:/d'])).toEqual({ name: 'gv0', replica: 2, bricks: ['a:/b', 'c:/d'] });
    for (const bad of ['a', 'a:b', 'a:/', 'a:/x/../y', 'a b:/x', 'a:/x y', '-a:/x', 'a:/"x"']) expect(() => parseBrick(bad), bad).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => createArgsOf('gv0', ['replica', 'three', 'a:/b'])).toThrow(/whole number/);
    expect(() => createArgsOf('gv0', ['transport', 'rdma', 'a:/b'])).toThrow(/only tcp/);
  });

  it('prints `volume info` as GlusterFS does', () => {
    const info: VolumeInfo = {
      ...newVolumeInfo({ name: 'gv0', replica: 3, bricks: bricks('gv0', 6) }, { now: () => new Date(0), uuid: () => '00000000-0000-4000-8000-000000000000' }),
      options: { 'performance.cache-size': '256MB' },
    };
    expect(infoText(info)).toBe(
      [
        'Volume Name: gv0',
        'Type: Distributed-Replicate',
        'Volume ID: 00000000-0000-4000-8000-000000000000',
        'Status: Created',
        'Number of Bricks: 2 x 3 = 6',
        'Transport-type: tcp',
        'Bricks:',
        ...bricks('gv0', 6).map((b, i) => `Brick${i + 1}: ${b}`),
        'Options Reconfigured:',
        'performance.cache-size: 256MB',
      ].join('\n'),
    );
    expect(infoText({ ...info, type: 'Distribute', replicaCount: 1, bricks: bricks('d', 2), options: {} })).toMatch(/Number of Bricks: 2\nTransport-type: tcp\nBricks:\nBrick1: .*\nBrick2: [^\n]*$/);
  });
});

describe('validation: a typed error, and nothing changes', () => {
  it('refuses each bad command with its code, the store untouched', async () => {
    await createVolume(vol, { name: 'taken', replica: 2, bricks: bricks('taken', 2) });
    await createVolume(vol, { name: 'running', bricks: bricks('running', 1) });
    await startVolume(vol, 'running');
    await createVolume(vol, { name: 'stopped', bricks: bricks('stopped', 1) });
    await startVolume(vol, 'stopped');
    await stopVolume(vol, 'stopped');

    const cases: [string, () => Promise<unknown>, string, RegExp][] = [
      ['duplicate name', () => createVolume(vol, { name: 'taken', bricks: bricks('other', 1) }), 'already-exists', /volume taken already exists/],
      ['brick reuse', () => createVolume(vol, { name: 'thief', bricks: ['elsewhere:/x', 'server2:/data/taken/brick/'] }), 'brick-in-use', /brick server2:\/data\/taken\/brick is already part of volume taken/],
      ['replica/brick mismatch', () => createVolume(vol, { name: 'odd', replica: 2, bricks: bricks('odd', 3) }), 'invalid-argument', /not a multiple of replica count/],
      ['replica 1', () => createVolume(vol, { name: 'one', replica: 1, bricks: bricks('one', 1) }), 'invalid-argument', /replica count/],
      ['brick twice', () => createVolume(vol, { name: 'twice', bricks: ['a:/x', 'A:/x/'] }), 'invalid-argument', /given twice/],
      ['no bricks', () => createVolume(vol, { name: 'empty', bricks: [] }), 'invalid-argument', /at least one brick/],
      ['bad name', () => createVolume(vol, { name: 'a/b', bricks: ['a:/x'] }), 'invalid-argument', /volume name/],
      ['name all', () => createVolume(vol, { name: 'all', bricks: ['a:/x'] }), 'invalid-argument', /"all"/],
      ['start a started volume', () => startVolume(vol, 'running'), 'illegal-transition', /already started/],
      ['stop a created volume', () => stopVolume(vol, 'taken'), 'illegal-transition', /not started \(status Created\)/],
      ['stop a stopped volume', () => stopVolume(vol, 'stopped'), 'illegal-transition', /not started \(status Stopped\)/],
      ['delete a started volume', () => deleteVolume(vol, 'running'), 'illegal-transition', /stop it first/],
      ['start a missing volume', () => startVolume(vol, 'missing'), 'not-found', /volume missing does not exist/],
      ['delete a missing volume', () => deleteVolume(vol, 'missing'), 'not-found', /does not exist/],
      ['set on a missing volume', () => setVolumeOption(vol, 'missing', 'a.b', 'c'), 'not-found', /does not exist/],
      ['undotted option', () => setVolumeOption(vol, 'taken', 'cache-size', '1'), 'invalid-argument', /dotted/],
      ['empty option value', () => setVolumeOption(vol, 'taken', 'a.b', ''), 'invalid-argument', /non-empty/],
      ['two-line option value', () => setVolumeOption(vol, 'taken', 'a.b', 'x\ny'), 'invalid-argument', /one line/],
    ];
    for (const [what, f, code, message] of cases) {
      const before = await snapshot();
      const e = await refusal(f());
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(message);
      const after = await snapshot();
      expect(after, what).toEqual(before); // same rev: no entry at all, not even an empty one
    }
  });

  it('reports a record that does not decode: store-invalid for its commands, skipped in a listing', async () => {
    await vol.put(infoKey('junk'), '{"name":"junk"}');
    expect((await refusal(startVolume(vol, 'junk'))).code).toBe('store-invalid');
    expect((await refusal(getVolume(vol, 'junk'))).code).toBe('store-invalid');
    const l = await listVolumes(vol);
    expect(l.skipped).toEqual([{ key: infoKey('junk'), reason: 'uuid is not a lowercase UUID' }]);
    expect(l.volumes.map((v) => v.name)).not.toContain('junk');
    await vol.delete(infoKey('junk'));
  });
});

describe('the state machine', () => {
  it('created → started ↔ stopped → deleted; a delete frees the name and the bricks', async () => {
    const b = bricks('life', 4);
    const c = await createVolume(vol, { name: 'life', replica: 2, bricks: b });
    expect(c.info).toMatchObject({ name: 'life', type: 'Distributed-Replicate', replicaCount: 2, bricks: b, status: 'Created', options: {}, version: 1 });
    expect((await vol.get(brickKey(b[0] as string))).kv?.value).toEqual(Buffer.from('life'));
    const steps = [
      await startVolume(vol, 'life'),
      await setVolumeOption(vol, 'life', 'performance.cache-size', '256MB'),
      await stopVolume(vol, 'life'),
      await startVolume(vol, 'life'),
      await stopVolume(vol, 'life'),
    ];
    expect(steps.map((s) => [s.info.status, s.info.version])).toEqual([['Started', 2], ['Started', 3], ['Stopped', 4], ['Started', 5], ['Stopped', 6]]);
    expect((await getVolume(vol, 'life')).info).toEqual(steps.at(-1)?.info);
    const d = await deleteVolume(vol, 'life');
    expect(d.info).toEqual(steps.at(-1)?.info);
    expect((await refusal(getVolume(vol, 'life'))).code).toBe('not-found');
    for (const x of b) expect((await vol.get(brickKey(x))).kv).toBeUndefined();
    const again = await createVolume(vol, { name: 'life', bricks: b });
    expect(again.info.uuid).not.toBe(c.info.uuid); // another volume under the same name
    await deleteVolume(vol, 'life');
  });

  it('racing commands: one create and one start win, both sets land; a record that keeps changing gives conflict', async () => {
    const creates = await Promise.allSettled([
      createVolume(vol, { name: 'race-start', bricks: bricks('race-start', 1) }),
      createVolume(vol, { name: 'race-start', bricks: bricks('race-start-2', 1) }),
    ]);
    expect(creates.map((c) => (c.status === 'fulfilled' ? 'won' : (c.reason as { code: string }).code)).sort()).toEqual(['already-exists', 'won']);
    const starts = await Promise.allSettled([startVolume(vol, 'race-start'), startVolume(vol, 'race-start')]);
    expect(starts.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
    const lost = starts.find((s) => s.status === 'rejected');
    expect(lost?.status === 'rejected' && (lost.reason as { code: string }).code).toBe('illegal-transition');

    await Promise.all([setVolumeOption(vol, 'race-start', 'a.one', '1'), setVolumeOption(vol, 'race-start', 'a.two', '2')]);
    const { info } = await getVolume(vol, 'race-start');
    expect(info.options).toEqual({ 'a.one': '1', 'a.two': '2' });
    expect(info.version).toBe(4);

    // A volume whose record changes before each of the command's txns.
    let meddled = 0;
    const meddling = new Proxy(vol, {
      get(t, p, r) {
        if (p !== 'txn') return Reflect.get(t, p, r) as unknown;
        return async (a: Parameters<Volume['txn']>[0]) => {
          meddled++;
          const cur = (await t.get(infoKey('race-start'))).kv?.value as Uint8Array;
          await t.put(infoKey('race-start'), cur);
          return t.txn(a);
        };
      },
    });
    const e = await refusal(setVolumeOption(meddling, 'race-start', 'a.three', '3'));
    expect(e.code).toBe('conflict');
    expect(meddled).toBe(UPDATE_ATTEMPTS_MAX);
    expect((await getVolume(vol, 'race-start')).info.options).not.toHaveProperty('a.three');
  });
});

/** Consumes a volume watcher in the background. */
function collect(w: VolumeWatcher): { events: VolumeInfoEvent[]; error: unknown } {
  const out: { events: VolumeInfoEvent[]; error: unknown } = { events: [], error: undefined };
  void (async () => {
    for await (const e of w) out.events.push(e);
  })().catch((e: unknown) => (out.error = e));
  return out;
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An event as one line: kind, name, status, version. */
function line(e: VolumeInfoEvent): string {
  switch (e.kind) {
    case 'current':
      return `current ${e.volumes.map((v) => v.name).join(',')}`;
    case 'created':
    case 'changed':
      return `${e.kind} ${e.info.name} ${e.info.status} v${e.info.version}`;
    case 'deleted':
      return `deleted ${e.name} (was ${e.prev.status})`;
    case 'skipped':
      return `skipped ${e.key}`;
  }
}

describe('watchVolumes', () => {
  it('a daemon-style watcher sees the current set, then every change in rev order', async () => {
    const w = await watchVolumes(vol);
    const got = collect(w);
    const before = (await listVolumes(vol)).volumes.map((v) => v.name).join(',');
    const revs: Rev[] = [];
    const did = async (c: Promise<{ rev: Rev }>): Promise<void> => void revs.push((await c).rev);
    await did(createVolume(vol, { name: 'gv-watch', replica: 3, bricks: bricks('watch', 3) }));
    await did(setVolumeOption(vol, 'gv-watch', 'performance.cache-size', '256MB'));
    await did(startVolume(vol, 'gv-watch'));
    await did(vol.put(infoKey('gv-bad'), 'nope')); // someone's kv put: skipped, never thrown
    await did(vol.put('/volumes/-x/info', '{}')); // not a volume name
    await did(stopVolume(vol, 'gv-watch'));
    await did(vol.put(BRICKS_PREFIX + 'x', 'y')); // the brick index: passed over
    await did(deleteVolume(vol, 'gv-watch'));
    await vol.delete(infoKey('gv-bad'));
    await vol.delete('/volumes/-x/info');
    await vol.delete(BRICKS_PREFIX + 'x');
    await until(() => got.events.some((e) => e.kind === 'deleted'), 'the delete event');
    await w.cancel();
    expect(got.error).toBeUndefined();
    expect(got.events.map(line)).toEqual([
      `current ${before}`,
      'created gv-watch Created v1',
      'changed gv-watch Created v2',
      'changed gv-watch Started v3',
      `skipped ${infoKey('gv-bad')}`,
      'skipped /volumes/-x/info',
      'changed gv-watch Stopped v4',
      'deleted gv-watch (was Stopped)',
    ]);
    const changes = got.events.slice(1);
    expect(changes.map((e) => e.rev)).toEqual(revs.filter((_, i) => i !== 6)); // all but the brick-index put
    const changed = changes[2];
    expect(changed?.kind === 'changed' && [changed.prev.status, changed.info.options]).toEqual(['Created', { 'performance.cache-size': '256MB' }]);
  });

  it('turns a resync after compaction into the events that take its view to the new one', async () => {
    const enc = (v: VolumeInfo): Uint8Array => Buffer.from(JSON.stringify(v));
    const kv = (v: VolumeInfo, modRev: number): KeyValue => ({ key: infoKey(v.name), value: enc(v), createRev: asRev(1), modRev: asRev(modRev), version: 1, session: asSessionId(0) });
    const a = newVolumeInfo({ name: 'a', bricks: ['h:/a'] });
    const b = newVolumeInfo({ name: 'b', bricks: ['h:/b'] });
    const c = newVolumeInfo({ name: 'c', bricks: ['h:/c'] });
    const a2 = { ...a, status: 'Started' as const, version: 2 };
    // A scripted watch: a resync at rev 50 where a changed, b went and c came; b's record at 5 stays.
    const messages: WatchMessage[] = [{ kind: 'resync', rev: asRev(50), kvs: [kv(a2, 40), kv(c, 45), { ...kv(b, 5), key: BRICKS_PREFIX + 'h%3A%2Fc' }] }];
    const watcher: Watcher = {
      async *[Symbol.asyncIterator]() {
        yield* messages;
      },
      cancel: async () => undefined,
    } as Watcher;
    const fake = {
      range: async () => ({ rev: asRev(10), count: 2, more: false, kvs: [kv(a, 3), kv(b, 5)] }),
      watch: (_q: unknown, o: unknown) => {
        expect(o).toEqual({ fromRev: 11, resync: true });
        return watcher;
      },
    } as unknown as Pick<Volume, 'range' | 'watch'>;
    const events: VolumeInfoEvent[] = [];
    for await (const e of await watchVolumes(fake)) events.push(e);
    expect(events.map((e) => `${e.rev} ${line(e)}`)).toEqual(['10 current a,b', '50 changed a Started v2', '50 created c Created v1', '50 deleted b (was Created)']);
  });
});

/** The CLI against this file's master. */
const cli = (args: readonly string[]): ReturnType<typeof cliAgainst> => cliAgainst(net, args);

describe('the CLI', () => {
  it('two CLIs racing to create a volume (or to take a brick): exactly one wins, the loser gets a typed error', async () => {
    const w = await watchVolumes(vol);
    const got = collect(w);
    const names = ['rc0', 'rc1', 'rc2'];
    // Each racer its own bricks: the loser's must not be left in the index.
    const runs = names.flatMap((n) => ['a', 'b'].map((who) => cli(['volume', 'create', n, 'replica', '2', ...bricks(`${n}-${who}`, 2), '--json'])));
    // Two names, one brick: the other kind of race.
    runs.push(cli(['volume', 'create', 'rb-x', 'shared:/data/brick', '--json']), cli(['volume', 'create', 'rb-y', 'shared:/data/brick', '--json']));
    const results = await Promise.all(runs);

    const [rbx, rby] = results.slice(-2);
    const pairs = [...names.map((n, i) => [n, results[2 * i], results[2 * i + 1]] as const), ['rb', rbx, rby] as const];
    for (const [n, x, y] of pairs) {
      expect([x?.status, y?.status].sort(), `${n}: ${x?.err} ${y?.err}`).toEqual([0, 1]);
      const [win, lose] = x?.status === 0 ? [x, y] : [y, x];
      const winner = (JSON.parse(win?.out ?? '') as { volume: VolumeInfo }).volume;
      const error = (JSON.parse(lose?.err ?? '') as { error: { code: string; message: string } }).error;
      expect(lose?.out).toBe('');
      if (n === 'rb') {
        expect(error).toEqual({ code: 'brick-in-use', message: `brick shared:/data/brick is already part of volume ${winner.name}` });
        expect((await vol.get(brickKey('shared:/data/brick'))).kv?.value).toEqual(Buffer.from(winner.name));
        continue;
      }
      expect(error).toEqual({ code: 'already-exists', message: `volume ${n} already exists` });
      expect((await getVolume(vol, n)).info).toEqual(winner);
      const index = (await vol.range({ prefix: BRICKS_PREFIX })).kvs.filter((kv) => Buffer.from(kv.value ?? []).toString() === n);
      expect(index.map((kv) => decodeURIComponent(kv.key.slice(BRICKS_PREFIX.length))).sort()).toEqual([...winner.bricks].sort());
    }
    // The watcher saw one creation per name, nothing else.
    await until(() => got.events.length === 1 + pairs.length, 'the creations');
    await w.cancel();
    const created = got.events.slice(1).map((e) => (e.kind === 'created' ? e.info.name : line(e)));
    expect([...created].sort()).toEqual([...names, rbx?.status === 0 ? 'rb-x' : 'rb-y'].sort());
    const revs = got.events.map((e) => e.rev);
    expect(revs).toEqual([...revs].sort((p, q) => p - q));
  }, 20_000);

  it('prints info, list, and one-line errors', async () => {
    await startVolume(vol, 'rc0');
    await setVolumeOption(vol, 'rc0', 'performance.cache-size', '256MB');
    const [info, infoJson, list, illegal] = await Promise.all([
      cli(['volume', 'info', 'rc0']),
      cli(['volume', 'info', '--json']),
      cli(['volume', 'list']),
      cli(['volume', 'start', 'rc0']),
    ]);
    for (const r of [info, infoJson, list]) expect(r.status, r.err).toBe(0);
    const rc0 = (await getVolume(vol, 'rc0')).info;
    expect(info.out).toBe(infoText(rc0) + '\n');
    expect(info.out).toContain('Status: Started\nNumber of Bricks: 1 x 2 = 2\n');
    expect(info.out).toContain('Options Reconfigured:\nperformance.cache-size: 256MB\n');
    const all = await listVolumes(vol);
    expect(JSON.parse(infoJson.out)).toEqual({ rev: expect.any(Number), volumes: all.volumes });
    expect(list.out).toBe(all.volumes.map((v) => v.name).join('\n') + '\n');
    expect(illegal).toEqual({ status: 1, out: '', err: 'coordvol: illegal-transition: volume rc0 is already started\n' });
  }, 20_000);
});

describe('/v1/volumes', () => {
  it('creates, lists, reads, starts, sets, stops and deletes, with the typed refusals', async () => {
    const app = buildApi({ volume: vol });
    try {
      const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => {
        const r = await app.inject({ method, url, ...(payload !== undefined ? { payload } : {}) });
        return { status: r.statusCode, headers: r.headers, body: r.json() as Record<string, any> };
      };
      const b = bricks('http', 3);
      const c = await call('POST', '/v1/volumes', { name: 'gv-http', replica: 3, bricks: b });
      expect(c.status).toBe(201);
      expect(c.headers['location']).toBe('/v1/volumes/gv-http');
      expect(c.body['volume']).toMatchObject({ name: 'gv-http', type: 'Replicate', replicaCount: 3, bricks: b, status: 'Created', options: {}, version: 1 });

      expect(await call('POST', '/v1/volumes', { name: 'gv-http', bricks: ['x:/y'] })).toMatchObject({ status: 409, body: { error: { code: 'already-exists' } } });
      expect(await call('POST', '/v1/volumes', { name: 'gv-other', bricks: [b[1]] })).toMatchObject({ status: 409, body: { error: { code: 'brick-in-use', details: { volume: 'gv-http' } } } });
      expect(await call('POST', '/v1/volumes', { name: 'gv-other', replica: 2, bricks: ['x:/1', 'x:/2', 'x:/3'] })).toMatchObject({ status: 400, body: { error: { code: 'invalid-argument' } } });
      expect(await call('POST', '/v1/volumes', { name: 'gv-other', bricks: ['x:/1'], extra: 1 })).toMatchObject({ status: 400, body: { error: { code: 'invalid-argument' } } });
      expect(await call('POST', '/v1/volumes/gv-http/stop')).toMatchObject({ status: 409, body: { error: { code: 'illegal-transition' } } });
      expect(await call('GET', '/v1/volumes/no%20such')).toMatchObject({ status: 400, body: { error: { code: 'invalid-argument' } } });
      expect(await call('GET', '/v1/volumes/nope')).toMatchObject({ status: 404, body: { error: { code: 'not-found' } } });

      expect(await call('POST', '/v1/volumes/gv-http/start')).toMatchObject({ status: 200, body: { volume: { status: 'Started', version: 2 } } });
      const set = await call('PUT', '/v1/volumes/gv-http/options', { key: 'performance.cache-size', value: '256MB' });
      expect(set).toMatchObject({ status: 200, body: { volume: { options: { 'performance.cache-size': '256MB' }, version: 3 } } });
      const one = await call('GET', '/v1/volumes/gv-http');
      expect(one.body).toEqual({ rev: expect.any(Number), volume: (await getVolume(vol, 'gv-http')).info });
      const list = await call('GET', '/v1/volumes');
      expect(list.body).toEqual({ rev: expect.any(Number), volumes: (await listVolumes(vol)).volumes, skipped: [] });
      expect(await call('DELETE', '/v1/volumes/gv-http')).toMatchObject({ status: 409, body: { error: { code: 'illegal-transition' } } });
      expect(await call('POST', '/v1/volumes/gv-http/stop')).toMatchObject({ status: 200, body: { volume: { status: 'Stopped' } } });
      expect(await call('DELETE', '/v1/volumes/gv-http')).toMatchObject({ status: 200, body: { volume: { name: 'gv-http', status: 'Stopped' } } });
      expect((await call('GET', '/v1/volumes/gv-http')).status).toBe(404);
      expect((await call('GET', '/v1/volumes?x=1')).status).toBe(400);
    } finally {
      await app.close();
    }
  });
});
