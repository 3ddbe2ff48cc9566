// How refusals leave the HTTP API: one JSON shape, `{ error: { code, message, details? } }`, with
// the CoordError code (the same codes as the library and the wire) and an HTTP status per code.
import { isCoordError, type ErrorCode } from '../common/errors.js';

/** The JSON body of every refusal. `rev` is set where a read was served (a missing key). */
export interface ErrorBody {
  readonly rev?: number;
  readonly error: { readonly code: ErrorCode; readonly message: string; readonly details?: Readonly<Record<string, unknown>> };
}

const STATUS: Readonly<Record<ErrorCode, number>> = {
  'invalid-argument': 400,
  'key-too-large': 400,
  // 413 whether the store or fastify's body limit caught it, so a client sees one status.
  'value-too-large': 413,
  'too-large': 400,
  'reserved-key': 403,
  'future-rev': 400,
  'compacted': 410,
  'not-found': 404,
  // A put naming an ended session, a keepalive of one: the session is gone (open a new one).
  'session-not-found': 404,
  'session-expired': 404,
  // Exactly-once retries (DESIGN §3): a retry of a write already answered; too many unanswered.
  'stale-retry': 409,
  'too-many-in-flight': 429,
  // A membership change that must wait (an earlier one uncommitted, a learner still catching up).
  'config-pending': 409,
  'learner-behind': 409,
  // A probe of a daemon that holds data or belongs to a volume already.
  'already-configured': 409,
  'already-member': 409,
  // Volume info: a name or brick taken, a status that forbids the command, a record that kept changing.
  'already-exists': 409,
  'brick-in-use': 409,
  'illegal-transition': 409,
  'conflict': 409,
  'unauthorized': 401,
  'timeout': 504,
  'unavailable': 503,
  'no-quorum': 503,
  'not-holder': 503,
  // The holder lost its lock, a serializable read could not catch up, the volume is stopping:
  // all worth a retry, possibly elsewhere.
  'fenced': 503,
  'lock-refused': 503,
  'behind': 503,
  'closed': 503,
  'indeterminate': 500,
  'internal': 500,
  // Server-side configuration and cluster-internal failures, never the HTTP client's fault.
  'volfile-invalid': 500,
  'membership-edit': 400,
  'store-invalid': 500,
  'auth-failed': 500,
  'wrong-volume': 500,
  'protocol-error': 500,
  // A watch stream the server cancelled: its consumer fell behind (start a new one).
  'slow-consumer': 503,
  // A watch whose brick lost touch with the holder: resume it on another master (Last-Event-ID).
  'moved': 503,
};

export function httpStatus(code: ErrorCode): number {
  return STATUS[code];
}

/** A fastify error (validation, body parsing, body limit): it has a statusCode and a code. */
interface FastifyishError {
  readonly statusCode?: number;
  readonly code?: string;
  readonly message: string;
  readonly validation?: unknown;
  readonly validationContext?: string;
}

function isFastifyish(e: unknown): e is FastifyishError {
  return e instanceof Error && typeof (e as { statusCode?: unknown }).statusCode === 'number';
}

/**
 * The status and body for anything a route or hook threw. `tooLargeCode` names what an
 * oversized body is: a value (PUT /v1/kv) or a whole request (txn).
 */
export function errorReply(e: unknown, tooLargeCode: 'value-too-large' | 'too-large'): { status: number; body: ErrorBody; internal: boolean } {
  if (isCoordError(e)) {
    const details = Object.keys(e.details).length > 0 ? { details: e.details } : {};
    return { status: httpStatus(e.code), body: { error: { code: e.code, message: e.message, ...details } }, internal: e.code === 'internal' };
  }
  if (isFastifyish(e) && e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    if (e.statusCode === 413) {
      return { status: 413, body: { error: { code: tooLargeCode, message: e.message, details: { fastifyCode: e.code } } }, internal: false };
    }
    // Schema validation, malformed JSON, an unsupported content type: the request is malformed.
    const details = e.validation !== undefined ? { validation: e.validation } : { fastifyCode: e.code };
    const status = e.validation !== undefined ? 400 : e.statusCode;
    return { status, body: { error: { code: 'invalid-argument', message: e.message, details } }, internal: false };
  }
  // A bug: log it in full, tell the client little.
  return { status: 500, body: { error: { code: 'internal', message: 'internal error (see the server log)' } }, internal: true };
}
