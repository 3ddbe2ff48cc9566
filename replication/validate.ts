// Filter untrusted input first (STYLE §4): every op's arguments are checked here, with a typed
// error, before anything is evaluated or written. Arguments may come off the wire, so nothing
// about their shape is assumed.
import { coordError } from '../src/common/errors.js';
import { isPlainObject as isObject } from '../src/common/plain.js';
import { checkKey, checkRangeBound, checkValue, checkWritableKey, compareKeys, prefixEnd } from '../src/common/keys.js';
import { keyBytesMax, rangeLimitMax, sessionTtlMsMax, txnBytesMax, txnOpsMax } from '../src/common/limits.js';
import type { KeyRange } from '../store/types.js';
import { CONFIG_OPS, type ConfigChange } from './config.js';
import type { CompactArgs, Compare, DeleteArgs, GetArgs, KeySelector, PutArgs, RangeArgs, ReadOptions, SessionIdArgs, SessionOpenArgs, TxnArgs, TxnOp } from './ops.js';

const COMPARE_TARGETS = new Set(['value', 'version', 'createRev', 'modRev', 'exists']);
const COMPARE_OPS = new Set(['=', '!=', '<', '>']);

export function checkOptionalBool(o: Record<string, unknown>, name: string): void {
  if (o[name] !== undefined && typeof o[name] !== 'boolean') throw coordError('invalid-argument', `${name} must be a boolean`);
}

function checkRevValue(x: unknown, name: string): void {
  if (x === undefined) return;
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw coordError('invalid-argument', `${name} must be a non-negative integer`);
}

function checkReadOptions(o: Record<string, unknown>): void {
  if (o['rev'] === undefined && o['minRev'] === undefined && o['consistency'] === undefined) return;
  checkRevValue(o['rev'], 'rev');
  checkRevValue(o['minRev'], 'minRev');
  const c = o['consistency'];
  if (c !== undefined && c !== 'linearizable' && c !== 'serializable') {
    throw coordError('invalid-argument', `consistency must be "linearizable" or "serializable", not ${JSON.stringify(c)}`);
  }
}

/** Exactly one of key, prefix or start (with optional end). */
export function checkSelector(o: Record<string, unknown>): void {
  const given = ['key', 'prefix', 'start'].filter((k) => o[k] !== undefined);
  if (given.length !== 1) throw coordError('invalid-argument', 'give exactly one of key, prefix or start');
  if (o['key'] !== undefined) checkKey(o['key']);
  if (o['prefix'] !== undefined) checkRangeBound(o['prefix'], 'prefix');
  if (o['start'] !== undefined) {
    checkRangeBound(o['start'], 'start');
    if (o['end'] !== undefined) {
      checkKey(o['end'], 'end');
      if (compareKeys(o['end'] as string, o['start'] as string) <= 0) throw coordError('invalid-argument', 'end must be above start');
    }
  } else if (o['end'] !== undefined) {
    throw coordError('invalid-argument', 'end goes with start');
  }
}

/** The half-open key range a selector covers. */
export function selectorRange(sel: KeySelector): KeyRange {
  // [key, key + U+0001) holds the key alone: keys never contain NUL. (key + NUL as the end would
  // sort below the key's own history entries, key + 0x00 + rev, in the store.)
  if (sel.key !== undefined) return { start: sel.key, end: sel.key + '\u0001' };
  if (sel.prefix !== undefined) return { start: sel.prefix, end: sel.prefix === '' ? undefined : prefixEnd(sel.prefix) };
  return { start: sel.start, end: sel.end };
}

export function checkGetArgs(a: unknown): asserts a is GetArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'get takes an object');
  checkKey(a['key']);
  checkReadOptions(a);
}

function checkRangeQuery(a: Record<string, unknown>): void {
  checkSelector(a);
  const limit = a['limit'];
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > rangeLimitMax)) {
    throw coordError('invalid-argument', `limit must be an integer in [1, ${rangeLimitMax}]`);
  }
  checkOptionalBool(a, 'keysOnly');
  checkOptionalBool(a, 'countOnly');
  checkOptionalBool(a, 'children');
  if (a['children'] === true && a['prefix'] === undefined) throw coordError('invalid-argument', 'children needs a prefix (the parent path)');
}

