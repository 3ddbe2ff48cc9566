// The public API of coordvol's client library: one entry module (STYLE §8).
export { openVolume, type OpenVolumeOptions, type EmbeddedVolume } from './embedded.js';
export { connect, type ConnectOptions, type RemoteVolume } from './remote.js';
export type { Volume, ReadOpts, RangeOpts, PutOpts } from './volume.js';
export type { Session, SessionOpts } from './session.js';
export type { Watcher, WatchEvent, WatchMessage, WatchOpts } from './watch.js';
export { watchVolumes, type VolumeWatcher, type VolumeInfoEvent, type VolumeInfo, type VolumeInfoStatus, type VolumeType, type SkippedVolume } from './volume-watch.js';
export { json, msgpack, text } from './codec.js';
export { op, compare, TxnBuilder, type CompareValue } from './txn-builder.js';
export { lock, LOCKS_PREFIX, type Lock, type LockOpts } from './recipes/lock.js';
export { election, ELECTIONS_PREFIX, type Election, type ElectionOpts, type Term, type LeaderObserver } from './recipes/election.js';
export { CoordError, isCoordError, ERROR_CODES, type ErrorCode } from '../common/errors.js';
export type { Rev, Epoch, SessionId, VolumeId, BrickId } from '../common/ids.js';
export type {
  GetResult, RangeResult, PutResult, DeleteResult, TxnResult, TxnOp, TxnOpResult, Compare, CompareTarget, CompareOp,
  CompactResult, KeyValue, KeySelector, RangeQuery, Consistency, StatusResult, VolumeStatus, BrickStatus,
  TranslatorDump, ProfileEntry, FopStats, SessionInfo, SessionsResult, ConfigChangeResult, PeerInfo, PeerJoinArgs, PeerJoinResult, DaemonRole,
} from '../../translators/fops.js';
export type { ConfigChange } from '../../replication/config.js';
