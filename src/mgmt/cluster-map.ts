// The cluster map (DESIGN §8): who is in the pool, and who is running, read from the store.
//
//   /cluster/peers/<uuid>  persistent, JSON PeerRecord: written by `peer probe` for a plain peer,
//                          by a master itself at its first registration (liveness.ts)
//   /cluster/alive/<uuid>  ephemeral, JSON AliveRecord: kept by every running daemon under a
//                          session of its own (liveness.ts); it vanishes when the session ends
//
// A peer is Connected iff its alive key exists. Both prefixes are read at one rev, so a view
// never mixes two moments. Records are checked where they are written (putPeer, keepAlive) and
// where they are read: a malformed record is reported as skipped, never thrown at the reader —
// anyone may write under /cluster/ with `kv put`.
import { assert } from '../common/assert.js';
import { coordError, isCoordError } from '../common/errors.js';
import type { Rev } from '../common/ids.js';
import { prefixEnd } from '../common/keys.js';
import type { Volume } from '../client/volume.js';
import type { KeyValue } from '../../translators/fops.js';
import { parseAddress } from '../wire/address.js';
import { isUuid } from './daemon-uuid.js';
import { parseJsonValue, type SkippedRecord } from './json-record.js';

export const PEERS_PREFIX = '/cluster/peers/';
export const ALIVE_PREFIX = '/cluster/alive/';

export type PeerRole = 'master' | 'peer';
export type PeerState = 'Connected' | 'Disconnected';

export interface PeerRecord {
  readonly uuid: string;
  readonly hostname: string;
  /** host:port of its protocol listener. */
  readonly address: string;
  readonly role: PeerRole;
  /** host:path of its brick (masters). */
  readonly brick?: string;
  /** ISO time. */
  readonly probedAt: string;
}

export interface AliveRecord {
  readonly uuid: string;
  /** host:port of its protocol listener. */
  readonly address: string;
  readonly pid: number;
  /** ISO time the daemon started. */
  readonly startedAt: string;
}

export type PeerView = PeerRecord & {
  readonly state: PeerState;
  /** The alive record, when the peer is Connected and its record decodes. */
  readonly alive?: AliveRecord;
};

/** A key under /cluster/peers/ or /cluster/alive/ whose value is not a valid record. */
export type { SkippedRecord };

export interface ClusterMap {
  /** The rev both prefixes were read at. */
  readonly rev: Rev;
  /** Every peer record, sorted by address. */
  readonly peers: readonly PeerView[];
  /**
   * Running daemons with no peer record: not in the pool (not probed yet, or detached while still
   * running). Not listed as peers — their role and hostname are unknown — but shown apart.
   */
  readonly unprobed: readonly AliveRecord[];
  readonly skipped: readonly SkippedRecord[];
}

export const peerKey = (uuid: string): string => PEERS_PREFIX + uuid;
export const aliveKey = (uuid: string): string => ALIVE_PREFIX + uuid;

const HOSTNAME_CHARS_MAX = 255;
const BRICK_CHARS_MAX = 4096;

type Fields = Record<string, unknown>;

/** Why `o` is not a PeerRecord for `uuid`, or undefined if it is one. */
export function peerRecordProblem(o: unknown, uuid?: string): string | undefined {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as Fields;
  if (!isUuid(r['uuid'])) return 'uuid is not a lowercase UUID';
  if (uuid !== undefined && r['uuid'] !== uuid) return `uuid ${String(r['uuid'])} does not match its key`;
  if (!isLine(r['hostname'], HOSTNAME_CHARS_MAX)) return `hostname is not one line of 1-${HOSTNAME_CHARS_MAX} characters`;
  if (!isAddress(r['address'])) return 'address is not host:port';
  if (r['role'] !== 'master' && r['role'] !== 'peer') return 'role is neither "master" nor "peer"';
  if (r['brick'] !== undefined && !isBrick(r['brick'])) return 'brick is not host:path';
  if (!isIsoTime(r['probedAt'])) return 'probedAt is not an ISO time';
  return undefined;
}