export function checkRangeArgs(a: unknown): asserts a is RangeArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'range takes an object');
  checkRangeQuery(a);
  checkReadOptions(a);
}

export function checkPutArgs(a: unknown): asserts a is PutArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'put takes an object');
  checkWritableKey(a['key']);
  checkValue(a['value']);
  checkOptionalBool(a, 'prevKv');
  checkOptionalBool(a, 'sequential');
  if (a['session'] !== undefined) checkSessionId(a['session'], 'session');
}

function checkSessionId(x: unknown, name: string): void {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw coordError('invalid-argument', `${name} must be a session id (a non-negative integer)`);
}

export function checkSessionOpenArgs(a: unknown): asserts a is SessionOpenArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'sessionOpen takes an object');
  const ttl = a['ttlMs'];
  if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 2_000 || ttl > sessionTtlMsMax) {
    throw coordError('invalid-argument', `ttlMs must be an integer in [2000, ${sessionTtlMsMax}] (and at least 4·leaseMs)`);
  }
  if (typeof a['nonce'] !== 'string' || !/^[0-9a-f]{32}$/.test(a['nonce'])) throw coordError('invalid-argument', 'nonce must be 32 lowercase hex digits (128 bits)');
  const owner = a['owner'];
  if (owner !== undefined && (typeof owner !== 'string' || owner.length > 256)) throw coordError('invalid-argument', 'owner must be a string of at most 256 characters');
  if (a['client'] !== undefined && typeof a['client'] !== 'boolean') throw coordError('invalid-argument', 'client must be a boolean');
}

export function checkSessionIdArgs(a: unknown, fop: string): asserts a is SessionIdArgs {
  if (!isObject(a)) throw coordError('invalid-argument', `${fop} takes an object`);
  checkSessionId(a['id'], 'id');
}

export function checkDeleteArgs(a: unknown): asserts a is DeleteArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'delete takes an object');
  checkSelector(a);
  checkOptionalBool(a, 'prevKv');
  // A range delete may span /_coordvol/ (etcd's "delete everything" works); evaluation skips the
  // reserved keys in it. Naming a reserved key alone is an error.
  if (a['key'] !== undefined) checkWritableKey(a['key']);
}

function checkCompare(c: unknown, i: number): asserts c is Compare {
  if (!isObject(c)) throw coordError('invalid-argument', `compare[${i}] must be an object`);
  checkKey(c['key'], `compare[${i}].key`);
  const target = c['target'];
  if (typeof target !== 'string' || !COMPARE_TARGETS.has(target)) {
    throw coordError('invalid-argument', `compare[${i}].target ${JSON.stringify(target)} is unknown (value, version, createRev, modRev, exists)`);
  }
  const op = c['op'];
  if (typeof op !== 'string' || !COMPARE_OPS.has(op)) throw coordError('invalid-argument', `compare[${i}].op ${JSON.stringify(op)} is unknown (=, !=, <, >)`);
  const v = c['value'];
  if (target === 'value') checkValue(v);
  else if (target === 'exists') {
    if (typeof v !== 'boolean') throw coordError('invalid-argument', `compare[${i}].value must be a boolean for exists`);
    if (op !== '=' && op !== '!=') throw coordError('invalid-argument', `compare[${i}]: exists compares with = or !=`);
  } else if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw coordError('invalid-argument', `compare[${i}].value must be a non-negative integer for ${target}`);
  }
}

function checkTxnOp(o: unknown, where: string): asserts o is TxnOp {
  if (!isObject(o)) throw coordError('invalid-argument', `${where} must be an object`);
  switch (o['op']) {
    case 'put':
      return checkPutArgs(o);
    case 'delete':
      return checkDeleteArgs(o);
    case 'get':
      return checkKey(o['key'], `${where}.key`);
    case 'range':
      return checkRangeQuery(o);
    default:
      throw coordError('invalid-argument', `${where}.op ${JSON.stringify(o['op'])} is unknown (put, delete, get, range)`);
  }
}

