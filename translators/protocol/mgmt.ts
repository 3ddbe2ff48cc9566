// The management ops a master's or plain peer's protocol listener answers besides fops (DESIGN
// §8): `peerInfo` (who is this daemon, does it hold anything) and `peerJoin` (discard the fresh
// single-brick volume and join another one as a master or a plain peer). They are served by the
// daemon that owns the process (src/daemon), not by the graph: protocol/server hands them to the
// Management its daemon installed. Both need the authenticated connection: the cluster secret a
// join carries is sent only to a server that proved it holds the joining daemon's own secret.
import { coordError } from '../../src/common/errors.js';
import type { VolumeConfig } from '../../store/types.js';

export type DaemonRole = 'master' | 'peer';

export interface PeerInfo {
  /** The daemon's uuid (its data directory's `uuid` file). */
  readonly uuid: string;
  readonly hostname: string;
  /** host:port of its protocol listener. */
  readonly address: string;
  readonly role: DaemonRole;
  readonly volumeId: string;
  readonly volumeName: string;
  /** Its brick as host:path (masters). */
  readonly brick?: string;
  /** Voters and learners of the newest config its brick holds (masters). */
  readonly members: number;
  /** Keys outside /cluster/ at its brick's commit point (masters). */
  readonly keys: number;
  /** It holds data, other members, or has joined a volume: a probe must not discard it. */
  readonly configured: boolean;
  /** Why it counts as configured, for the `already-configured` error. */
  readonly why?: string;
  /** Masters: what a daemon joining this volume needs — the initial config, the lease, every member's master. */
  readonly join?: {
    readonly initial: VolumeConfig;
    readonly leaseMs: number;
    readonly masters: readonly PeerMasterAddress[];
  };
}

export interface PeerMasterAddress {
  /** The brick as host:path. */
  readonly brick: string;
  /** host:port of the master serving it. */
  readonly address: string;
}

export interface PeerJoinArgs {
  readonly role: DaemonRole;
  /** The cluster secret, as the text of a secret file. */
  readonly secret: string;
  readonly volumeId: string;
  /** The volume's initial config, entry (0, 1): its id is a hash of it (DESIGN §8). */
  readonly initial: VolumeConfig;
  /** Every current member's master. */
  readonly masters: readonly PeerMasterAddress[];
  /** The volume's brick lease, the same on every master. */
  readonly leaseMs: number;
}

export interface PeerJoinResult {
  readonly uuid: string;
  readonly address: string;
  /** The brick the joining master will serve (host:path): the one to add as a learner. */
  readonly brick?: string;
}

/** What a daemon installs on its protocol/server to answer management ops. */
export interface Management {
  peerInfo(): Promise<PeerInfo>;
  peerJoin(args: PeerJoinArgs): Promise<PeerJoinResult>;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const HOST_PORT = /^\S{1,1024}:\d{1,5}$/;
const BRICK = /^\S{1,1024}$/;

function brickList(x: unknown, what: string): string[] {
  if (!Array.isArray(x) || x.length > 64 || !x.every((b): b is string => typeof b === 'string' && BRICK.test(b))) {
    throw coordError('invalid-argument', `peerJoin ${what} must be a list of at most 64 bricks (host:path)`);
  }
  return x;
}

/** Checks a peerJoin off the wire and copies the fields it uses (typed errors, nothing applied). */
export function checkPeerJoinArgs(a: unknown): PeerJoinArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'peerJoin takes an object');
  const { role, secret, volumeId, initial, masters, leaseMs } = a;
  if (role !== 'master' && role !== 'peer') throw coordError('invalid-argument', 'peerJoin role must be master or peer');
  if (typeof secret !== 'string' || secret.trim().length === 0 || secret.length > 4096) throw coordError('invalid-argument', 'peerJoin secret must be a non-empty string of at most 4,096 characters');
  if (typeof volumeId !== 'string' || !/^[0-9a-f]{32}$/.test(volumeId)) throw coordError('invalid-argument', 'peerJoin volumeId must be 32 hex digits');
  if (!isObject(initial)) throw coordError('invalid-argument', 'peerJoin initial must be a config');
  const { volumeName, bricks, quorumCount, learners } = initial;
  if (typeof volumeName !== 'string' || volumeName.length === 0 || volumeName.length > 255) throw coordError('invalid-argument', 'peerJoin initial.volumeName must be a name');
  const voters = brickList(bricks, 'initial.bricks');
  if (voters.length === 0) throw coordError('invalid-argument', 'peerJoin initial.bricks names at least one brick');
  if (typeof quorumCount !== 'number' || !Number.isSafeInteger(quorumCount) || quorumCount < 1 || quorumCount > voters.length) {
    throw coordError('invalid-argument', 'peerJoin initial.quorumCount must be from 1 to the number of bricks');
  }
  const l = learners === undefined ? undefined : brickList(learners, 'initial.learners');
  if (!Array.isArray(masters) || masters.length === 0 || masters.length > 64) throw coordError('invalid-argument', 'peerJoin masters must list 1 to 64 masters');
  const ms = masters.map((m): PeerMasterAddress => {
    if (!isObject(m) || typeof m['brick'] !== 'string' || !BRICK.test(m['brick']) || typeof m['address'] !== 'string' || !HOST_PORT.test(m['address'])) {
      throw coordError('invalid-argument', 'peerJoin masters are {brick: host:path, address: host:port}');
    }
    return { brick: m['brick'], address: m['address'] };
  });
  if (typeof leaseMs !== 'number' || !Number.isSafeInteger(leaseMs) || leaseMs < 1 || leaseMs > 600_000) throw coordError('invalid-argument', 'peerJoin leaseMs must be from 1 to 600,000');
  return { role, secret, volumeId, initial: { volumeName, bricks: voters, quorumCount, ...(l ? { learners: l } : {}) }, masters: ms, leaseMs };
}
