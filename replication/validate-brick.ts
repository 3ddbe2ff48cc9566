// Brick fops off the wire (probe, lock, append, fetch; DESIGN §4, §7). Filter untrusted input
// first (STYLE §4): a remote master's request is checked field by field here, with a typed
// `invalid-argument` naming the field, before the brick acceptor (brick.ts) sees it — the
// acceptor asserts its preconditions, and an assertion is a bug, not an answer. Also here: the
// exact-shape copies of entries (so nothing a peer slipped in beside a field is stored), and the
// decoding of brick results as protocol/client receives them.
import { coordError, isCoordError } from '../src/common/errors.js';
import type { Epoch, Rev } from '../src/common/ids.js';
import { keyByteLength } from '../src/common/keys.js';
import { messageBytesMax } from '../src/common/limits.js';
import { isPlainObject } from '../src/common/plain.js';
import type { Effect, Entry, LogPosition, VolumeConfig } from '../store/types.js';
import type { AppendArgs, AppendResult, FetchArgs, FetchResult, LockArgs, LockResult, ProbeArgs, ProbeResult } from './messages.js';
import { bad, checkConfig, copyConfig, key, object, posInt, str, uint, wrong, type Obj } from './wire-fields.js';

/** The most entries one fetch may ask for, and one append may carry. */
export const brickEntriesMax = 100_000;
/** candidate and sender: a master's id (host:pid by default). */
const ID_CHARS_MAX = 256;

/** One effect; returns the bytes of keys and values it carries. */
function checkEffect(v: unknown, field: string): number {
  const f = object(v, field);
  const t = f['t'];
  switch (t) {
    case 'put': {
      const k = key(f['key'], `${field}.key`);
      const value = f['value'];
      if (!(value instanceof Uint8Array)) throw bad(`${field}.value`, 'must be bytes');
      uint(f['createRev'], `${field}.createRev`);
      uint(f['version'], `${field}.version`);
      uint(f['session'], `${field}.session`);
      return keyByteLength(k) + value.byteLength;
    }
    case 'del':
      return keyByteLength(key(f['key'], `${field}.key`));
    case 'compact':
      uint(f['rev'], `${field}.rev`);
      return 0;
    case 'config':
      checkConfig(f['config'], `${field}.config`);
      return 0;
    case 'epoch-start':
      return 0;
    default:
      throw bad(`${field}.t`, `is not a known effect type: ${typeof t === 'string' ? JSON.stringify(t.slice(0, 64)) : typeof t}`);
  }
}

/**
 * Entries as an append carries them: at most brickEntriesMax, keys and values within the message
 * cap, revs contiguous from prevRev + 1, epochs never decreasing from prevEpoch nor above the
 * append's epoch (a log's epochs rise with its revs; the holder's entries are of its epoch or
 * older).
 */
function checkEntries(v: unknown, prevEpoch: number, prevRev: number, epoch: number): void {
  if (!Array.isArray(v)) throw bad('entries', 'must be an array');
  if (v.length > brickEntriesMax) throw bad('entries', `has ${v.length} entries, over ${brickEntriesMax}`);
  let bytes = 0;
  let lastEpoch = prevEpoch;
  v.forEach((x: unknown, i) => {
    const field = `entries[${i}]`;
    const e = object(x, field);
    const entryEpoch = uint(e['epoch'], `${field}.epoch`);
    const rev = uint(e['rev'], `${field}.rev`);
    if (rev !== prevRev + 1 + i) throw bad(`${field}.rev`, `is ${rev}, not ${prevRev + 1 + i}: entries must be contiguous from prevRev + 1`);
    if (entryEpoch > epoch) throw bad(`${field}.epoch`, `is ${entryEpoch}, above the append's epoch ${epoch}`);
    if (entryEpoch < lastEpoch) throw bad(`${field}.epoch`, `is ${entryEpoch}, below the epoch ${lastEpoch} before it`);
    lastEpoch = entryEpoch;
    const sclock = e['sclock'];
    if (sclock !== undefined && (typeof sclock !== 'number' || !Number.isFinite(sclock))) throw bad(`${field}.sclock`, 'must be a finite number');
    const effects = e['effects'];
    if (!Array.isArray(effects)) throw bad(`${field}.effects`, 'must be an array');
    effects.forEach((f: unknown, j) => (bytes += checkEffect(f, `${field}.effects[${j}]`)));
    if (bytes > messageBytesMax) throw bad('entries', `carry over ${messageBytesMax} bytes of keys and values`);
  });
}

