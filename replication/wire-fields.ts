// The field checks every request off the wire goes through (STYLE §4): each refusal an
// `invalid-argument` naming the field, so a peer learns what it got wrong. Shared by the brick
// fops (validate-brick.ts) and the snapshot chunks (translators/protocol/snapshot-args.ts). Also
// the `protocol-error` a malformed result from a peer becomes.
import { coordError, isCoordError, type CoordError } from '../src/common/errors.js';
import { checkKey } from '../src/common/keys.js';
import { isPlainObject } from '../src/common/plain.js';
import type { VolumeConfig } from '../store/types.js';

export const VOLUME_NAME_CHARS_MAX = 256;
/** A brick's host:path. */
const BRICK_CHARS_MAX = 4096;
const CONFIG_BRICKS_MAX = 1024;

export type Obj = Record<string, unknown>;

export function bad(field: string, why: string): CoordError {
  return coordError('invalid-argument', `${field} ${why}`, { field });
}

export function object(v: unknown, field: string): Obj {
  if (!isPlainObject(v)) throw bad(field, 'must be an object');
  return v;
}

export function uint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(field, 'must be a non-negative integer');
  return v;
}

export function posInt(v: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) {
    throw bad(field, max === Number.MAX_SAFE_INTEGER ? 'must be a positive integer' : `must be an integer in [1, ${max}]`);
  }
  return v;
}

export function str(v: unknown, field: string, maxChars: number): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.length === 0) throw bad(field, 'must not be empty');
  if (v.length > maxChars) throw bad(field, `is over ${maxChars} characters`);
  return v;
}

/** checkKey, with every refusal (key-too-large included) an invalid-argument naming the field. */
export function key(v: unknown, field: string): string {
  try {
    checkKey(v, field);
  } catch (e) {
    throw isCoordError(e) ? coordError('invalid-argument', e.message, { ...e.details, field }) : e;
  }
  return v;
}

export function checkConfig(v: unknown, field: string): void {
  const c = object(v, field);
  str(c['volumeName'], `${field}.volumeName`, VOLUME_NAME_CHARS_MAX);
  const bricks = c['bricks'];
  if (!Array.isArray(bricks)) throw bad(`${field}.bricks`, 'must be an array');
  if (bricks.length > CONFIG_BRICKS_MAX) throw bad(`${field}.bricks`, `has over ${CONFIG_BRICKS_MAX} bricks`);
  bricks.forEach((b, i) => str(b, `${field}.bricks[${i}]`, BRICK_CHARS_MAX));
  posInt(c['quorumCount'], `${field}.quorumCount`);
  const learners = c['learners'];
  if (learners !== undefined) {
    if (!Array.isArray(learners)) throw bad(`${field}.learners`, 'must be an array');
    if (bricks.length + learners.length > CONFIG_BRICKS_MAX) throw bad(`${field}.learners`, `voters and learners exceed ${CONFIG_BRICKS_MAX} bricks`);
    learners.forEach((b, i) => str(b, `${field}.learners[${i}]`, BRICK_CHARS_MAX));
  }
  const masters = c['masters'];
  if (masters === undefined) return;
  const m = object(masters, `${field}.masters`);
  const entries = Object.entries(m);
  if (entries.length > CONFIG_BRICKS_MAX) throw bad(`${field}.masters`, `has over ${CONFIG_BRICKS_MAX} entries`);
  for (const [b, a] of entries) {
    str(b, `${field}.masters key`, BRICK_CHARS_MAX);
    str(a, `${field}.masters[${JSON.stringify(b)}]`, BRICK_CHARS_MAX);
  }
}

export function copyConfig(c: VolumeConfig): VolumeConfig {
  const base = { volumeName: c.volumeName, bricks: [...c.bricks], quorumCount: c.quorumCount };
  const withLearners = c.learners === undefined ? base : { ...base, learners: [...c.learners] };
  return c.masters === undefined ? withLearners : { ...withLearners, masters: { ...c.masters } };
}

export function wrong(what: string): CoordError {
  return coordError('protocol-error', `malformed brick result: ${what}`);
}
