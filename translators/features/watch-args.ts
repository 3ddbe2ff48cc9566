// A watch's arguments, checked where they enter (features/watch for in-process callers,
// protocol/server off the wire) with typed errors, and the key range they select.
import { coordError } from '../../src/common/errors.js';
import { compareKeys, prefixEnd, RESERVED_PREFIX } from '../../src/common/keys.js';
import { isPlainObject as isObject } from '../../src/common/plain.js';
import { checkOptionalBool, checkSelector, selectorRange } from '../../replication/validate.js';
import type { KeySelector } from '../../replication/ops.js';
import type { KeyRange } from '../../store/types.js';
import type { WatchOptions, WireUnwatchArgs, WireWatchArgs } from './watch-types.js';

/** Stream numbers a client may pick (msgpack uint32, and 0 is never used). */
const STREAM_MAX = 2 ** 32 - 1;

/** Selector (key, prefix, or start with optional end) and options: fromRev ≥ 1, prevKv, progress. */
export function checkWatchArgs(a: unknown): asserts a is KeySelector & WatchOptions {
  if (!isObject(a)) throw coordError('invalid-argument', 'watch takes an object');
  checkSelector(a);
  const from = a['fromRev'];
  if (from !== undefined && (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 1)) {
    throw coordError('invalid-argument', 'fromRev must be a positive integer (omit it to watch from now)');
  }
  checkOptionalBool(a, 'prevKv');
  checkOptionalBool(a, 'progress');
}

function checkStream(a: Record<string, unknown>): number {
  const s = a['stream'];
  if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 1 || s > STREAM_MAX) {
    throw coordError('invalid-argument', `stream must be an integer in [1, ${STREAM_MAX}]`);
  }
  return s;
}

/** A watch request off the wire, copied field by field (nothing a peer slipped in goes on). */
export function checkWireWatch(a: unknown): WireWatchArgs {
  checkWatchArgs(a);
  const stream = checkStream(a as unknown as Record<string, unknown>);
  const sel: KeySelector = a.key !== undefined
    ? { key: a.key }
    : a.prefix !== undefined
      ? { prefix: a.prefix }
      : a.end !== undefined ? { start: a.start as string, end: a.end } : { start: a.start as string };
  return {
    ...sel,
    ...(a.fromRev !== undefined ? { fromRev: a.fromRev } : {}),
    ...(a.prevKv === true ? { prevKv: true } : {}),
    ...(a.progress === true ? { progress: true } : {}),
    stream,
  };
}

export function checkWireUnwatch(a: unknown): WireUnwatchArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'unwatch takes an object');
  return { stream: checkStream(a) };
}

/** The half-open key range a watch selects (a key alone is [key, key + U+0001)). */
export const watchRange = (sel: KeySelector): KeyRange => selectorRange(sel);

const RESERVED_END = prefixEnd(RESERVED_PREFIX) as string;

/**
 * Keys under /_coordvol/ are the volume's own records (sessions keep theirs there): a watch sees
 * their changes only when what it selects lies wholly inside /_coordvol/, so a watch of '' or '/'
 * reports client keys alone.
 */
export function seesReserved(r: KeyRange): boolean {
  return r.start.startsWith(RESERVED_PREFIX) && r.end !== undefined && compareKeys(r.end, RESERVED_END) <= 0;
}