export function checkProbeArgs(a: unknown): asserts a is ProbeArgs {
  const o = object(a, 'probe args');
  uint(o['epoch'], 'epoch');
  str(o['candidate'], 'candidate', ID_CHARS_MAX);
}

export function checkLockArgs(a: unknown): asserts a is LockArgs {
  const o = object(a, 'lock args');
  uint(o['epoch'], 'epoch');
  str(o['candidate'], 'candidate', ID_CHARS_MAX);
}

export function checkAppendArgs(a: unknown): asserts a is AppendArgs {
  const o = object(a, 'append args');
  const epoch = uint(o['epoch'], 'epoch');
  const prevEpoch = uint(o['prevEpoch'], 'prevEpoch');
  const prevRev = uint(o['prevRev'], 'prevRev');
  uint(o['commitRev'], 'commitRev');
  str(o['sender'], 'sender', ID_CHARS_MAX);
  if (prevEpoch > epoch) throw bad('prevEpoch', `is ${prevEpoch}, above the append's epoch ${epoch}`);
  checkEntries(o['entries'], prevEpoch, prevRev, epoch);
  const entries = o['entries'] as readonly unknown[];
  if (!Number.isSafeInteger(prevRev + entries.length)) throw bad('prevRev', 'leaves no room for the entries');
}

export function checkFetchArgs(a: unknown): asserts a is FetchArgs {
  const o = object(a, 'fetch args');
  uint(o['epoch'], 'epoch');
  // Rev 0 is before the log: the first entry a fetch can return is rev 1.
  posInt(o['from'], 'from');
  posInt(o['maxEntries'], 'maxEntries', brickEntriesMax);
}

// ---- exact-shape copies

export function copyEffect(f: Effect): Effect {
  switch (f.t) {
    case 'put':
      return { t: 'put', key: f.key, value: f.value, createRev: f.createRev, version: f.version, session: f.session };
    case 'del':
      return { t: 'del', key: f.key };
    case 'compact':
      return { t: 'compact', rev: f.rev };
    case 'config':
      return { t: 'config', config: copyConfig(f.config) };
    case 'epoch-start':
      return { t: 'epoch-start' };
    default:
      throw coordError('invalid-argument', `unknown effect type ${JSON.stringify((f as { t?: unknown }).t)}`);
  }
}

/** An entry with exactly Entry's fields (sclock only when it has one). */
export function copyEntry(e: Entry): Entry {
  const out = { epoch: e.epoch, rev: e.rev, effects: e.effects.map(copyEffect) };
  return e.sclock === undefined ? out : { ...out, sclock: e.sclock };
}

// ---- brick results as protocol/client receives them
//
// The server is a master that proved it holds the cluster secret, so its answers are not
// checked like requests; they are rebuilt in their declared shape (msgpack gives Buffers for
// bytes, which are Uint8Arrays, and may drop or add fields a newer peer knows). A value of the
// wrong type fails the call `protocol-error` rather than reaching the replication engine.

function rObj(v: unknown, field: string): Obj {
  if (!isPlainObject(v)) throw wrong(`${field} must be an object`);
  return v;
}

function rNum(o: Obj, field: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw wrong(`${field} must be a number`);
  return v;
}

function rOptNum(o: Obj, field: string): number | undefined {
  return o[field] === undefined || o[field] === null ? undefined : rNum(o, field);
}

function rStr(o: Obj, field: string): string {
  const v = o[field];
  if (typeof v !== 'string') throw wrong(`${field} must be a string`);
  return v;
}

function rBool(o: Obj, field: string): boolean {
  const v = o[field];
  if (typeof v !== 'boolean') throw wrong(`${field} must be a boolean`);
  return v;
}

function rPosition(v: unknown, field: string): LogPosition {
  const p = rObj(v, field);
  return { epoch: rNum(p, 'epoch') as Epoch, rev: rNum(p, 'rev') as Rev };
}

function rConfig(v: unknown): VolumeConfig {
  const c = rObj(v, 'config');
  const bricks = c['bricks'];
  if (!Array.isArray(bricks) || !bricks.every((b) => typeof b === 'string')) throw wrong('config.bricks must be strings');
  const learners = c['learners'];
  if (learners !== undefined && (!Array.isArray(learners) || !learners.every((b) => typeof b === 'string'))) throw wrong('config.learners must be strings');
  const masters = c['masters'];
  if (masters !== undefined && (typeof masters !== 'object' || masters === null || Array.isArray(masters) || !Object.values(masters).every((x) => typeof x === 'string'))) {
    throw wrong('config.masters must map bricks to addresses');
  }
  return copyConfig({
    volumeName: rStr(c, 'volumeName'),
    bricks: bricks as string[],
    quorumCount: rNum(c, 'quorumCount'),
    ...(learners === undefined ? {} : { learners: learners as string[] }),
    ...(masters === undefined ? {} : { masters: masters as Record<string, string> }),
  });
}