/** Why `o` is not an AliveRecord for `uuid`, or undefined if it is one. */
export function aliveRecordProblem(o: unknown, uuid?: string): string | undefined {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as Fields;
  if (!isUuid(r['uuid'])) return 'uuid is not a lowercase UUID';
  if (uuid !== undefined && r['uuid'] !== uuid) return `uuid ${String(r['uuid'])} does not match its key`;
  if (!isAddress(r['address'])) return 'address is not host:port';
  if (!Number.isSafeInteger(r['pid']) || (r['pid'] as number) <= 0) return 'pid is not a positive integer';
  if (!isIsoTime(r['startedAt'])) return 'startedAt is not an ISO time';
  return undefined;
}

function isAddress(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  try {
    parseAddress(s, 'address');
    return true;
  } catch {
    return false;
  }
}

/** One line of text (it goes into a table cell): non-empty, no control characters. */
function isLine(s: unknown, charsMax: number): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= charsMax && !/[\u0000-\u001f\u007f]/.test(s);
}

/** host:path, loosely: the volume's config is what names bricks; this keeps junk out of the table. */
function isBrick(s: unknown): s is string {
  return isLine(s, BRICK_CHARS_MAX) && /^[^:]+:.+$/.test(s);
}

function isIsoTime(s: unknown): s is string {
  return typeof s === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(s) && Number.isFinite(Date.parse(s));
}

/** Only the record's own fields, in a fixed order (a record read back never carries strays). */
export function peerOf(r: PeerRecord): PeerRecord {
  return { uuid: r.uuid, hostname: r.hostname, address: r.address, role: r.role, ...(r.brick !== undefined ? { brick: r.brick } : {}), probedAt: r.probedAt };
}

export function aliveOf(r: AliveRecord): AliveRecord {
  return { uuid: r.uuid, address: r.address, pid: r.pid, startedAt: r.startedAt };
}

/** Decodes a stored record: the record, or the reason it is not one. */
function decode<T>(kv: KeyValue, prefix: string, problem: (o: unknown, uuid: string) => string | undefined): { ok: T } | { bad: string } {
  const uuid = kv.key.slice(prefix.length);
  if (!isUuid(uuid)) return { bad: 'the key does not end in a lowercase UUID' };
  const parsed = parseJsonValue(kv.value);
  if ('bad' in parsed) return parsed;
  const why = problem(parsed.ok, uuid);
  return why === undefined ? { ok: parsed.ok as T } : { bad: why };
}

/** Writes (or overwrites) a peer record. */
export async function putPeer(volume: Volume, rec: PeerRecord): Promise<Rev> {
  const why = peerRecordProblem(rec);
  if (why !== undefined) throw coordError('invalid-argument', `peer record: ${why}`, { uuid: rec.uuid });
  return (await volume.put(peerKey(rec.uuid), JSON.stringify(peerOf(rec)))).rev;
}

/** Deletes a peer record; false if there was none. Its alive key, if any, is left to its session. */
export async function deletePeer(volume: Volume, uuid: string): Promise<boolean> {
  if (!isUuid(uuid)) throw coordError('invalid-argument', `${JSON.stringify(uuid)} is not a lowercase UUID`);
  return (await volume.delete(peerKey(uuid))).deleted > 0;
}

/** A peer's record, or undefined. A record that does not decode is `store-invalid` (naming its key). */
export async function getPeer(volume: Volume, uuid: string): Promise<PeerRecord | undefined> {
  if (!isUuid(uuid)) throw coordError('invalid-argument', `${JSON.stringify(uuid)} is not a lowercase UUID`);
  const { kv } = await volume.get(peerKey(uuid));
  if (kv === undefined) return undefined;
  const d = decode<PeerRecord>(kv, PEERS_PREFIX, peerRecordProblem);
  if ('bad' in d) throw coordError('store-invalid', `${kv.key} is not a peer record: ${d.bad}`, { key: kv.key });
  return peerOf(d.ok);
}

/** The peer whose protocol listener is `address` (malformed records are passed over). */
export async function findPeerByAddress(volume: Volume, address: string): Promise<PeerRecord | undefined> {
  const { peers } = await readClusterMap(volume);
  const p = peers.find((v) => v.address === address);
  return p === undefined ? undefined : peerOf(p);
}

