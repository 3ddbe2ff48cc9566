// Volume info of the storage cluster (DESIGN §8): the GlusterFS-style volumes the cluster serves,
// kept in the store, one record per volume, every command one txn with compares.
//
//   /volumes/<name>/info             JSON VolumeInfo: type, replica count, bricks, status, options
//   /volumes/_bricks/<encoded brick>  the name of the volume that has the brick (an index)
//
// One key per volume makes every command's compare a single one: `create` compares the info
// key's createRev and each brick key's createRev with 0 (no duplicate name, no brick in two
// volumes), every other command compares the info key's modRev with the one it read, so two
// racing commands never both act on the same state. A lost compare reads the winner's record in
// the txn's failure branch (at the same rev): `create` reports why (`already-exists`,
// `brick-in-use`); the others check their transition again against the new record and try
// again, up to UPDATE_ATTEMPTS_MAX times (`conflict` after that).
//
// Records are checked where they are written (newVolumeInfo, the transitions) and where they are
// read (decodeVolumeInfo): anyone may write under /volumes/ with `kv put`, so a listing reports a
// record that does not decode as skipped and never throws it at the reader.
import { randomUUID } from 'node:crypto';
import { assert } from '../common/assert.js';
import { coordError } from '../common/errors.js';
import type { Rev } from '../common/ids.js';
import { keyBytesMax, txnOpsMax, valueBytesMax } from '../common/limits.js';
import type { Volume } from '../client/volume.js';
import { readAll } from '../client/watch.js';
import { op } from '../client/txn-builder.js';
import type { Compare, KeyValue, TxnOp, TxnResult } from '../../translators/fops.js';
import { isUuid } from './daemon-uuid.js';
import { parseJsonValue, type SkippedRecord } from './json-record.js';

export const VOLUMES_PREFIX = '/volumes/';
/** The brick index. `_` starts no volume name, so it never clashes with one. */
export const BRICKS_PREFIX = '/volumes/_bricks/';

export type VolumeType = 'Distribute' | 'Replicate' | 'Distributed-Replicate';
/** A deleted volume has no record: GlusterFS forgets deleted volumes. */
export type VolumeInfoStatus = 'Created' | 'Started' | 'Stopped';

