// What a daemon answers `peerInfo` with (DESIGN §8): who it is, and whether a probe may discard
// it. "Fresh" is a single-brick master whose brick holds no keys outside /cluster/ (a daemon keeps
// its own liveness key and peer record even alone), whose volume has no other member and whose
// cluster map names no other peer. A master also says what a daemon joining its volume needs.
import { membersOf } from '../../replication/config.js';
import { ReplicateTranslator } from '../../translators/cluster/replicate.js';
import { LocksTranslator } from '../../translators/features/locks.js';
import type { PeerInfo } from '../../translators/fops.js';
import type { Graph, Translator } from '../../translators/index.js';
import { ProtocolClientTranslator } from '../../translators/protocol/client.js';
import { StorageTranslator } from '../../translators/storage/brick.js';
import { PEERS_PREFIX } from '../mgmt/cluster-map.js';

const CLUSTER_PREFIX = '/cluster/';

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

export function peerInfoOf(graph: Graph, self: { readonly uuid: string; readonly hostname: string; readonly address: string }): PeerInfo {
  const find = <T extends Translator>(cls: abstract new (...a: never[]) => T): T | undefined => graph.translators.find((t): t is T => t instanceof cls);
  const storage = find(StorageTranslator);
  if (!storage) {
    const client = find(ProtocolClientTranslator);
    return { ...self, role: 'peer', volumeId: client?.volumeId ?? '', volumeName: '', members: 0, keys: 0, configured: true, why: 'it is a plain peer of a volume already' };
  }
  const store = storage.store;
  const members = membersOf(store.logConfig).length;
  let cluster = 0;
  let peersOther = 0;
  for (const { key } of store.scan({ start: CLUSTER_PREFIX, end: CLUSTER_PREFIX.slice(0, -1) + '0' }, store.commitRev)) {
    cluster++;
    if (key.startsWith(PEERS_PREFIX) && key !== PEERS_PREFIX + self.uuid) peersOther++;
  }
  const keys = store.countKeys() - cluster;
  const newest = find(ReplicateTranslator)?.memberMasters(true).masters ?? [];
  const joined = store.config.bricks.length > 1 || storage.initialConfig.bricks.join() !== storage.brickName || newest.length !== 1;
  const why = [
    ...(keys > 0 ? [`it holds ${plural(keys, 'key')}`] : []),
    ...(members > 1 || joined ? [`its volume has ${plural(members, 'member')}`] : []),
    ...(peersOther > 0 ? [`its cluster map lists ${plural(peersOther, 'other peer')}`] : []),
  ];
  const locks = find(LocksTranslator);
  return {
    ...self,
    role: 'master',
    volumeId: store.identity.volumeId,
    volumeName: store.identity.volumeName,
    brick: storage.brickName,
    members,
    keys,
    configured: why.length > 0,
    ...(why.length > 0 ? { why: why.join(', ') } : {}),
    ...(locks
      ? {
          join: {
            initial: storage.initialConfig,
            leaseMs: locks.leaseDurationMs,
            // This master is reached where it listens, whatever its holder-id says.
            masters: newest.flatMap((m) => (m.brick === storage.brickName ? [{ brick: m.brick, address: self.address }] : m.address === undefined ? [] : [{ brick: m.brick, address: m.address }])),
          },
        }
      : {}),
  };
}
