// The messages of the wire protocol (DESIGN §7), and the validator that turns any decoded value
// into one of them or a protocol-error. Nothing about a decoded value's shape is trusted: every
// field is checked here, and a request's args are checked again by replication/validate.
import { isPlainObject } from '../common/plain.js';
import { coordError, ERROR_CODES, type CoordError, type ErrorCode } from '../common/errors.js';
import type { FopName } from '../../translators/fops.js';

/** Bumped on any incompatible change; a peer of another version is refused at the handshake. */
export const PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
const VOLUME_ID_CHARS_MAX = 256;
const OP_CHARS_MAX = 64;
const MESSAGE_CHARS_MAX = 64 * 1024;

/** The fops a client may send (brick fops are listed apart: BRICK_FOPS). */
export const CLIENT_FOPS = ['get', 'range', 'put', 'delete', 'txn', 'compact', 'configChange', 'status', 'statedump', 'profile', 'sessionOpen', 'keepalive', 'sessionClose', 'sessions', 'peerInfo', 'peerJoin'] as const satisfies readonly FopName[];
export type ClientFop = (typeof CLIENT_FOPS)[number];
/**
 * Client fops safe to send again after a connection breaks: reads, and the session fops whose
 * repeat changes nothing more (a keepalive; an open carries a nonce that finds its session).
 */
export const READ_FOPS: ReadonlySet<ClientFop> = new Set(['get', 'range', 'status', 'statedump', 'profile', 'sessions', 'keepalive', 'sessionOpen', 'peerInfo']);

const CLIENT_FOP_SET: ReadonlySet<string> = new Set(CLIENT_FOPS);
export const isClientFop = (op: string): op is ClientFop => CLIENT_FOP_SET.has(op);

/**
 * The brick fops (DESIGN §4): a master's replicate translator drives a remote brick with them,
 * through protocol/client to that master's protocol/server. Their args are checked strictly
 * (replication/validate-brick.ts). Unlike client fops they never wait for a connection and are
 * never sent again: the replication engine has its own timeouts and retransmission.
 */
export const BRICK_FOPS = ['probe', 'lock', 'append', 'fetch', 'snapshotChunk'] as const satisfies readonly FopName[];
export type BrickFop = (typeof BRICK_FOPS)[number];
const BRICK_FOP_SET: ReadonlySet<string> = new Set(BRICK_FOPS);
export const isBrickFop = (op: string): op is BrickFop => BRICK_FOP_SET.has(op);

/** Every fop a server accepts as a plain request (watch streams aside). */
export type WireFop = ClientFop | BrickFop;

export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
}

// The handshake: hello (server) → auth (client) → welcome (server). See connection.ts.
export interface HelloMessage {
  readonly type: 'hello';
  readonly v: number;
  readonly volumeId: string;
  readonly nonce: Uint8Array;
}
export interface AuthMessage {
  readonly type: 'auth';
  readonly v: number;
  readonly expectVolumeId?: string;
  readonly clientNonce: Uint8Array;
  /** HMAC-SHA256(secret, "coordvol client" ‖ serverNonce ‖ clientNonce). */
  readonly mac: Uint8Array;
}
export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly volumeId: string;
  /** HMAC-SHA256(secret, "coordvol server" ‖ clientNonce ‖ serverNonce): the server knows the secret too. */
  readonly mac: Uint8Array;
}

export interface RequestMessage {
  readonly type: 'request';
  readonly id: number;
  /** A string, not a WireFop: an unknown op is answered (invalid-argument), not a protocol error. */
  readonly op: string;
  readonly args: unknown;
  /** The caller's time left; the server's deadline for the fop. */
  readonly timeoutMs?: number;
  /** A write's [clientId, seq, ackedSeq] (DESIGN §3): a retry carries the same, and is answered, not applied, twice. */
  readonly origin?: readonly [number, number, number];
}
export type ResponseMessage =
  | { readonly type: 'response'; readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly type: 'response'; readonly id: number; readonly ok: false; readonly error: WireError };

/**
 * A server-pushed message on an open connection: part of a stream the client subscribed to
 * (watch events, config changes). Streams are numbered by the client; a stream's pushes arrive
 * in the order the server sent them (one connection, in order).
 */
export interface PushMessage {
  readonly type: 'push';
  readonly stream: number;
  readonly body: unknown;
}

/**
 * Stream 0 is the server's own (client-numbered streams start at 1): a master pushes the volume's
 * masters on it when a membership change commits, and once to every connection as it opens, so
 * no client depends on a static host list (DESIGN §8).
 */
export const MEMBERS_STREAM = 0;
export interface MembersPush {
  readonly volumeId: string;
  /** The commit rev of the config the list comes from. */
  readonly rev: number;
  /** host:port of every member's master. */
  readonly masters: readonly string[];
}