export interface VolumeInfo {
  readonly name: string;
  /** Made at create ("Volume ID"): a volume deleted and created again under its name is another one. */
  readonly uuid: string;
  readonly type: VolumeType;
  /** Bricks per replica set; 1 for Distribute. */
  readonly replicaCount: number;
  /** host:/path, normalized, in the order given (replica sets are consecutive runs of replicaCount). */
  readonly bricks: readonly string[];
  readonly status: VolumeInfoStatus;
  /** Options reconfigured with `volume set`, sorted by key. */
  readonly options: Readonly<Record<string, string>>;
  /** 1 at create, one more with every change. */
  readonly version: number;
  /** ISO times. */
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface CreateVolumeArgs {
  readonly name: string;
  /** Bricks per replica set (≥ 2); absent: a Distribute volume. */
  readonly replica?: number;
  readonly bricks: readonly string[];
}

/** What a command did: the rev it wrote at and the record after it (for delete: the record it removed). */
export interface VolumeChange {
  readonly rev: Rev;
  readonly info: VolumeInfo;
}

/** A key under /volumes/ named like an info key whose value is not a valid record. */
export type SkippedVolume = SkippedRecord;

export interface VolumeList {
  /** The rev the whole prefix was read at. */
  readonly rev: Rev;
  /** Sorted by name. */
  readonly volumes: readonly VolumeInfo[];
  readonly skipped: readonly SkippedVolume[];
}

/** Clock and ids, for tests (STYLE §6). */
export interface VolumeOpsOptions {
  readonly now?: () => Date;
  readonly uuid?: () => string;
}

const NAME_CHARS_MAX = 64;
/** host:/path, in UTF-8 bytes: its index key, percent-encoded, stays within a key. */
export const BRICK_BYTES_MAX = 1024;
export const BRICKS_MAX = 256;
export const REPLICA_MAX = 16;
export const OPTIONS_MAX = 64;
const OPTION_KEY_CHARS_MAX = 128;
export const OPTION_VALUE_BYTES_MAX = 4096;
/** How often a start, stop, set or delete checks its transition again after losing its compare. */
export const UPDATE_ATTEMPTS_MAX = 8;

// An encoded byte is at most 3 characters (%XX).
assert(BRICKS_PREFIX.length + 3 * BRICK_BYTES_MAX <= keyBytesMax, 'a brick index key fits in a key');
// create: 1 + n compares, 1 + n puts, 1 + n gets.
assert(3 * (BRICKS_MAX + 1) <= txnOpsMax, 'a create of BRICKS_MAX bricks fits in a txn');
// Bricks hold nothing JSON escapes; option values may hold `"` and `\` (2 bytes each), no
// control characters. 1 KiB for the other fields.
assert(BRICKS_MAX * (BRICK_BYTES_MAX + 3) + OPTIONS_MAX * (2 * (OPTION_KEY_CHARS_MAX + OPTION_VALUE_BYTES_MAX) + 6) + 1024 <= valueBytesMax, 'a full record fits in a value');
assert(REPLICA_MAX <= BRICKS_MAX, 'a replica set fits in a volume');

/** GlusterFS's volume names: letters, digits, `-`, `_`, not starting with `-` or `_`; `all` means every volume. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
/** RFC 1123 host names (IPv4 addresses among them). */
const HOST_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** Dotted, lowercase, like `performance.cache-size` or `cluster.quorum-type`. */
const OPTION_KEY_RE = /^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)+$/;
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const INFO_KEY_RE = /^\/volumes\/([^/]+)\/info$/;
const TYPES: readonly VolumeType[] = ['Distribute', 'Replicate', 'Distributed-Replicate'];
const STATUSES: readonly VolumeInfoStatus[] = ['Created', 'Started', 'Stopped'];

export const infoKey = (name: string): string => `${VOLUMES_PREFIX}${name}/info`;
export const brickKey = (brick: string): string => BRICKS_PREFIX + encodeURIComponent(brick);

/** A key shaped like an info key (its name may still be invalid); never a brick index key. */
export const isInfoKey = (key: string): boolean => INFO_KEY_RE.test(key) && !key.startsWith(BRICKS_PREFIX);

/** The volume an info key is of, or undefined for any other key (the brick index among them). */
export function volumeNameOfKey(key: string): string | undefined {
  const name = INFO_KEY_RE.exec(key)?.[1];
  return name !== undefined && isVolumeName(name) ? name : undefined;
}

export function isVolumeName(s: unknown): s is string {
  return typeof s === 'string' && s.length <= NAME_CHARS_MAX && NAME_RE.test(s) && s !== 'all';
}

export function checkVolumeName(name: unknown): asserts name is string {
  if (isVolumeName(name)) return;
  const shown = JSON.stringify(name);
  if (name === 'all') throw coordError('invalid-argument', '"all" cannot be the name of a volume (`volume info all` lists every volume)');
  throw coordError('invalid-argument', `volume name ${shown} must be 1-${NAME_CHARS_MAX} letters, digits, - or _, starting with a letter or digit`);
}

