// Volume membership (DESIGN §4.1, §4.7): who votes, who learns, how many make a quorum, and the
// one-brick-at-a-time changes a config entry may make. Pure functions: the holder decides when a
// change may be appended; this file decides what a change means and whether it is well formed.
import { coordError, type CoordError } from '../src/common/errors.js';
import type { VolumeConfig } from '../store/types.js';

/** One config entry's change (DESIGN §4.7): one voter or learner, or quorum-count alone. */
export type ConfigChange =
  /** `master`: the protocol address (host:port) of the master serving the brick, when no volfile names it. */
  | { readonly op: 'add-learner'; readonly brick: string; readonly master?: string }
  | { readonly op: 'promote' | 'remove'; readonly brick: string }
  | { readonly op: 'quorum-count'; readonly count: number };

export const CONFIG_OPS: readonly ConfigChange['op'][] = ['add-learner', 'promote', 'remove', 'quorum-count'];

/** A majority of the voters, or the config's quorum-count if higher (DESIGN §4.1). */
export function quorumOf(config: VolumeConfig): number {
  return Math.max(majorityOf(config.bricks.length), config.quorumCount);
}

function majorityOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

export function learnersOf(config: VolumeConfig): readonly string[] {
  return config.learners ?? [];
}

/** Every brick the holder sends entries to: voters, then learners. */
export function membersOf(config: VolumeConfig): readonly string[] {
  return [...config.bricks, ...learnersOf(config)];
}

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

/**
 * A config with these voters and learners (sorted; `learners` left out when empty, as in initial
 * configs), and the master addresses of those members (`masters` left out when none).
 */
function withMembers(config: VolumeConfig, voters: Iterable<string>, learners: Iterable<string>, quorumCount = config.quorumCount, masters = config.masters): VolumeConfig {
  const v = sorted(voters);
  const l = sorted(learners);
  const { learners: _l, masters: _m, ...rest } = config;
  const members = new Set([...v, ...l]);
  const m = Object.entries(masters ?? {}).filter(([b]) => members.has(b));
  return { ...rest, bricks: v, quorumCount, ...(l.length > 0 ? { learners: l } : {}), ...(m.length > 0 ? { masters: Object.fromEntries(m) } : {}) };
}

/** The protocol address of the master serving `brick`, if a config change recorded it. */
export function masterOf(config: VolumeConfig, brick: string): string | undefined {
  return config.masters?.[brick];
}

/**
 * The config after `change`, or why the change is refused (`invalid-argument`). A new brick
 * joins only as a learner and becomes a voter by promotion, so every config differs from the
 * one before by one brick; quorum-count changes alone, to at least a majority and at most the
 * voters (DESIGN §4.1, §4.7). A removal that would leave quorum-count above the voters is
 * refused: lower quorum-count first.
 */
export function applyConfigChange(config: VolumeConfig, change: ConfigChange): VolumeConfig | CoordError {
  const voters = new Set(config.bricks);
  const learners = new Set(learnersOf(config));
  switch (change.op) {
    case 'add-learner':
      if (voters.has(change.brick) || learners.has(change.brick)) return coordError('invalid-argument', `brick ${change.brick} is already a ${voters.has(change.brick) ? 'voter' : 'learner'} of the volume`);
      return withMembers(config, voters, [...learners, change.brick], config.quorumCount, change.master === undefined ? config.masters : { ...config.masters, [change.brick]: change.master });
    case 'promote':
      if (!learners.has(change.brick)) return coordError('invalid-argument', `brick ${change.brick} is not a learner of the volume (add it as a learner first)`);
      learners.delete(change.brick);
      return withMembers(config, [...voters, change.brick], learners);
    case 'remove': {
      if (learners.delete(change.brick)) return withMembers(config, voters, learners);
      if (!voters.has(change.brick)) return coordError('invalid-argument', `brick ${change.brick} is not a member of the volume`);
      if (voters.size === 1) return coordError('invalid-argument', `brick ${change.brick} is the volume's last voter`);
      voters.delete(change.brick);
      if (config.quorumCount > voters.size) {
        return coordError('invalid-argument', `removing ${change.brick} leaves ${voters.size} voters, below quorum-count ${config.quorumCount}: lower quorum-count first`);
      }
      return withMembers(config, voters, learners);
    }
    case 'quorum-count': {
      const n = change.count;
      if (!Number.isInteger(n) || n < majorityOf(voters.size) || n > voters.size) {
        return coordError('invalid-argument', `quorum-count ${n} must be an integer from a majority (${majorityOf(voters.size)}) to the number of voters (${voters.size})`);
      }
      return withMembers(config, voters, learners, n);
    }
  }
}

/** Configs entries may hold: voters and learners disjoint and sorted, at least one voter, quorum-count within range. */
export function configProblem(config: VolumeConfig): string | undefined {
  const l = learnersOf(config);
  if (config.bricks.length === 0) return 'a config has at least one voter';
  if (new Set([...config.bricks, ...l]).size !== config.bricks.length + l.length) return 'a brick appears twice among the voters and learners';
  if (config.quorumCount > config.bricks.length) return `quorum-count ${config.quorumCount} is above the ${config.bricks.length} voters`;
  return undefined;
}
