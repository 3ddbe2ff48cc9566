// The snapshotChunk brick fop off the wire (DESIGN §4.8, §7), checked like the other brick fops
// (replication/validate-brick.ts): field by field, each refusal an `invalid-argument` naming the
// field, then copied in exact shape so nothing a peer slipped in beside a field is stored. Also
// the decoding of its result as protocol/client receives it. A chunk's size is bounded where it is
// made (store/snapshot.ts, limits.ts: one chunk fits one frame); here a chunk over those bounds is
// refused rather than buffered.
import type { Epoch, Rev, VolumeId } from '../../src/common/ids.js';
import { keyByteLength } from '../../src/common/keys.js';
import { snapshotChunkBytesMax, snapshotChunkVersionsMax } from '../../src/common/limits.js';
import { isPlainObject } from '../../src/common/plain.js';
import type { StoredVersion } from '../../store/records.js';
import type { SnapshotChunk, SnapshotVersion } from '../../store/snapshot.js';
import type { VolumeConfig } from '../../store/types.js';
import type { SnapshotChunkFopArgs, SnapshotChunkFopResult } from '../fops.js';
import { bad, checkConfig, copyConfig, key, object, posInt, str, uint, VOLUME_NAME_CHARS_MAX, wrong, type Obj } from '../../replication/wire-fields.js';

/** A transfer id: the carrier makes a UUID. */
const TRANSFER_CHARS_MAX = 128;
/** sender: a master's id (as validate-brick's ID_CHARS_MAX). */
const ID_CHARS_MAX = 256;
const FORMAT_CHARS_MAX = 64;
const VOLUME_ID_CHARS_MAX = 256;
const DIGEST_HEX = /^[0-9a-f]{64}$/;

function bytes(v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(field, 'must be bytes');
  return v;
}

/** The config in force at s, copied (learners only when present: see store/identity.ts). */
function config(v: unknown, field: string): VolumeConfig {
  checkConfig(v, field);
  return copyConfig(v as VolumeConfig);
}

/**
 * One version as the export writes it: a deletion `{ m, d: 1 }` or a live version
 * `{ v, c, m, n, s }`, its modRev m equal to the rev it is stored at (never the long-key `k`:
 * the version carries its key beside it).
 */
function version(x: unknown, field: string, s: number): { sv: SnapshotVersion; bytes: number } {
  const o = object(x, field);
  const k = key(o['key'], `${field}.key`);
  const rev = posInt(o['rev'], `${field}.rev`);
  if (rev > s) throw bad(`${field}.rev`, `is ${rev}, above the snapshot rev ${s}`);
  const v = object(o['v'], `${field}.v`);
  const m = uint(v['m'], `${field}.v.m`);
  if (m !== rev) throw bad(`${field}.v.m`, `is ${m}, not the version's rev ${rev}`);
  if (v['d'] !== undefined) {
    if (v['d'] !== 1) throw bad(`${field}.v.d`, 'must be 1 (a deletion) or absent');
    return { sv: { key: k, rev, v: { m, d: 1 } }, bytes: keyByteLength(k) };
  }
  const value = bytes(v['v'], `${field}.v.v`);
  const c = posInt(v['c'], `${field}.v.c`);
  if (c > m) throw bad(`${field}.v.c`, `is ${c}, above its modRev ${m}`);
  const stored: StoredVersion = { v: value, c, m, n: posInt(v['n'], `${field}.v.n`), s: uint(v['s'], `${field}.v.s`) };
  return { sv: { key: k, rev, v: stored }, bytes: keyByteLength(k) + value.byteLength };
}