/** Why `s` is not a brick, or undefined; `normal` is its normalized form (host lowercased, `//` and a trailing `/` dropped). */
function brickProblem(s: unknown): { problem: string } | { normal: string } {
  if (typeof s !== 'string') return { problem: 'a brick is text, host:/absolute/path' };
  const shown = JSON.stringify(s);
  if (Buffer.byteLength(s, 'utf8') > BRICK_BYTES_MAX) return { problem: `brick ${shown.slice(0, 40)}… is over ${BRICK_BYTES_MAX} bytes` };
  if (CONTROL_RE.test(s) || /[\s"\\]/.test(s)) return { problem: `brick ${shown} contains a space, quote, backslash or control character` };
  const colon = s.indexOf(':');
  if (colon < 0) return { problem: `brick ${shown} is not host:/absolute/path` };
  const host = s.slice(0, colon).toLowerCase();
  const path = s.slice(colon + 1);
  if (host.length > 253 || !HOST_RE.test(host)) return { problem: `brick ${shown}: ${JSON.stringify(host)} is not a host name or IPv4 address` };
  if (!path.startsWith('/')) return { problem: `brick ${shown}: the path must be absolute (host:/absolute/path)` };
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0) return { problem: `brick ${shown}: a brick cannot be the root directory` };
  if (parts.some((p) => p === '.' || p === '..')) return { problem: `brick ${shown}: the path must not contain . or ..` };
  return { normal: `${host}:/${parts.join('/')}` };
}

/** A brick in its normalized form; `invalid-argument` if it is not host:/absolute/path. */
export function parseBrick(s: string): string {
  const b = brickProblem(s);
  if ('problem' in b) throw coordError('invalid-argument', b.problem);
  return b.normal;
}

function optionProblem(key: unknown, value: unknown): string | undefined {
  if (typeof key !== 'string' || key.length > OPTION_KEY_CHARS_MAX || !OPTION_KEY_RE.test(key)) {
    return `option ${JSON.stringify(key)} must be dotted lowercase words, like performance.cache-size (at most ${OPTION_KEY_CHARS_MAX} characters)`;
  }
  if (typeof value !== 'string' || value === '') return `option ${key} needs a non-empty value`;
  if (Buffer.byteLength(value, 'utf8') > OPTION_VALUE_BYTES_MAX) return `option ${key}'s value is over ${OPTION_VALUE_BYTES_MAX} bytes`;
  if (CONTROL_RE.test(value)) return `option ${key}'s value must be one line, without control characters`;
  return undefined;
}

/** The type a replica count and brick count make (both already checked). */
export function volumeType(replicaCount: number, brickCount: number): VolumeType {
  if (replicaCount === 1) return 'Distribute';
  return brickCount === replicaCount ? 'Replicate' : 'Distributed-Replicate';
}

/** Checks a create's arguments: the bricks normalized, the replica count and the type. Nothing is read or written. */
export function checkCreateArgs(a: CreateVolumeArgs): { name: string; replicaCount: number; type: VolumeType; bricks: string[] } {
  checkVolumeName(a.name);
  if (!Array.isArray(a.bricks) || a.bricks.length === 0) throw coordError('invalid-argument', 'a volume needs at least one brick (host:/absolute/path)');
  if (a.bricks.length > BRICKS_MAX) throw coordError('invalid-argument', `a volume has at most ${BRICKS_MAX} bricks, not ${a.bricks.length}`);
  const bricks = a.bricks.map(parseBrick);
  const seen = new Set<string>();
  for (const b of bricks) {
    if (seen.has(b)) throw coordError('invalid-argument', `brick ${b} is given twice`, { brick: b });
    seen.add(b);
  }
  let replicaCount = 1;
  if (a.replica !== undefined) {
    if (!Number.isSafeInteger(a.replica) || a.replica < 2 || a.replica > REPLICA_MAX) {
      throw coordError('invalid-argument', `replica count must be a whole number from 2 to ${REPLICA_MAX}, not ${String(a.replica)}`);
    }
    replicaCount = a.replica;
    if (bricks.length % replicaCount !== 0) {
      throw coordError('invalid-argument', `number of bricks (${bricks.length}) is not a multiple of replica count (${replicaCount})`, { bricks: bricks.length, replica: replicaCount });
    }
  }
  return { name: a.name, replicaCount, type: volumeType(replicaCount, bricks.length), bricks };
}

/** The record a create writes (checked): status Created, no options, version 1. */
export function newVolumeInfo(a: CreateVolumeArgs, opts: VolumeOpsOptions = {}): VolumeInfo {
  const c = checkCreateArgs(a);
  const at = (opts.now ?? (() => new Date()))().toISOString();
  const info: VolumeInfo = { ...c, uuid: (opts.uuid ?? randomUUID)(), status: 'Created', options: {}, version: 1, createdAt: at, updatedAt: at };
  checkRecord(info);
  return info;
}

type Fields = Record<string, unknown>;

/** Why `o` is not a VolumeInfo (of volume `name`, if given), or undefined if it is one. */
export function volumeInfoProblem(o: unknown, name?: string): string | undefined {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as Fields;
  if (!isVolumeName(r['name'])) return 'name is not a volume name';
  if (name !== undefined && r['name'] !== name) return `name ${String(r['name'])} does not match its key`;
  if (!isUuid(r['uuid'])) return 'uuid is not a lowercase UUID';
  if (!TYPES.includes(r['type'] as VolumeType)) return `type is not one of ${TYPES.join(', ')}`;
  const replica = r['replicaCount'];
  if (!Number.isSafeInteger(replica) || (replica as number) < 1 || (replica as number) > REPLICA_MAX) return 'replicaCount is not a whole number from 1 to ' + REPLICA_MAX;
  const bricks = r['bricks'];
  if (!Array.isArray(bricks) || bricks.length === 0 || bricks.length > BRICKS_MAX) return `bricks is not a list of 1-${BRICKS_MAX} bricks`;
  for (const b of bricks) {
    const p = brickProblem(b);
    if ('problem' in p) return p.problem;
    if (p.normal !== b) return `brick ${String(b)} is not in its normal form ${p.normal}`;
  }
  if (new Set(bricks).size !== bricks.length) return 'a brick is listed twice';
  if (bricks.length % (replica as number) !== 0) return 'the brick count is not a multiple of replicaCount';
  if (r['type'] !== volumeType(replica as number, bricks.length)) return `type ${String(r['type'])} does not match replicaCount and bricks`;
  if (!STATUSES.includes(r['status'] as VolumeInfoStatus)) return `status is not one of ${STATUSES.join(', ')}`;
  const options = r['options'];
  if (typeof options !== 'object' || options === null || Array.isArray(options)) return 'options is not an object';
  const entries = Object.entries(options);
  if (entries.length > OPTIONS_MAX) return `more than ${OPTIONS_MAX} options`;
  for (const [k, v] of entries) {
    const why = optionProblem(k, v);
    if (why !== undefined) return why;
  }
  if (!Number.isSafeInteger(r['version']) || (r['version'] as number) < 1) return 'version is not a positive integer';
  if (!isIsoTime(r['createdAt'])) return 'createdAt is not an ISO time';
  if (!isIsoTime(r['updatedAt'])) return 'updatedAt is not an ISO time';
  return undefined;
}

function isIsoTime(s: unknown): s is string {
  return typeof s === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(s) && Number.isFinite(Date.parse(s));
}

/** What this module writes must pass what it checks on read: a failure is a bug here. */
function checkRecord(info: VolumeInfo): void {
  const why = volumeInfoProblem(info, info.name);
  assert(why === undefined, `a volume record written is valid: ${why ?? ''}`);
}

/** Only the record's own fields, in a fixed order, options sorted by key. */
export function volumeInfoOf(r: VolumeInfo): VolumeInfo {
  const options: Record<string, string> = {};
  for (const k of Object.keys(r.options).sort()) options[k] = r.options[k] as string;
  return {
    name: r.name, uuid: r.uuid, type: r.type, replicaCount: r.replicaCount, bricks: [...r.bricks], status: r.status, options,
    version: r.version, createdAt: r.createdAt, updatedAt: r.updatedAt,
  };
}


/** Decodes a stored info key: the record, or the reason it is not one. */
export function decodeVolumeInfo(kv: KeyValue): { ok: VolumeInfo } | { bad: string } {
  const name = INFO_KEY_RE.exec(kv.key)?.[1];
  if (name === undefined || !isVolumeName(name)) return { bad: 'the key is not /volumes/<volume name>/info' };
  const parsed = parseJsonValue(kv.value);
  if ('bad' in parsed) return parsed;
  const why = volumeInfoProblem(parsed.ok, name);
  return why === undefined ? { ok: volumeInfoOf(parsed.ok as VolumeInfo) } : { bad: why };
}

function decodeOrThrow(kv: KeyValue): VolumeInfo {
  const d = decodeVolumeInfo(kv);
  if ('bad' in d) throw coordError('store-invalid', `${kv.key} is not a volume record: ${d.bad}`, { key: kv.key });
  return d.ok;
}

const encode = (info: VolumeInfo): string => JSON.stringify(volumeInfoOf(info));

const notFound = (name: string): Error => coordError('not-found', `volume ${name} does not exist`, { volume: name });

/** The kv a txn's failure branch read with `op.get` at index `i`. */
function failureGet(r: TxnResult, i: number): KeyValue | undefined {
  const g = r.results[i];
  assert(g?.op === 'get', `failure result ${i} is the get the txn asked for`);
  return g.kv;
}

/**
 * Creates a volume, status Created: one txn that writes the record and the brick index if the
 * name and every brick are free. `already-exists` / `brick-in-use` otherwise (nothing written);
 * `invalid-argument` for a bad name, brick, replica count or brick count (nothing sent).
 */
export async function createVolume(volume: Volume, args: CreateVolumeArgs, opts: VolumeOpsOptions = {}): Promise<VolumeChange> {
  const info = newVolumeInfo(args, opts);
  const key = infoKey(info.name);
  const keys = [key, ...info.bricks.map(brickKey)];
  const r = await volume.txn({
    compare: keys.map((k): Compare => ({ key: k, target: 'createRev', op: '=', value: 0 })),
    success: [op.put(key, encode(info)), ...info.bricks.map((b) => op.put(brickKey(b), info.name))],
    failure: keys.map((k) => op.get(k)),
  });
  if (r.succeeded) return { rev: r.rev, info };
  if (failureGet(r, 0) !== undefined) throw coordError('already-exists', `volume ${info.name} already exists`, { volume: info.name });
  for (const [i, b] of info.bricks.entries()) {
    const kv = failureGet(r, i + 1);
    if (kv === undefined) continue;
    const owner = kv.value === undefined ? '?' : Buffer.from(kv.value).toString('utf8');
    throw coordError('brick-in-use', `brick ${b} is already part of volume ${owner}`, { brick: b, volume: owner });
  }
  assert(false, 'a create txn that failed found its name or a brick taken');
}

/** A change to one volume's record: the next record, or `delete` (the record and its brick index go). */
type Transition = (cur: VolumeInfo) => VolumeInfo | 'delete';

/**
 * Reads the record, applies `t`, and writes the result if the record is still the one read
 * (modRev compare). A lost compare checks `t` again against the winner's record.
 */
async function update(volume: Volume, name: string, t: Transition, opts: VolumeOpsOptions): Promise<VolumeChange> {
  checkVolumeName(name);
  const key = infoKey(name);
  let kv = (await volume.get(key)).kv;
  for (let attempt = 1; ; attempt++) {
    if (kv === undefined) throw notFound(name);
    const cur = decodeOrThrow(kv);
    const { success, after } = plan(cur, t(cur), opts);
    const r = await volume.txn({ compare: [{ key, target: 'modRev', op: '=', value: kv.modRev }], success, failure: [op.get(key)] });
    if (r.succeeded) return { rev: r.rev, info: after };
    if (attempt >= UPDATE_ATTEMPTS_MAX) {
      throw coordError('conflict', `volume ${name} changed under this command ${attempt} times: run it again`, { volume: name, attempts: attempt });
    }
    kv = failureGet(r, 0);
  }
}

/** The writes that take `cur` to `next`, and the record to answer with (for a delete: the one removed). */
function plan(cur: VolumeInfo, next: VolumeInfo | 'delete', opts: VolumeOpsOptions): { success: TxnOp[]; after: VolumeInfo } {
  if (next === 'delete') {
    // The whole /volumes/<name>/ subtree: GlusterFS forgets a deleted volume.
    return { success: [op.delete({ prefix: `${VOLUMES_PREFIX}${cur.name}/` }), ...cur.bricks.map((b) => op.delete(brickKey(b)))], after: cur };
  }
  assert(next.name === cur.name && next.uuid === cur.uuid, 'a transition keeps the volume\'s name and uuid');
  const at = (opts.now ?? (() => new Date()))().toISOString();
  const after = volumeInfoOf({ ...next, version: cur.version + 1, updatedAt: at });
  checkRecord(after);
  return { success: [op.put(infoKey(cur.name), encode(after))], after };
}

const illegal = (cur: VolumeInfo, message: string): Error =>
  coordError('illegal-transition', `volume ${cur.name} ${message}`, { volume: cur.name, status: cur.status });

/** Created or Stopped → Started. */
export async function startVolume(volume: Volume, name: string, opts: VolumeOpsOptions = {}): Promise<VolumeChange> {
  return update(volume, name, (cur) => {
    if (cur.status === 'Started') throw illegal(cur, 'is already started');
    return { ...cur, status: 'Started' };
  }, opts);
}

/** Started → Stopped. */
export async function stopVolume(volume: Volume, name: string, opts: VolumeOpsOptions = {}): Promise<VolumeChange> {
  return update(volume, name, (cur) => {
    if (cur.status !== 'Started') throw illegal(cur, `is not started (status ${cur.status})`);
    return { ...cur, status: 'Stopped' };
  }, opts);
}

/** Created or Stopped → deleted: the record and its brick index go; the answer holds the record removed. */
export async function deleteVolume(volume: Volume, name: string, opts: VolumeOpsOptions = {}): Promise<VolumeChange> {
  return update(volume, name, (cur) => {
    if (cur.status === 'Started') throw illegal(cur, 'is started: stop it first');
    return 'delete';
  }, opts);
}

/** Sets one option (any status); a new key counts against OPTIONS_MAX. */
export async function setVolumeOption(volume: Volume, name: string, key: string, value: string, opts: VolumeOpsOptions = {}): Promise<VolumeChange> {
  const why = optionProblem(key, value);
  if (why !== undefined) throw coordError('invalid-argument', why);
  return update(volume, name, (cur) => {
    if (!(key in cur.options) && Object.keys(cur.options).length >= OPTIONS_MAX) {
      throw coordError('invalid-argument', `volume ${cur.name} has ${OPTIONS_MAX} options, the most it may have`, { volume: cur.name });
    }
    return { ...cur, options: { ...cur.options, [key]: value } };
  }, opts);
}

/** One volume's record and the rev it was read at; `not-found` if there is none, `store-invalid` if it does not decode. */
export async function getVolume(volume: Volume, name: string): Promise<VolumeChange> {
  checkVolumeName(name);
  const { rev, kv } = await volume.get(infoKey(name));
  if (kv === undefined) throw notFound(name);
  return { rev, info: decodeOrThrow(kv) };
}

/** Every volume at one rev, sorted by name; records that do not decode are reported, not thrown. */
export async function listVolumes(volume: Pick<Volume, 'range'>): Promise<VolumeList> {
  const { rev, kvs } = await readAll(volume, { prefix: VOLUMES_PREFIX });
  return { rev, ...volumesOf(kvs) };
}

/** The records among the keys of /volumes/ (the brick index and other keys are passed over). */
export function volumesOf(kvs: readonly KeyValue[]): { volumes: VolumeInfo[]; skipped: SkippedVolume[] } {
  const volumes: VolumeInfo[] = [];
  const skipped: SkippedVolume[] = [];
  for (const kv of kvs) {
    if (!isInfoKey(kv.key)) continue;
    const d = decodeVolumeInfo(kv);
    if ('ok' in d) volumes.push(d.ok);
    else skipped.push({ key: kv.key, reason: d.bad });
  }
  volumes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { volumes, skipped };
}
