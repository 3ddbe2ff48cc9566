// Watch events as bytes, and the pushes that carry them. An event is encoded on its own, with
// plain msgpack maps (no record structures, which belong to one connection's encoder), so one
// encoding serves every connection a watched key's change goes to. Everything decoded here came
// off the wire: each field is checked, and a bad one is a protocol-error.
import { Packr, Unpackr } from 'msgpackr';
import { coordError, ERROR_CODES, type CoordError, type ErrorCode } from '../../src/common/errors.js';
import { asRev, asSessionId, type Rev } from '../../src/common/ids.js';
import type { KeyValue } from '../../replication/ops.js';
import type { SharedWatchEvent, WatchEvent, WatchPush } from './watch-types.js';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Per event and per key-value, on top of keys and values, in a consumer's buffer. */
const OVERHEAD_BYTES = 64;

function kvBytes(kv: KeyValue | undefined): number {
  return kv === undefined ? 0 : kv.key.length + (kv.value?.byteLength ?? 0) + OVERHEAD_BYTES;
}

/** A shared event: built once per (rev, key, prevKv or not), encoded at most once. */
export class SharedEvent implements SharedWatchEvent {
  private bytes: Uint8Array | undefined;
  readonly sizeBytes: number;

  constructor(readonly event: WatchEvent, encoded?: Uint8Array) {
    this.bytes = encoded;
    this.sizeBytes = kvBytes(event.kv) + kvBytes(event.prevKv);
  }

  get encoded(): Uint8Array {
    this.bytes ??= packr.pack(event(this.event));
    return this.bytes;
  }
}

/** Exactly the fields an event has, so nothing else a caller attached is encoded. */
function event(e: WatchEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { type: e.type, kv: keyValue(e.kv) };
  if (e.prevKv !== undefined) out['prevKv'] = keyValue(e.prevKv);
  return out;
}

function keyValue(kv: KeyValue): Record<string, unknown> {
  const out: Record<string, unknown> = { key: kv.key, createRev: kv.createRev, modRev: kv.modRev, version: kv.version, session: kv.session };
  if (kv.value !== undefined) out['value'] = kv.value;
  return out;
}

function bad(why: string): CoordError {
  return coordError('protocol-error', `malformed watch push: ${why}`);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

function count(o: Record<string, unknown>, field: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${field} must be a non-negative integer`);
  return v;
}

function checkKv(v: unknown, what: string): KeyValue {
  if (!isObject(v)) throw bad(`${what} must be an object`);
  const key = v['key'];
  if (typeof key !== 'string') throw bad(`${what}.key must be a string`);
  const value = v['value'];
  if (value !== undefined && !(value instanceof Uint8Array)) throw bad(`${what}.value must be bytes`);
  const kv = { key, createRev: asRev(count(v, 'createRev')), modRev: asRev(count(v, 'modRev')), version: count(v, 'version'), session: asSessionId(count(v, 'session')) };
  return value === undefined ? kv : { ...kv, value };
}

/** One event from its bytes; throws protocol-error for anything that is not one. */
export function decodeWatchEvent(bytes: Uint8Array): WatchEvent {
  let v: unknown;
  try {
    v = unpackr.unpack(bytes);
  } catch (e) {
    throw bad(`bad msgpack: ${e instanceof Error ? e.message.slice(0, 200) : String(e)}`);
  }
  if (!isObject(v)) throw bad('an event must be an object');
  const type = v['type'];
  if (type !== 'put' && type !== 'delete') throw bad('event type must be put or delete');
  const kv = checkKv(v['kv'], 'kv');
  return v['prevKv'] === undefined ? { type, kv } : { type, kv, prevKv: checkKv(v['prevKv'], 'prevKv') };
}

/** A push body checked into a WatchPush (events still encoded); throws protocol-error. */
export function parseWatchPush(body: unknown): WatchPush {
  if (!isObject(body)) throw bad('not an object');
  switch (body['kind']) {
    case 'events': {
      const events = body['events'];
      if (!Array.isArray(events) || !events.every((e) => e instanceof Uint8Array)) throw bad('events must be a list of bytes');
      const more = body['more'];
      if (more !== undefined && more !== true) throw bad('more must be true or absent');
      const also = body['also'];
      if (also !== undefined && !(Array.isArray(also) && also.every((s) => typeof s === 'number' && Number.isSafeInteger(s) && s >= 0))) throw bad('also must be a list of stream numbers');
      const push = { kind: 'events' as const, rev: count(body, 'rev'), events: events as Uint8Array[], ...(also !== undefined ? { also: also as number[] } : {}) };
      return more ? { ...push, more } : push;
    }
    case 'progress':
      return { kind: 'progress', rev: count(body, 'rev') };
    case 'end': {
      const e = body['error'];
      if (!isObject(e) || typeof e['code'] !== 'string' || typeof e['message'] !== 'string') throw bad('end needs an error {code, message}');
      const details = e['details'];
      if (details !== undefined && !isObject(details)) throw bad('error details must be an object');
      return { kind: 'end', error: { code: e['code'], message: e['message'], ...(details !== undefined ? { details } : {}) } };
    }
    default:
      throw bad('kind must be events, progress or end');
  }
}

/** The error an end push carries; an unknown code (a newer server) becomes `internal`. */
export function endError(e: Extract<WatchPush, { kind: 'end' }>['error']): CoordError {
  const details = { ...(e.details ?? {}) };
  if ((ERROR_CODES as readonly string[]).includes(e.code)) return coordError(e.code as ErrorCode, e.message, details);
  return coordError('internal', `${e.code}: ${e.message}`, { ...details, code: e.code });
}

/** The rev of an events push as a Rev (checked non-negative above). */
export const pushRev = (p: { readonly rev: number }): Rev => asRev(p.rev);