export interface PingMessage {
  readonly type: 'ping';
}
export interface PongMessage {
  readonly type: 'pong';
}
/** The last message before a side closes: why. */
export interface GoawayMessage {
  readonly type: 'goaway';
  readonly error: WireError;
}

export type HandshakeMessage = HelloMessage | AuthMessage | WelcomeMessage;
/** What the connection hands its user once open (and takes from it). */
export type AppMessage = RequestMessage | ResponseMessage | PushMessage;
export type Message = HandshakeMessage | AppMessage | PingMessage | PongMessage | GoawayMessage;
export type MessageType = Message['type'];

function bad(why: string): CoordError {
  return coordError('protocol-error', `malformed message: ${why}`);
}

function str(o: Record<string, unknown>, field: string, maxChars: number): string {
  const v = o[field];
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  if (v.length > maxChars) throw bad(`${field} is over ${maxChars} characters`);
  return v;
}

function bytes(o: Record<string, unknown>, field: string, length: number): Uint8Array {
  const v = o[field];
  if (!(v instanceof Uint8Array)) throw bad(`${field} must be bytes`);
  if (v.byteLength !== length) throw bad(`${field} must be ${length} bytes, not ${v.byteLength}`);
  return v;
}

function uint(o: Record<string, unknown>, field: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${field} must be a non-negative integer`);
  return v;
}

/** [clientId, seq, ackedSeq]: three integers (their meaning is checked where the write is served). */
function origin(v: unknown): readonly [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3) throw bad('origin must be [clientId, seq, ackedSeq]');
  const [c, s, a] = v as unknown[];
  const ok = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!ok(c) || !ok(s) || !ok(a)) throw bad('origin must hold three non-negative integers');
  return [c, s, a];
}

/** An error as a peer sent it. An unknown code (a newer peer) is kept in the message as `internal`. */
function wireError(v: unknown, field: string): WireError {
  if (!isPlainObject(v)) throw bad(`${field} must be an object`);
  const code = str(v, 'code', OP_CHARS_MAX);
  const message = str(v, 'message', MESSAGE_CHARS_MAX);
  const details = v['details'] === undefined ? {} : v['details'];
  if (!isPlainObject(details)) throw bad(`${field}.details must be an object`);
  if ((ERROR_CODES as readonly string[]).includes(code)) return { code: code as ErrorCode, message, details };
  return { code: 'internal', message: `${code}: ${message}`, details: { ...details, code } };
}

/** Checks a decoded value and returns it as a typed message; throws CoordError('protocol-error'). */
export function parseMessage(v: unknown): Message {
  if (!isPlainObject(v)) throw bad('not an object');
  const type = v['type'];
  switch (type) {
    case 'hello':
      return { type, v: uint(v, 'v'), volumeId: str(v, 'volumeId', VOLUME_ID_CHARS_MAX), nonce: bytes(v, 'nonce', NONCE_BYTES) };
    case 'auth': {
      const m: AuthMessage = { type, v: uint(v, 'v'), clientNonce: bytes(v, 'clientNonce', NONCE_BYTES), mac: bytes(v, 'mac', MAC_BYTES) };
      return v['expectVolumeId'] === undefined ? m : { ...m, expectVolumeId: str(v, 'expectVolumeId', VOLUME_ID_CHARS_MAX) };
    }
    case 'welcome':
      return { type, volumeId: str(v, 'volumeId', VOLUME_ID_CHARS_MAX), mac: bytes(v, 'mac', MAC_BYTES) };
    case 'request': {
      let m: RequestMessage = { type, id: uint(v, 'id'), op: str(v, 'op', OP_CHARS_MAX), args: v['args'] };
      if (v['timeoutMs'] !== undefined) m = { ...m, timeoutMs: uint(v, 'timeoutMs') };
      return v['origin'] === undefined ? m : { ...m, origin: origin(v['origin']) };
    }
    case 'response': {
      const id = uint(v, 'id');
      if (v['ok'] === true) return { type, id, ok: true, result: v['result'] };
      if (v['ok'] === false) return { type, id, ok: false, error: wireError(v['error'], 'error') };
      throw bad('ok must be a boolean');
    }
    case 'push':
      return { type, stream: uint(v, 'stream'), body: v['body'] };
    case 'ping':
    case 'pong':
      return { type };
    case 'goaway':
      return { type, error: wireError(v['error'], 'error') };
    default:
      throw bad(`unknown type ${typeof type === 'string' ? JSON.stringify(type.slice(0, OP_CHARS_MAX)) : typeof type}`);
  }
}

/** A CoordError as it goes on the wire. */
export function toWireError(e: CoordError): WireError {
  return { code: e.code, message: e.message, details: e.details };
}

export function fromWireError(e: WireError): CoordError {
  return coordError(e.code, e.message, { ...e.details });
}