function rEntries(v: unknown): Entry[] {
  if (!Array.isArray(v)) throw wrong('entries must be an array');
  try {
    return v.map((x: unknown, i) => {
      checkEntryShape(x, i);
      return copyEntry(x as Entry);
    });
  } catch (e) {
    throw isCoordError(e) && e.code === 'protocol-error' ? e : wrong(`entries: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** An entry's shape as a fetch returns it (its revs' order is the engine's to judge). */
function checkEntryShape(x: unknown, i: number): void {
  const field = `entries[${i}]`;
  const e = object(x, field);
  uint(e['epoch'], `${field}.epoch`);
  uint(e['rev'], `${field}.rev`);
  const sclock = e['sclock'];
  if (sclock !== undefined && (typeof sclock !== 'number' || !Number.isFinite(sclock))) throw bad(`${field}.sclock`, 'must be a finite number');
  const effects = e['effects'];
  if (!Array.isArray(effects)) throw bad(`${field}.effects`, 'must be an array');
  effects.forEach((f: unknown, j) => checkEffect(f, `${field}.effects[${j}]`));
}

function reasonOf<R extends string>(o: Obj, allowed: readonly R[]): R {
  const r = o['reason'];
  if (typeof r !== 'string' || !(allowed as readonly string[]).includes(r)) throw wrong(`reason must be one of ${allowed.join(', ')}`);
  return r as R;
}

export function decodeProbeResult(v: unknown): ProbeResult {
  const o = rObj(v, 'probe result');
  return { wouldGrant: rBool(o, 'wouldGrant'), promisedEpoch: rNum(o, 'promisedEpoch') as Epoch, last: rPosition(o['last'], 'last') };
}

export function decodeLockResult(v: unknown): LockResult {
  const o = rObj(v, 'lock result');
  if (!rBool(o, 'granted')) return { granted: false, promisedEpoch: rNum(o, 'promisedEpoch') as Epoch, reason: reasonOf(o, ['epoch', 'lease'] as const) };
  return {
    granted: true,
    brickId: rStr(o, 'brickId'),
    last: rPosition(o['last'], 'last'),
    commitRev: rNum(o, 'commitRev') as Rev,
    compactRev: rNum(o, 'compactRev') as Rev,
    config: rConfig(o['config']),
    lastSclock: rNum(o, 'lastSclock'),
    quietMs: rNum(o, 'quietMs'),
    leaseMs: rNum(o, 'leaseMs'),
  };
}

export function decodeAppendResult(v: unknown): AppendResult {
  const o = rObj(v, 'append result');
  if (rBool(o, 'ok')) return { ok: true, lastRev: rNum(o, 'lastRev') as Rev, commitRev: rNum(o, 'commitRev') as Rev };
  if (reasonOf(o, ['fenced', 'mismatch'] as const) === 'fenced') return { ok: false, reason: 'fenced', promisedEpoch: rNum(o, 'promisedEpoch') as Epoch };
  return {
    ok: false,
    reason: 'mismatch',
    hintEpoch: rOptNum(o, 'hintEpoch') as Epoch | undefined,
    hintFirstRev: rOptNum(o, 'hintFirstRev') as Rev | undefined,
    lastRev: rNum(o, 'lastRev') as Rev,
  };
}

export function decodeFetchResult(v: unknown): FetchResult {
  const o = rObj(v, 'fetch result');
  if (rBool(o, 'ok')) {
    return {
      ok: true,
      prevEpoch: rOptNum(o, 'prevEpoch') as Epoch | undefined,
      entries: rEntries(o['entries']),
      last: rPosition(o['last'], 'last'),
      commitRev: rNum(o, 'commitRev') as Rev,
    };
  }
  if (reasonOf(o, ['fenced', 'compacted'] as const) === 'fenced') return { ok: false, reason: 'fenced', promisedEpoch: rNum(o, 'promisedEpoch') as Epoch };
  return { ok: false, reason: 'compacted', firstRev: rNum(o, 'firstRev') as Rev };
}