function chunk(v: unknown, seq: number, s: number, revEpoch: number): SnapshotChunk {
  const o = object(v, 'chunk');
  const kind = o['kind'];
  // The header opens a stream and only it: seq 0 ⇔ header.
  if ((kind === 'header') !== (seq === 0)) throw bad('seq', `is ${seq}: a stream's chunk 0 is its header, and only chunk 0`);
  switch (kind) {
    case 'header': {
      const rev = posInt(o['rev'], 'chunk.rev');
      const epoch = uint(o['epoch'], 'chunk.epoch');
      const compactRev = uint(o['compactRev'], 'chunk.compactRev');
      if (rev !== s) throw bad('chunk.rev', `is ${rev}, not the rev ${s} the chunk names`);
      if (epoch !== revEpoch) throw bad('chunk.epoch', `is ${epoch}, not the revEpoch ${revEpoch} the chunk names`);
      if (compactRev > rev) throw bad('chunk.compactRev', `is ${compactRev}, above the snapshot rev ${rev}`);
      const sclock = o['sclock'];
      if (sclock !== undefined && (typeof sclock !== 'number' || !Number.isFinite(sclock) || sclock < 0)) throw bad('chunk.sclock', 'must be a finite number ≥ 0');
      return {
        ...(sclock === undefined ? {} : { sclock }),
        kind,
        format: str(o['format'], 'chunk.format', FORMAT_CHARS_MAX),
        volumeId: str(o['volumeId'], 'chunk.volumeId', VOLUME_ID_CHARS_MAX) as VolumeId,
        volumeName: str(o['volumeName'], 'chunk.volumeName', VOLUME_NAME_CHARS_MAX),
        rev: rev as Rev,
        epoch: epoch as Epoch,
        compactRev: compactRev as Rev,
        config: config(o['config'], 'chunk.config'),
      };
    }
    case 'versions': {
      const items = o['items'];
      if (!Array.isArray(items)) throw bad('chunk.items', 'must be an array');
      if (items.length === 0 || items.length > snapshotChunkVersionsMax) throw bad('chunk.items', `holds ${items.length} versions, not 1 to ${snapshotChunkVersionsMax}`);
      let total = 0;
      const out = items.map((x: unknown, i) => {
        const { sv, bytes: n } = version(x, `chunk.items[${i}]`, s);
        total += n;
        if (total > snapshotChunkBytesMax) throw bad('chunk.items', `carry over ${snapshotChunkBytesMax} bytes of keys and values`);
        return sv;
      });
      return { kind, items: out };
    }
    case 'end': {
      const digest = o['digest'];
      if (typeof digest !== 'string' || !DIGEST_HEX.test(digest)) throw bad('chunk.digest', 'must be 64 lowercase hex digits (sha-256)');
      return { kind, versions: uint(o['versions'], 'chunk.versions'), digest };
    }
    default:
      throw bad('chunk.kind', `is not header, versions or end: ${typeof kind === 'string' ? JSON.stringify(kind.slice(0, 64)) : typeof kind}`);
  }
}

/** Checks a snapshotChunk request's args and returns an exact-shape copy. */
export function checkSnapshotChunkArgs(a: unknown): SnapshotChunkFopArgs {
  const o = object(a, 'snapshotChunk args');
  const epoch = uint(o['epoch'], 'epoch');
  const rev = posInt(o['rev'], 'rev');
  const revEpoch = uint(o['revEpoch'], 'revEpoch');
  if (revEpoch > epoch) throw bad('revEpoch', `is ${revEpoch}, above the sender's epoch ${epoch}`);
  const seq = uint(o['seq'], 'seq');
  return {
    epoch: epoch as Epoch,
    sender: str(o['sender'], 'sender', ID_CHARS_MAX),
    rev: rev as Rev,
    revEpoch: revEpoch as Epoch,
    transfer: str(o['transfer'], 'transfer', TRANSFER_CHARS_MAX),
    seq,
    chunk: chunk(o['chunk'], seq, rev, revEpoch),
  };
}

// ---- the result as protocol/client receives it (see validate-brick.ts: rebuilt, not re-judged)

function num(o: Obj, field: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw wrong(`${field} must be a number`);
  return v;
}

export function decodeSnapshotChunkResult(v: unknown): SnapshotChunkFopResult {
  if (!isPlainObject(v)) throw wrong('snapshotChunk result must be an object');
  const ok = v['ok'];
  if (ok === true) {
    if (v['wanted'] !== undefined) {
      if (typeof v['wanted'] !== 'boolean') throw wrong('wanted must be a boolean');
      return { ok: true, wanted: v['wanted'] };
    }
    return { ok: true, lastRev: num(v, 'lastRev') as Rev, commitRev: num(v, 'commitRev') as Rev };
  }
  if (ok !== false) throw wrong('ok must be a boolean');
  if (v['reason'] === 'fenced') return { ok: false, reason: 'fenced', promisedEpoch: num(v, 'promisedEpoch') as Epoch };
  if (v['reason'] === 'failed') {
    const message = v['message'];
    if (typeof message !== 'string') throw wrong('message must be a string');
    return { ok: false, reason: 'failed', message };
  }
  throw wrong('reason must be one of fenced, failed');
}
