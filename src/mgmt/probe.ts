// `peer probe` and `peer detach` (DESIGN §8), run by the CLI against any master. A probe asks the
// probed daemon who it is, refuses one that holds anything, sends it the volume's initial config,
// the masters and the cluster secret (over a connection authenticated with the probed daemon's
// own secret, both ways), and — for a master — adds its brick as a learner, follows its heal and
// promotes it once it has caught up: one brick at a time (DESIGN §4.7). Each step is safe to run
// again: a probe interrupted after the join picks up where it stopped.
import { quorumOf } from '../../replication/config.js';
import type { ConfigChangeResult, PeerInfo, SnapshotProgress, VolumeStatus } from '../../translators/fops.js';
import type { ConfigChange } from '../../replication/config.js';
import { coordError, isCoordError } from '../common/errors.js';
import type { Volume } from '../client/volume.js';
import { deletePeer, findPeerByAddress, putPeer, type PeerRecord } from './cluster-map.js';

export type ProbeStage = 'joining' | 'adding' | 'healing' | 'promoting' | 'registered';

export interface ProbeProgress {
  readonly stage: ProbeStage;
  /** While healing: how far the learner is behind the commit point, and a snapshot heal's progress. */
  readonly lag?: number;
  readonly snapshot?: SnapshotProgress;
}

export interface ProbeResult {
  readonly uuid: string;
  readonly address: string;
  readonly role: 'master' | 'peer';
  readonly brick?: string;
  readonly volumeId: string;
  /** The volume's members after the probe. */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly quorum: number;
}

export interface ProbeDeps {
  /** The volume, through any of its masters. */
  readonly cluster: Volume;
  /** Connects to the probed daemon with a secret (its own, then the cluster's once it joined). */
  readonly connectPeer: (secret: 'peer' | 'cluster', expectVolumeId?: string) => Promise<Volume>;
  /** The cluster secret's text, sent to a joining daemon. */
  readonly clusterSecret: string;
  readonly onProgress?: (p: ProbeProgress) => void;
  /** Give up at this time (ms since the epoch). */
  readonly untilMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Retries `f` while it fails with one of `codes` (a refusal that clears by itself), until the deadline. */
async function retrying<T>(f: () => Promise<T>, codes: ReadonlySet<string>, untilMs: number): Promise<T> {
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (!isCoordError(e) || !codes.has(e.code) || Date.now() >= untilMs) throw e;
      await sleep(200);
    }
  }
}

const PASSING = new Set(['config-pending', 'not-holder', 'unavailable', 'closed', 'timeout', 'no-quorum']);

export async function reconfigureWaiting(v: Volume, change: ConfigChange, untilMs: number, also: readonly string[] = []): Promise<ConfigChangeResult> {
  return retrying(() => v.reconfigure(change), new Set([...PASSING, ...also]), untilMs);
}

async function masterInfo(cluster: Volume): Promise<PeerInfo & { join: NonNullable<PeerInfo['join']> }> {
  const info = await cluster.peerInfo();
  if (info.role !== 'master' || info.join === undefined) {
    throw coordError('invalid-argument', `--server ${info.address} is a plain peer: run peer probe against a master of the volume`);
  }
  return info as PeerInfo & { join: NonNullable<PeerInfo['join']> };
}

function roleOf(s: VolumeStatus, brick: string): string | undefined {
  return s.bricks.find((b) => b.path === brick)?.role;
}