function txnOpBytes(o: TxnOp): number {
  if (o.op === 'put') return Buffer.byteLength(o.key) + o.value.byteLength;
  return keyBytesMax / 16;
}

export function checkTxnArgs(a: unknown): asserts a is TxnArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'txn takes an object');
  for (const part of ['compare', 'success', 'failure'] as const) {
    if (a[part] !== undefined && !Array.isArray(a[part])) throw coordError('invalid-argument', `txn ${part} must be a list`);
  }
  const compare = (a['compare'] ?? []) as unknown[];
  const success = (a['success'] ?? []) as unknown[];
  const failure = (a['failure'] ?? []) as unknown[];
  if (compare.length + success.length + failure.length > txnOpsMax) throw coordError('too-large', `a txn holds at most ${txnOpsMax} compares and ops`);
  compare.forEach((c, i) => checkCompare(c, i));
  let bytes = 0;
  for (const [name, ops] of [['success', success], ['failure', failure]] as const) {
    ops.forEach((o, i) => checkTxnOp(o, `${name}[${i}]`));
    for (const o of ops as TxnOp[]) bytes += txnOpBytes(o);
    checkNoDuplicateWrites(ops as TxnOp[], name);
  }
  if (bytes > txnBytesMax) throw coordError('too-large', `txn is ${bytes} bytes, over the ${txnBytesMax}-byte limit`);
}

/** As in etcd: a key is written at most once per branch, so effects at one rev are unambiguous. */
function checkNoDuplicateWrites(ops: readonly TxnOp[], branch: string): void {
  const puts = new Set<string>();
  const dels: KeyRange[] = [];
  for (const o of ops) {
    if (o.op === 'put') {
      // Sequential puts of one base key make distinct keys (each takes the next counter value).
      if (puts.has(o.key) && !o.sequential) throw coordError('invalid-argument', `txn ${branch} puts ${JSON.stringify(o.key)} twice`);
      puts.add(o.key);
    } else if (o.op === 'delete') dels.push(selectorRange(o));
  }
  for (const k of puts) {
    for (const r of dels) {
      if (compareKeys(k, r.start) >= 0 && (r.end === undefined || compareKeys(k, r.end) < 0)) {
        throw coordError('invalid-argument', `txn ${branch} both puts and deletes ${JSON.stringify(k)}`);
      }
    }
  }
}

/** A membership change (DESIGN §4.7): one brick (host:path) to add as a learner, promote or remove, or a quorum-count. */
export function checkConfigChangeArgs(a: unknown): asserts a is ConfigChange {
  if (!isObject(a)) throw coordError('invalid-argument', 'configChange takes an object');
  const op = a['op'];
  if (typeof op !== 'string' || !(CONFIG_OPS as readonly string[]).includes(op)) throw coordError('invalid-argument', `configChange op must be one of ${CONFIG_OPS.join(', ')}`);
  if (op === 'quorum-count') {
    const n = a['count'];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw coordError('invalid-argument', 'configChange quorum-count must be a positive integer');
    return;
  }
  const brick = a['brick'];
  if (typeof brick !== 'string' || brick.length === 0 || brick.length > 1024 || /\s/.test(brick)) {
    throw coordError('invalid-argument', `configChange ${op} names one brick (host:path, no spaces, at most 1,024 characters), not ${JSON.stringify(brick)}`);
  }
  const master = a['master'];
  if (master === undefined) return;
  if (op !== 'add-learner') throw coordError('invalid-argument', `configChange ${op} takes no master address (only add-learner does)`);
  if (typeof master !== 'string' || !/^[^\s]{1,1024}:\d{1,5}$/.test(master)) {
    throw coordError('invalid-argument', `configChange add-learner master must be host:port, not ${JSON.stringify(master)}`);
  }
}

export function checkCompactArgs(a: unknown): asserts a is CompactArgs {
  if (!isObject(a)) throw coordError('invalid-argument', 'compact takes an object');
  const rev = a['rev'];
  if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 1) throw coordError('invalid-argument', 'compact rev must be a positive integer');
}

export type { ReadOptions };