/** Every peer record with its state, sorted by address (see ClusterMap for what is left out). */
export async function listPeers(volume: Volume): Promise<PeerView[]> {
  return [...(await readClusterMap(volume)).peers];
}

/** Reads a whole prefix at one rev (the first call's, unless `rev` is given), page by page. */
async function readPrefix(volume: Volume, prefix: string, rev?: Rev): Promise<{ rev: Rev; kvs: KeyValue[] }> {
  const end = prefixEnd(prefix);
  assert(end !== undefined, `prefix ${prefix} has an end`);
  const first = await volume.range({ prefix, ...(rev !== undefined ? { rev } : {}) });
  const kvs = [...first.kvs];
  let more = first.more;
  while (more) {
    const last = kvs.at(-1);
    if (last === undefined) break;
    // The smallest key above the last one (keys never contain NUL).
    const r = await volume.range({ start: last.key + '\u0001', end, rev: first.rev });
    kvs.push(...r.kvs);
    more = r.more;
  }
  return { rev: first.rev, kvs };
}

/** How often a read is tried again when a compaction overtakes it between its two prefixes. */
const COMPACTED_RETRIES_MAX = 3;

/** The whole map at one rev: the peers (linearizable read), then the alive keys at that rev. */
export async function readClusterMap(volume: Volume): Promise<ClusterMap> {
  for (let attempt = 0; ; attempt++) {
    const peers = await readPrefix(volume, PEERS_PREFIX);
    try {
      const alive = await readPrefix(volume, ALIVE_PREFIX, peers.rev);
      return assemble(peers.rev, peers.kvs, alive.kvs);
    } catch (e) {
      // The volume compacted past the peers' rev between the two reads: read both again.
      if (!isCoordError(e) || e.code !== 'compacted' || attempt >= COMPACTED_RETRIES_MAX) throw e;
    }
  }
}

function assemble(rev: Rev, peerKvs: readonly KeyValue[], aliveKvs: readonly KeyValue[]): ClusterMap {
  const skipped: SkippedRecord[] = [];
  const alive = new Map<string, AliveRecord | undefined>(); // uuid → record (undefined: malformed value)
  for (const kv of aliveKvs) {
    const d = decode<AliveRecord>(kv, ALIVE_PREFIX, aliveRecordProblem);
    if ('ok' in d) alive.set(d.ok.uuid, aliveOf(d.ok));
    else {
      skipped.push({ key: kv.key, reason: d.bad });
      // The key exists, so its daemon's session lives: the peer still counts as Connected.
      const uuid = kv.key.slice(ALIVE_PREFIX.length);
      if (isUuid(uuid)) alive.set(uuid, undefined);
    }
  }
  const peers: PeerView[] = [];
  const known = new Set<string>();
  for (const kv of peerKvs) {
    const d = decode<PeerRecord>(kv, PEERS_PREFIX, peerRecordProblem);
    if ('bad' in d) {
      skipped.push({ key: kv.key, reason: d.bad });
      continue;
    }
    const rec = peerOf(d.ok);
    known.add(rec.uuid);
    const a = alive.get(rec.uuid);
    peers.push({ ...rec, state: alive.has(rec.uuid) ? 'Connected' : 'Disconnected', ...(a !== undefined ? { alive: a } : {}) });
  }
  const unprobed = [...alive.entries()].flatMap(([uuid, a]) => (a !== undefined && !known.has(uuid) ? [a] : []));
  peers.sort((x, y) => byAddress(x, y) || cmp(x.uuid, y.uuid));
  unprobed.sort((x, y) => byAddress(x, y) || cmp(x.uuid, y.uuid));
  return { rev, peers, unprobed, skipped };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** By host, then by port as a number (127.0.0.1:7420 before 127.0.0.1:10000). */
function byAddress(x: { readonly address: string }, y: { readonly address: string }): number {
  const a = parseAddress(x.address, 'address');
  const b = parseAddress(y.address, 'address');
  return cmp(a.host, b.host) || a.port - b.port;
}