/** Adds the daemon at `address` to the volume: as a master (brick healed, then a voter) or a plain peer. */
export async function probe(address: string, asMaster: boolean, d: ProbeDeps): Promise<ProbeResult> {
  const master = await masterInfo(d.cluster);
  const volumeId = master.volumeId;
  if (master.join.masters.some((m) => m.address === address) || master.address === address) {
    // A member already: a probe that stopped after add-learner resumes, a voter is refused.
    return resume(address, asMaster, master, d);
  }
  const peer = await d.connectPeer('peer').catch(async (e: unknown) => {
    if (!isCoordError(e) || e.code !== 'auth-failed') throw e;
    // It may have joined already (a probe interrupted after its join): then the cluster secret opens it.
    return d.connectPeer('cluster', volumeId).catch(() => {
      throw coordError('auth-failed', `${address} does not have the secret given for it (--peer-secret-file: the probed daemon's own secret file, until it has joined): ${e.message}`);
    });
  });
  let info: PeerInfo;
  try {
    info = await peer.peerInfo();
    if (info.volumeId === volumeId) {
      // Joined already: a plain peer with its record is a peer already (a master's membership is checked below).
      if (info.role === 'peer' && !asMaster && (await findPeerByAddress(d.cluster, address)) !== undefined) {
        throw coordError('already-member', `${address} is a plain peer of this volume already`);
      }
      await peer.close();
      return resume(address, asMaster, master, d);
    }
    if (info.configured) {
      throw coordError('already-configured', `${address} is configured and is not discarded: ${info.why ?? 'it belongs to another volume'} (volume ${info.volumeId})`, { volumeId: info.volumeId });
    }
    if ((await findPeerByAddress(d.cluster, address)) !== undefined) throw coordError('already-member', `${address} is a peer of this volume already`);
    d.onProgress?.({ stage: 'joining' });
    await peer.peerJoin({ role: asMaster ? 'master' : 'peer', secret: d.clusterSecret, volumeId, initial: master.join.initial, masters: master.join.masters, leaseMs: master.join.leaseMs });
  } finally {
    await peer.close().catch(() => undefined);
  }
  return resume(address, asMaster, master, d);
}

/** From a daemon that has joined (or is joining): wait for it, add it, heal, promote, register. */
async function resume(address: string, asMaster: boolean, master: PeerInfo & { join: NonNullable<PeerInfo['join']> }, d: ProbeDeps): Promise<ProbeResult> {
  const volumeId = master.volumeId;
  // The joined daemon serves this volume with the cluster secret once its new graph is up.
  const joined = await retrying(async () => {
    const v = await d.connectPeer('cluster', volumeId);
    try {
      const i = await v.peerInfo();
      if (i.volumeId !== volumeId) throw coordError('unavailable', `${address} has not joined yet`);
      return i;
    } finally {
      await v.close().catch(() => undefined);
    }
  }, new Set(['unavailable', 'closed', 'timeout', 'auth-failed', 'wrong-volume']), d.untilMs);
  if ((joined.role === 'master') !== asMaster) {
    throw coordError('already-member', `${address} is a ${joined.role === 'master' ? 'master' : 'plain peer'} of this volume already${asMaster ? ' (detach it first to make it a master)' : ''}`);
  }
  const record: PeerRecord = {
    uuid: joined.uuid,
    hostname: joined.hostname,
    address: joined.address,
    role: joined.role,
    ...(joined.brick !== undefined ? { brick: joined.brick } : {}),
    probedAt: new Date().toISOString(),
  };
  if (asMaster) {
    const brick = joined.brick;
    if (brick === undefined) throw coordError('internal', `${address} reports no brick`);
    let status = (await d.cluster.status()).volume;
    const role = status ? roleOf(status, brick) : undefined;
    if (role === 'voter' || role === 'holder') {
      const existing = await findPeerByAddress(d.cluster, address);
      if (existing) throw coordError('already-member', `${address} is a master of this volume already (brick ${brick})`);
    }
    if (role === undefined || role === 'removed') {
      d.onProgress?.({ stage: 'adding' });
      await reconfigureWaiting(d.cluster, { op: 'add-learner', brick, master: joined.address }, d.untilMs);
    }
    if (role !== 'voter' && role !== 'holder') {
      // Heal: the holder sends the learner every entry (a snapshot first if its log was trimmed).
      for (;;) {
        status = (await d.cluster.status()).volume;
        const b = status?.bricks.find((x) => x.path === brick);
        if (b?.role === 'voter') break;
        d.onProgress?.({ stage: 'healing', ...(b?.lag !== undefined ? { lag: b.lag } : {}), ...(b?.snapshot ? { snapshot: b.snapshot } : {}) });
        if (b?.role === 'learner' && b.lag === 0) {
          d.onProgress?.({ stage: 'promoting' });
          try {
            await reconfigureWaiting(d.cluster, { op: 'promote', brick }, Math.min(d.untilMs, Date.now() + 2_000), ['learner-behind']);
            break;
          } catch (e) {
            if (!isCoordError(e) || e.code !== 'learner-behind' || Date.now() >= d.untilMs) throw e;
          }
        }
        if (Date.now() >= d.untilMs) throw coordError('timeout', `${brick} did not catch up in time (lag ${b?.lag ?? '?'}): run the probe again to go on`);
        await sleep(200);
      }
    }
  }
  await putPeer(d.cluster, record);
  d.onProgress?.({ stage: 'registered' });
  const s = (await d.cluster.status()).volume;
  return {
    uuid: joined.uuid,
    address: joined.address,
    role: joined.role,
    ...(joined.brick !== undefined ? { brick: joined.brick } : {}),
    volumeId,
    voters: s?.bricks.filter((b) => b.role === 'voter' || b.role === 'holder').map((b) => b.path) ?? [],
    learners: s?.bricks.filter((b) => b.role === 'learner').map((b) => b.path) ?? [],
    quorum: s?.quorum ?? 0,
  };
}

