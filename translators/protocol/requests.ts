// A request off the wire, made into a fop call (STYLE §4: filter untrusted input first). Its
// args pass replication/validate's checks (a brick fop's: replication/validate-brick's), and are
// then copied field by field, so what winds into the graph has exactly the fields a fop takes
// and nothing a peer slipped in beside them.
import { coordError } from '../../src/common/errors.js';
import { asSessionId } from '../../src/common/ids.js';
import { isBrickFop, isClientFop, type BrickFop, type WireFop } from '../../src/wire/index.js';
import {
  checkCompactArgs, checkConfigChangeArgs, checkDeleteArgs, checkGetArgs, checkPutArgs, checkRangeArgs, checkSessionIdArgs, checkSessionOpenArgs,
  checkTxnArgs,
} from '../../replication/validate.js';
import { checkAppendArgs, checkFetchArgs, checkLockArgs, checkProbeArgs, copyEntry } from '../../replication/validate-brick.js';
import { ORIGIN_FOPS, type AppendArgs, type Compare, type FopArgs, type FopName, type Origin, type TxnOp } from '../fops.js';
import { checkWireUnwatch, checkWireWatch } from '../features/watch-args.js';
import { checkSnapshotChunkArgs } from './snapshot-args.js';
import { checkPeerJoinArgs } from './mgmt.js';
import type { StreamOp, StreamRequest } from '../features/watch-streams.js';

type Obj = Readonly<Record<string, unknown>>;

/** A copy of `o` with only the given fields that are set. */
function pick<T>(from: unknown, fields: readonly string[]): T {
  const o = from as Obj;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (o[f] !== undefined) out[f] = o[f];
  return out as T;
}

const READ = ['rev', 'consistency', 'minRev'] as const;
const SELECTOR = ['key', 'prefix', 'start', 'end'] as const;
const QUERY = ['limit', 'keysOnly', 'countOnly', 'children'] as const;

function txnOp(o: TxnOp): TxnOp {
  switch (o['op']) {
    case 'put':
      return pick(o, ['op', 'key', 'value', 'prevKv', 'session', 'sequential']);
    case 'delete':
      return pick(o, ['op', ...SELECTOR, 'prevKv']);
    case 'get':
      return pick(o, ['op', 'key']);
    default:
      return pick(o, ['op', ...SELECTOR, ...QUERY]);
  }
}

export type CheckedRequest<F extends WireFop = WireFop> = { [G in F]: { readonly op: G; readonly args: FopArgs<G> } }[F];

/**
 * A brick fop from another master's replicate translator (DESIGN §4), checked strictly
 * (replication/validate-brick.ts); an append's entries are copied entry by entry, effect by effect.
 */
function checkBrickRequest(op: BrickFop, args: unknown): CheckedRequest<BrickFop> {
  switch (op) {
    case 'probe':
      checkProbeArgs(args);
      return { op, args: pick(args, ['epoch', 'candidate']) };
    case 'lock':
      checkLockArgs(args);
      return { op, args: pick(args, ['epoch', 'candidate']) };
    case 'append': {
      checkAppendArgs(args);
      const head = pick<Omit<AppendArgs, 'entries'>>(args, ['epoch', 'prevEpoch', 'prevRev', 'commitRev', 'sender']);
      return { op, args: { ...head, entries: args.entries.map(copyEntry) } };
    }
    case 'fetch':
      checkFetchArgs(args);
      return { op, args: pick(args, ['epoch', 'from', 'maxEntries']) };
    case 'snapshotChunk':
      return { op, args: checkSnapshotChunkArgs(args) };
  }
}

/**
 * A write's origin off the wire (its shape already checked by the message parser): only on the
 * writes that take one, with clientId and seq from 1 and ackedSeq below seq.
 */
export function checkOrigin(op: string, o: readonly [number, number, number]): Origin {
  const [clientId, seq, ackedSeq] = o;
  if (!ORIGIN_FOPS.has(op as FopName)) throw coordError('invalid-argument', `${op} takes no origin (only ${[...ORIGIN_FOPS].join(', ')} do)`);
  if (clientId < 1 || seq < 1) throw coordError('invalid-argument', 'origin clientId and seq start at 1');
  if (ackedSeq >= seq) throw coordError('invalid-argument', `origin ackedSeq ${ackedSeq} must be below seq ${seq}`);
  return { clientId: asSessionId(clientId), seq, ackedSeq };
}

/** Checks a request's op and args; throws a typed error (invalid-argument, key-too-large, …). */
export function checkRequest(op: string, args: unknown): CheckedRequest {
  if (isBrickFop(op)) return checkBrickRequest(op, args);
  if (!isClientFop(op)) throw coordError('invalid-argument', `unknown op ${JSON.stringify(op)}`);
  switch (op) {
    case 'get':
      checkGetArgs(args);
      return { op, args: pick(args, ['key', ...READ]) };
    case 'range':
      checkRangeArgs(args);
      return { op, args: pick(args, [...SELECTOR, ...QUERY, ...READ]) };
    case 'put':
      checkPutArgs(args);
      return { op, args: pick(args, ['key', 'value', 'prevKv', 'session', 'sequential']) };
    case 'delete':
      checkDeleteArgs(args);
      return { op, args: pick(args, [...SELECTOR, 'prevKv']) };
    case 'txn': {
      checkTxnArgs(args);
      const ops = (l: readonly TxnOp[] | undefined): TxnOp[] => (l ?? []).map((o) => txnOp(o));
      const compare = (args.compare ?? []).map((c) => pick<Compare>(c, ['key', 'target', 'op', 'value']));
      return { op, args: { compare, success: ops(args.success), failure: ops(args.failure) } };
    }
    case 'compact':
      checkCompactArgs(args);
      return { op, args: { rev: args.rev } };
    case 'configChange':
      checkConfigChangeArgs(args);
      return {
        op,
        args:
          args.op === 'quorum-count'
            ? { op: args.op, count: args.count }
            : args.op === 'add-learner' && args.master !== undefined
              ? { op: args.op, brick: args.brick, master: args.master }
              : { op: args.op, brick: args.brick },
      };
    case 'sessionOpen':
      checkSessionOpenArgs(args);
      return { op, args: pick(args, ['ttlMs', 'nonce', 'owner', 'client']) };
    case 'keepalive':
    case 'sessionClose':
      checkSessionIdArgs(args, op);
      return { op, args: { id: args.id } };
    case 'peerJoin':
      return { op, args: checkPeerJoinArgs(args) };
    case 'status':
    case 'statedump':
    case 'profile':
    case 'sessions':
    case 'peerInfo':
      if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
        throw coordError('invalid-argument', `${op} takes an object`);
      }
      return { op, args: {} };
  }
}

/**
 * A watch-stream request (watch, unwatch), checked and copied the same way. protocol/server serves
 * it with its connection (features/watch-streams.ts): a watch names the stream its events go to.
 */
export function checkStreamRequest(op: StreamOp, args: unknown): StreamRequest {
  return op === 'watch' ? { op, args: checkWireWatch(args) } : { op, args: checkWireUnwatch(args) };
}
