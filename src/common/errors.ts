// Typed operating errors: what users and networks do wrong. Each has a stable code (part of the
// wire protocol and the CLI's --json output) and a human message.

export const ERROR_CODES = [
  'invalid-argument', // malformed request: bad key, bad compare target, bad option
  'key-too-large',
  'value-too-large',
  'too-large', // a txn or request over its total size limit
  'reserved-key', // a write under /_coordvol/
  'future-rev', // a read at a rev above the readRev
  'compacted', // a read or watch below the volume's compactRev
  'not-found', // a range or get asked to fail on absence (not used for plain gets)
  'volfile-invalid', // a volfile line that does not parse or validate
  // A volfile edit of the brick list or quorum on a running master: membership changes only
  // through peer probe / peer detach (DESIGN §8); the running graph is left as it was.
  'membership-edit',
  'store-invalid', // a data directory that is corrupt, foreign or of another volume
  'fenced', // a request of an epoch older than the brick's promise
  'lock-refused', // a lock request the brick will not grant
  'no-quorum',
  'not-holder', // a write or linearizable read sent to a master that does not hold the volume lock: not applied, try another
  'indeterminate', // a write whose outcome is unknown
  'closed', // the volume or translator is shut down
  'timeout',
  'behind', // a serializable read the brick could not serve by its deadline
  'unavailable', // no connection to any server (the client keeps trying until the deadline)
  'auth-failed', // the handshake's HMAC did not verify: wrong cluster secret
  'wrong-volume', // the server serves another volume than the client expects
  'protocol-error', // a malformed, oversized or unexpected frame or message
  'unauthorized', // an HTTP request without the bearer token the API requires
  'slow-consumer', // a watcher that did not take its events fast enough: cancelled, its buffer over the cap
  // A watch the serving brick ended (or would not start) because it cannot vouch for its log: it
  // has not heard from a holder for 2·leaseMs (DESIGN §6). details.cursor is the next rev the
  // stream would have delivered; the library resumes it on another master from there.
  'moved',
  'session-not-found', // a put naming a session the volume does not have (ended or never opened)
  'session-expired', // a keepalive or close of a session that has ended; a write whose client session (clientId) has ended
  'stale-retry', // a write retried with a seq the client already reported answered (seq ≤ ackedSeq, DESIGN §3)
  'too-many-in-flight', // a client's unanswered writes (seq − ackedSeq) over the dedupe window (DESIGN §3)
  'config-pending', // a config change while an earlier one is uncommitted, or before the holder's epoch has committed an entry: retry
  'learner-behind', // a promotion of a learner that has not kept up with the holder for a heartbeat interval: retry
  'already-configured', // a probed daemon that holds data or other members, or serves another volume: it is not discarded
  'already-member', // a probe of a daemon that already belongs to this volume (or a brick already a member)
  // Volume info of the storage cluster (src/mgmt/volume-info.ts): a txn's compare that lost.
  'already-exists', // a volume create naming a volume that exists
  'brick-in-use', // a volume create naming a brick that another volume has
  'illegal-transition', // a volume command its volume's status does not allow (created → started ↔ stopped → deleted)
  'conflict', // a read-modify-write whose record kept changing under it for every attempt: run it again
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class CoordError extends Error {
  override name = 'CoordError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export const isCoordError = (e: unknown): e is CoordError => e instanceof CoordError;

export function coordError(code: ErrorCode, message: string, details?: Record<string, unknown>): CoordError {
  return new CoordError(code, message, details);
}