export interface DetachResult {
  readonly address: string;
  readonly role: 'master' | 'peer';
  readonly brick?: string;
  readonly voters: readonly string[];
  readonly quorum: number;
}

/**
 * Removes the daemon at `address`: a master's brick by a config entry (refused when the voters
 * left that answer now would be fewer than their quorum, unless `force`), and its peer record.
 */
export async function detach(cluster: Volume, address: string, o: { readonly force: boolean; readonly untilMs: number }): Promise<DetachResult> {
  const master = await masterInfo(cluster);
  const record = await findPeerByAddress(cluster, address);
  const member = master.join.masters.find((m) => m.address === address);
  if (!member && !record) throw coordError('not-found', `${address} is not a peer of this volume (see \`coordvol peer status\`)`);
  if (member) {
    const status = (await cluster.status()).volume;
    if (!status) throw coordError('internal', 'the master reports no volume status');
    const voters = status.bricks.filter((b) => b.role === 'voter' || b.role === 'holder');
    const isVoter = voters.some((b) => b.path === member.brick);
    if (isVoter && !o.force) {
      const left = voters.filter((b) => b.path !== member.brick);
      // A majority of the voters left (the holder refuses a removal leaving quorum-count above them).
      const quorum = quorumOf({ volumeName: status.volumeName, bricks: left.map((b) => b.path), quorumCount: 0 });
      const answering = left.filter((b) => b.reachable === true).length;
      if (left.length === 0) throw coordError('invalid-argument', `${address} serves the volume's last voter: it cannot be detached`);
      if (answering < quorum) {
        throw coordError('no-quorum', `detaching ${address} leaves ${answering} answering voter${answering === 1 ? '' : 's'} of ${left.length}, below their quorum of ${quorum}: bring the others back first, or pass --force`);
      }
    }
    await reconfigureWaiting(cluster, { op: 'remove', brick: member.brick }, o.untilMs);
  }
  if (record) await deletePeer(cluster, record.uuid);
  const s = (await cluster.status()).volume;
  return {
    address,
    role: member ? 'master' : 'peer',
    ...(member ? { brick: member.brick } : {}),
    voters: s?.bricks.filter((b) => b.role === 'voter' || b.role === 'holder').map((b) => b.path) ?? [],
    quorum: s?.quorum ?? 0,
  };
}
