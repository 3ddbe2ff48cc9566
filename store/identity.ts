// Volume and brick identity (DESIGN §8): volumeId is a hash of the canonical initial config
// entry, brickId a hash of (volumeId, host:path). Volfiles that differ make different volumes.
import { createHash } from 'node:crypto';
import { asBrickId, asVolumeId, type BrickId, type VolumeId } from '../src/common/ids.js';
import type { VolumeConfig } from './types.js';

/**
 * Canonical encoding: fixed field order, bricks sorted. `learners` and `masters` are encoded
 * only when present: a config without them must encode exactly as before they existed, or every
 * existing volume's id (a hash of its initial config) would change.
 */
export function canonicalConfig(c: VolumeConfig): string {
  const base = { volumeName: c.volumeName, bricks: [...c.bricks].sort(), quorumCount: c.quorumCount };
  const withLearners = c.learners === undefined ? base : { ...base, learners: [...c.learners].sort() };
  if (c.masters === undefined) return JSON.stringify(withLearners);
  const masters = Object.fromEntries(Object.entries(c.masters).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify({ ...withLearners, masters });
}

export function volumeIdOf(c: VolumeConfig): VolumeId {
  return asVolumeId(createHash('sha256').update('coordvol-volume\0').update(canonicalConfig(c)).digest('hex').slice(0, 32));
}

export function brickIdOf(volumeId: VolumeId, brick: string): BrickId {
  return asBrickId(createHash('sha256').update('coordvol-brick\0').update(volumeId).update('\0').update(brick).digest('hex').slice(0, 16));
}

/** Names the fields in which two configs differ, for errors that say what to fix. */
export function configDiff(a: VolumeConfig, b: VolumeConfig): string[] {
  const out: string[] = [];
  if (a.volumeName !== b.volumeName) out.push(`volume name ${JSON.stringify(a.volumeName)} ≠ ${JSON.stringify(b.volumeName)}`);
  const ab = [...a.bricks].sort().join(',');
  const bb = [...b.bricks].sort().join(',');
  if (ab !== bb) out.push(`bricks [${ab}] ≠ [${bb}]`);
  if (a.quorumCount !== b.quorumCount) out.push(`quorum-count ${a.quorumCount} ≠ ${b.quorumCount}`);
  const al = a.learners === undefined ? undefined : [...a.learners].sort().join(',');
  const bl = b.learners === undefined ? undefined : [...b.learners].sort().join(',');
  if (al !== bl) out.push(`learners ${al === undefined ? '(none)' : `[${al}]`} ≠ ${bl === undefined ? '(none)' : `[${bl}]`}`);
  return out;
}
