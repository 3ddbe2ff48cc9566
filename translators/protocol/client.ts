// protocol/client (DESIGN §7): the client fops of a remote volume, sent over one connection at a
// time to one of the listed servers and multiplexed by request id. It pings for failure
// detection and reconnects with jittered exponential backoff, trying the servers in turn.
//
// When a connection breaks, requests in flight on it are handled by what they are:
//  - reads (get, range, status, statedump, profile) change nothing, so they are sent again once
//    a connection is back, until their deadline;
//  - writes carrying an origin (clientId, seq, ackedSeq; DESIGN §3) are sent again too, with the
//    same origin: the holder answers a retry of a write it applied from its stored result
//    (`duplicate`) instead of applying it twice. If the client's session ended before a retry
//    was answered (`session-expired` naming the clientId), the outcome is unknown: `indeterminate`;
//    With `resend-writes off` (cluster/replicate's links to other masters) they fail
//    `unavailable` at once instead, and the caller routes them again with the same origin;
//  - other writes (put, delete, txn, compact, sessionClose, without an origin) may or may not
//    have been applied: they fail `indeterminate`.
// Requests made while there is no connection wait for one until their deadline (ctx.deadlineMs,
// else request-timeout-ms), then fail `unavailable`.
//
// `not-holder` (the server's master does not hold the volume lock; nothing was applied): with
// more than one server listed, the connection moves to the next server — or to the holder the
// error names, if listed — and the request goes out again there, writes included, until its
// deadline; then it fails with that last error. The first move goes at once; while no server
// answers as holder (an election) later ones pause about 50, 100, then 200 ms. Requests still
// in flight on the old connection are answered there: it closes once they are (no write is made
// indeterminate by a move). With one server, not-holder is the caller's answer.
//
// `moved` (DESIGN §6: the server's brick has not heard from a holder for 2·leaseMs, so its log
// may be behind): a watch refused `moved`, or a watch stream ended `moved`, on the current
// connection moves it the same way to the next listed server (first at once, then with the same
// pauses while watches keep being refused or moved, until a watch is taken). The watch itself
// fails or ends `moved`, and every other watch stream of the old connection ends `unavailable`;
// the library starts them all again on the new connection from the rev after the last each
// delivered. With one server nothing moves: the library retries it after a pause.
//
// Brick fops (probe, lock, append, fetch: a remote master's replicate translator driving this
// server's brick) neither wait nor go out twice: with no open connection they fail `unavailable`
// at once, in flight on a connection that breaks `unavailable`, past their deadline `timeout`.
// The replication engine has its own timeouts and retransmission, and a stale brick request
// must not arrive late. Their results are rebuilt in their declared types
// (replication/validate-brick.ts).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { assert } from '../../src/common/assert.js';
import { coordError, type CoordError } from '../../src/common/errors.js';
import { clientPendingRequestsMax, connectionRequestsMax, watchBacklogBytesMax } from '../../src/common/limits.js';
import type { Random } from '../../src/common/random.js';
import {
  BRICK_FOPS, CLIENT_FOPS, Connection, formatAddress, fromWireError, MEMBERS_STREAM, NONCE_BYTES, parseAddress, parseAddressList, READ_FOPS,
  type Address, type MembersPush, type AppMessage, type BrickFop, type ClientFop, type WireFop,
} from '../../src/wire/index.js';
import { decodeAppendResult, decodeFetchResult, decodeLockResult, decodeProbeResult } from '../../replication/validate-brick.js';
import { decodeSnapshotChunkResult } from './snapshot-args.js';
import { ORIGIN_FOPS, type FopArgs, type FopContext, type FopResult, type Origin, type TranslatorDump } from '../fops.js';
import type { OptionSchema, OptionValues } from '../options.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';
import { Link, type LinkHandler } from './link.js';
import { RemoteWatches } from '../features/watch-remote.js';
import { loadSecretFile, secretKey } from './secret.js';

const options = {
  remote: { type: 'string', description: 'the servers, host:port separated by spaces or commas, tried in turn' },
  secret: { type: 'string', description: 'the cluster secret (its text, as in the server\'s secret file)' },
  'secret-file': { type: 'path', description: 'a file holding the cluster secret (relative to the volfile)' },
  'expect-volume-id': { type: 'string', description: 'refuse servers of any other volume (default: the first server\'s volume)' },
  tls: { type: 'bool', default: false, description: 'connect with TLS' },
  'tls-ca': { type: 'path', description: 'PEM CA certificate(s) to trust for TLS (default: the system\'s)' },
  'handshake-timeout-ms': { type: 'time', min: 1, max: 600_000, default: 5_000, description: 'connect, TLS and handshake must finish within this' },
  'request-timeout-ms': { type: 'time', min: 1, max: 3_600_000, default: 10_000, description: 'a request\'s deadline when its caller gives none' },
  'ping-ms': { type: 'time', min: 0, max: 3_600_000, default: 5_000, description: 'ping after this long without hearing from the server (0: never)' },
  'ping-timeout-ms': { type: 'time', min: 1, max: 3_600_000, default: 3_000, description: 'a connection whose ping is not answered within this is dropped' },
  'reconnect-min-ms': { type: 'time', min: 1, max: 600_000, default: 50, description: 'first pause before reconnecting' },
  'reconnect-max-ms': { type: 'time', min: 1, max: 600_000, default: 2_000, description: 'longest pause between reconnects (the pause doubles up to it)' },
  'follow-members': {
    type: 'bool',
    default: false,
    description: "try the masters a master pushes (the volume's members) instead of the remote list; off for a link to one brick",
  },
  'resend-writes': {
    type: 'bool',
    default: true,
    description: 'send writes with an origin again after a broken connection (off: they fail `unavailable` at once, for a caller that routes them elsewhere, as cluster/replicate does)',
  },
} as const satisfies OptionSchema;
type Values = OptionValues<typeof options>;

/** What a program (connect()) gives beyond volfile options. */
export interface ProtocolClientDeps {
  /** The secret as raw key bytes, instead of the secret / secret-file options. */
  readonly secret?: Uint8Array;
  /** TLS settings (ca, servername, …); implies TLS. */
  readonly tls?: ConnectionOptions;
  /** Jitter for the backoff (default Math.random). */
  readonly random?: Random;
}

/** A request waiting for a connection, or in flight on one. */
interface Pending {
  readonly op: WireFop;
  readonly args: unknown;
  readonly deadlineMs: number;
  readonly resolve: (r: unknown) => void;
  readonly reject: (e: CoordError) => void;
  /** Creation order: a request sent again goes back among the waiting in this order. */
  readonly seq: number;
  /** A brick fop: never waits, never goes out twice. */
  readonly brick: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Request id while in flight. */
  id: number | undefined;
  /** The connection it is in flight on. */
  link: Link | undefined;
  /** The refusal it got last (not-holder), which it fails with if its deadline passes before another answer. */
  lastError: CoordError | undefined;
  /** Answered, failed or expired: skipped where it still sits in the queue. */
  done: boolean;
  /** A write's origin (exactly-once retries), sent with every copy of it. */
  readonly origin: Origin | undefined;
  /** A copy of it was in flight when a connection broke: it may have been applied. */
  maybeApplied: boolean;
}

const isRead = (op: WireFop): boolean => READ_FOPS.has(op as ClientFop);

/** A watch request (RemoteWatches sends it through request(), outside WireFop's type). */
const isWatchRequest = (p: Pending): boolean => (p.op as string) === 'watch';

/** Ops whose success proves the server's master holds the lock (a serializable read does not). */
const HOLDER_FOPS: ReadonlySet<WireFop> = new Set(['put', 'delete', 'txn', 'compact', 'sessionOpen', 'keepalive', 'sessionClose']);
function answeredByHolder(p: Pending): boolean {
  if (HOLDER_FOPS.has(p.op)) return true;
  if (p.op !== 'get' && p.op !== 'range') return false;
  return (p.args as { consistency?: unknown } | undefined)?.consistency !== 'serializable';
}

/** Pauses between not-holder moves once a move found no holder: doubling, jittered to [¾, 1]. */
const NOT_HOLDER_PAUSE_MIN_MS = 50;
const NOT_HOLDER_PAUSE_MAX_MS = 200;

function decodeBrickResult(op: BrickFop, r: unknown): unknown {
  switch (op) {
    case 'probe':
      return decodeProbeResult(r);
    case 'lock':
      return decodeLockResult(r);
    case 'append':
      return decodeAppendResult(r);
    case 'fetch':
      return decodeFetchResult(r);
    case 'snapshotChunk':
      return decodeSnapshotChunkResult(r);
  }
}

/**
 * Requests waiting to be sent, oldest first. Removal from the middle (a deadline) is lazy: the
 * request is marked done and skipped when it comes up, so every operation is O(1) amortised.
 */
class WaitQueue {
  private items: Pending[] = [];
  private head = 0;
  /** Requests in the queue not yet done. */
  live = 0;

  push(p: Pending): void {
    this.items.push(p);
    this.live++;
  }

  /** Puts requests back at the front, ahead of everything waiting (they are older). */
  unshift(ps: readonly Pending[]): void {
    this.items = [...ps, ...this.items.slice(this.head)];
    this.head = 0;
    this.live += ps.length;
  }

  /** Puts a request back in creation order among those waiting (to be sent again). */
  requeue(p: Pending): void {
    let at = this.head;
    while (at < this.items.length && (this.items[at] as Pending).seq < p.seq) at++;
    this.items.splice(at, 0, p);
    this.live++;
  }

  /** The oldest request not done, or undefined. */
  shift(): Pending | undefined {
    while (this.head < this.items.length) {
      const p = this.items[this.head++] as Pending;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (!p.done) {
        this.live--;
        return p;
      }
    }
    return undefined;
  }

  /** A waiting request was settled where it stands. */
  removed(): void {
    this.live--;
  }

  drain(): Pending[] {
    const out = this.items.slice(this.head).filter((p) => !p.done);
    this.items = [];
    this.head = 0;
    this.live = 0;
    return out;
  }
}

/** The error of a watch push that ends its stream `moved`, if it is one (read before any check: a light look). */
function movedEnd(body: unknown): CoordError | undefined {
  const b = body as { kind?: unknown; error?: { code?: unknown; message?: unknown } } | null;
  if (b === null || typeof b !== 'object' || b.kind !== 'end' || typeof b.error !== 'object' || b.error === null || b.error.code !== 'moved') return undefined;
  return coordError('moved', typeof b.error.message === 'string' ? b.error.message : 'the watch moved');
}

/** Refusals that another try at the same server would get again. */
const DEFINITIVE = new Set(['auth-failed', 'wrong-volume', 'protocol-error']);

export class ProtocolClientTranslator extends Translator implements LinkHandler {
  private readonly pushHandlers = new Map<number, (body: unknown) => void>();
  private readonly o: Values;
  /** The servers tried in turn: the volfile's, until a master pushes the volume's masters (DESIGN §8). */
  private servers: readonly Address[];
  private readonly membersListeners = new Set<(m: MembersPush) => void>();
  private readonly random: Random;
  private secret: Uint8Array | undefined;
  private tls: ConnectionOptions | undefined;
  /** The connection being made or in use; `open` once its handshake is done. */
  private link: Link | undefined;
  private open = false;

  /** A connection is open now: a request sent would leave at once (cluster/replicate forwards only then). */
  get connected(): boolean {
    return this.open && this.link !== undefined;
  }
  /** The server of `link`: an index into `servers`. */
  private currentServer = 0;
  /** Connections left after a not-holder move, with their requests still in flight; each closes when they are answered. */
  private readonly draining = new Map<Link, number>();
  /** not-holder moves since a server last answered as holder. */
  private notHolderStreak = 0;
  /** A move in this streak went straight to the holder an error named. */
  private hintTaken = false;
  /** `moved` moves since a watch was last taken on the current connection. */
  private movedStreak = 0;
  /** The volume of the first server that let us in: later servers must serve the same. */
  private volumeIdV: string | undefined;
  private nextServer = 0;
  /** Failed connection attempts since the last open one (the backoff exponent). */
  private failures = 0;
  /** Why the last attempts failed, newest last (at most one per server). */
  private recentErrors: CoordError[] = [];
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly waiting = new WaitQueue();
  private readonly inFlight = new Map<number, Pending>();
  private nextId = 1;
  private nextSeq = 1;
  private openWaiters: { resolve: () => void; reject: (e: CoordError) => void }[] = [];
  private readonly stats = { connects: 0, opens: 0, requests: 0, retried: 0, indeterminate: 0, brickRequests: 0, notHolderMoves: 0, notHolderRetries: 0, movedMoves: 0 };
  private readonly watches: RemoteWatches;

  constructor(spec: TranslatorSpec, private readonly deps: ProtocolClientDeps = {}) {
    super(spec);
    this.o = spec.options as unknown as Values;
    const remote = this.o.remote;
    if (remote === undefined) throw coordError('volfile-invalid', `volume ${this.name}: protocol/client needs option remote (host:port …)`);
    this.servers = parseAddressList(remote, `volume ${this.name}: option remote`, 'volfile-invalid');
    // A link to one brick's master must stay on it: only a client of the volume follows the members.
    if (this.o['follow-members']) this.pushHandlers.set(MEMBERS_STREAM, (body) => this.membersPushed(body));
    this.random = deps.random ?? Math.random;
    for (const op of CLIENT_FOPS) this.handlers[op] = ((ctx: FopContext, args: FopArgs<typeof op>) => this.request(op, ctx, args)) as never;
    for (const op of BRICK_FOPS) this.handlers[op] = ((ctx: FopContext, args: FopArgs<typeof op>) => this.brickRequest(op, ctx, args)) as never;
    this.handlers.statedump = async (ctx) => {
      const own: TranslatorDump = { name: this.name, type: this.type, state: this.dump() };
      return [own, ...(await this.request('statedump', ctx, {}))];
    };
    this.watches = new RemoteWatches({
      // A watch request is not a read: after a broken connection it fails rather than going out
      // again, and the library starts the watch anew from the rev its stream got to.
      request: (op, ctx, args) => this.request(op as never, ctx, args as never),
      onPush: (stream, handler) => this.onPush(stream, handler),
      backlogBytesMax: watchBacklogBytesMax,
    });
    this.handlers.watch = (ctx, args) => this.watches.watch(ctx, args);
    this.handlers.unwatch = (ctx, args) => this.watches.unwatch(ctx, args);
  }

  /** The volume id of the servers, once a connection has opened. */
  get volumeId(): string | undefined {
    return this.volumeIdV;
  }

  get isOpen(): boolean {
    return this.open;
  }

  override async init(): Promise<void> {
    const given = [this.deps.secret, this.o.secret, this.o['secret-file']].filter((x) => x !== undefined).length;
    if (given !== 1) throw coordError('invalid-argument', `volume ${this.name}: give exactly one of secret or secret-file`);
    this.secret = this.deps.secret !== undefined
      ? secretKey(this.deps.secret, this.name)
      : this.o.secret !== undefined
        ? secretKey(this.o.secret, `volume ${this.name}: option secret`)
        : loadSecretFile(resolve(this.env.baseDir, this.o['secret-file'] as string), false);
    this.tls = this.deps.tls ?? (this.o.tls || this.o['tls-ca'] !== undefined ? this.tlsOptions() : undefined);
    this.volumeIdV = this.o['expect-volume-id'];
    await super.init();
    this.connectNext();
  }

  private tlsOptions(): ConnectionOptions {
    const ca = this.o['tls-ca'];
    if (ca === undefined) return {};
    const path = resolve(this.env.baseDir, ca);
    try {
      return { ca: readFileSync(path) };
    } catch (e) {
      throw coordError('volfile-invalid', `volume ${this.name}: option tls-ca: cannot read ${path}: ${(e as Error).message}`);
    }
  }

  /**
   * Resolves once a connection is open. Rejects at the deadline (`unavailable`, naming the last
   * failure), or sooner when every server refused for good (auth-failed, wrong-volume, …).
   */
  whenOpen(deadlineMs: number): Promise<void> {
    if (this.open) return Promise.resolve();
    if (this.stopping) return Promise.reject(coordError('closed', `${this.name} is closed`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.openWaiters = this.openWaiters.filter((w) => w !== waiter);
        reject(this.unavailable('no server could be reached in time'));
      }, Math.max(0, deadlineMs - this.env.clock.nowMs()));
      const waiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e: CoordError) => (clearTimeout(timer), reject(e)),
      };
      this.openWaiters.push(waiter);
    });
  }

  // ---- requests

  private request<F extends ClientFop>(op: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
    if (this.stopping) return Promise.reject(coordError('closed', `${this.name} is closed`));
    this.stats.requests++;
    const deadlineMs = ctx.deadlineMs ?? this.env.clock.nowMs() + this.o['request-timeout-ms'];
    return new Promise<FopResult<F>>((resolve, reject) => {
      const p = this.pending(op, args, deadlineMs, resolve as (r: unknown) => void, reject, false, ORIGIN_FOPS.has(op) ? ctx.origin : undefined);
      if (this.open && this.waiting.live === 0 && this.inFlight.size < connectionRequestsMax) return this.send(p);
      if (this.waiting.live >= clientPendingRequestsMax) {
        return this.settle(p, this.unavailable(`${this.waiting.live} requests are already waiting`));
      }
      this.waiting.push(p);
    });
  }

  /** A brick fop: sent now on the open connection, or failed now; never sent again. */
  private brickRequest<F extends BrickFop>(op: F, ctx: FopContext, args: FopArgs<F>): Promise<FopResult<F>> {
    if (this.stopping) return Promise.reject(coordError('closed', `${this.name} is closed`));
    this.stats.brickRequests++;
    if (!this.open) return Promise.reject(this.unavailable(`no open connection for ${op}`));
    const deadlineMs = ctx.deadlineMs ?? this.env.clock.nowMs() + this.o['request-timeout-ms'];
    // Past the server's connection cap too: brick fops are few (a heartbeat per lease/3, a
    // couple of batches), and one that waited for a slot would arrive late.
    return new Promise<unknown>((resolve, reject) => this.send(this.pending(op, args, deadlineMs, resolve, reject, true)))
      .then((r) => decodeBrickResult(op, r) as FopResult<F>);
  }

  private pending(op: WireFop, args: unknown, deadlineMs: number, resolve: (r: unknown) => void, reject: (e: CoordError) => void, brick: boolean, origin?: Origin): Pending {
    const p: Pending = {
      op, args, deadlineMs, resolve, reject, seq: this.nextSeq++, brick, timer: undefined, id: undefined, link: undefined, lastError: undefined, done: false,
      origin, maybeApplied: false,
    };
    p.timer = setTimeout(() => this.expire(p), Math.max(0, deadlineMs - this.env.clock.nowMs()));
    return p;
  }

  private send(p: Pending): void {
    const link = this.link;
    assert(this.open && link !== undefined, 'send on an open connection');
    const id = this.nextId++;
    p.id = id;
    p.link = link;
    this.inFlight.set(id, p);
    const timeoutMs = Math.max(1, Math.ceil(p.deadlineMs - this.env.clock.nowMs()));
    try {
      const o = p.origin;
      link.send(o === undefined ? { type: 'request', id, op: p.op, args: p.args, timeoutMs } : { type: 'request', id, op: p.op, args: p.args, timeoutMs, origin: [o.clientId, o.seq, o.ackedSeq] });
    } catch (e) {
      // Not encodable, or over the message cap: nothing was sent.
      this.inFlight.delete(id);
      p.id = undefined;
      p.link = undefined;
      this.settle(p, e as CoordError);
    }
  }

  /**
   * The deadline passed: waiting → its last refusal (not-holder), else unavailable; in flight →
   * timeout (a read or brick fop) or indeterminate (a write).
   */
  private expire(p: Pending): void {
    p.timer = undefined;
    if (p.id !== undefined) {
      const link = p.link;
      this.inFlight.delete(p.id);
      p.id = undefined;
      p.link = undefined;
      if (p.brick || isRead(p.op)) this.settle(p, coordError('timeout', `no answer to ${p.op} by its deadline`));
      else {
        this.stats.indeterminate++;
        this.settle(p, coordError('indeterminate', `no answer to ${p.op} by its deadline: it may or may not have been applied`));
      }
      this.answeredOn(link);
      return this.pump();
    }
    this.waiting.removed();
    this.settle(p, p.lastError ?? (this.open ? coordError('timeout', `${p.op} waited for a slot among ${connectionRequestsMax} in flight past its deadline`) : this.unavailable(`no connection for ${p.op} by its deadline`)));
  }

  /** Sends waiting requests while the connection is open and has room. */
  private pump(): void {
    while (this.open && this.inFlight.size < connectionRequestsMax) {
      const p = this.waiting.shift();
      if (p === undefined) return;
      this.send(p);
    }
  }

  private settle(p: Pending, outcome: CoordError | { ok: unknown }): void {
    if (p.timer !== undefined) clearTimeout(p.timer);
    p.timer = undefined;
    p.done = true;
    if ('ok' in outcome) p.resolve(outcome.ok);
    else p.reject(outcome);
  }

  private unavailable(why: string): CoordError {
    const last = this.recentErrors.at(-1);
    const servers = this.servers.map(formatAddress).join(', ');
    return coordError('unavailable', `${why} (servers: ${servers}${last ? `; last: ${last.code}: ${last.message}` : ''})`, last ? { lastError: last.code } : {});
  }

  // ---- connections

  private connectNext(): void {
    this.reconnectTimer = undefined;
    if (this.stopping) return;
    this.currentServer = this.nextServer % this.servers.length;
    const addr = this.servers[this.currentServer] as Address;
    this.nextServer = (this.currentServer + 1) % this.servers.length;
    this.stats.connects++;
    const peer = formatAddress(addr);
    const conn = new Connection({
      role: 'client',
      secret: this.secret as Uint8Array,
      nonce: randomBytes(NONCE_BYTES),
      ...(this.volumeIdV !== undefined ? { expectVolumeId: this.volumeIdV } : {}),
      handshakeTimeoutMs: this.o['handshake-timeout-ms'],
      pingMs: this.o['ping-ms'],
      pingTimeoutMs: this.o['ping-timeout-ms'],
    }, this.env.clock.nowMs());
    let socket: Socket;
    if (this.tls) {
      socket = tlsConnect({ ...this.tls, host: addr.host, port: addr.port, ...(this.tls.servername === undefined && !/^[\d.:]+$/.test(addr.host) ? { servername: addr.host } : {}) });
    } else {
      socket = tcpConnect({ host: addr.host, port: addr.port });
    }
    const link = new Link(socket, conn, peer, this.env.clock, this);
    this.link = link;
    socket.once(this.tls ? 'secureConnect' : 'connect', () => link.connected());
  }

  opened(link: Link, volumeId: string): void {
    if (link !== this.link) return;
    this.open = true;
    this.stats.opens++;
    this.volumeIdV ??= volumeId;
    this.failures = 0;
    this.recentErrors = [];
    for (const w of this.openWaiters.splice(0)) w.resolve();
    // Waiting requests go out in the order they were made (retried reads first: they are older).
    this.pump();
  }

  /**
   * Receives the pushes of `stream` on the current connection (watches use this). A push for a
   * stream nobody listens to is dropped; a broken connection ends every stream (its owner
   * resumes it on the next one, from what it has seen).
   */
  /** Calls `f` with each masters list a master pushes (a plain peer rewrites its client volfile from it). */
  onMembers(f: (m: MembersPush) => void): () => void {
    this.membersListeners.add(f);
    return () => void this.membersListeners.delete(f);
  }

  /** The servers this client tries now (host:port). */
  get serverList(): readonly string[] {
    return this.servers.map(formatAddress);
  }

  /**
   * A master's list of the volume's masters: tried from now on, the server in use kept at its
   * place. A list that does not parse, is empty, or names another volume is ignored.
   */
  private membersPushed(body: unknown): void {
    const b = body as Partial<MembersPush> | null;
    if (typeof b !== 'object' || b === null || !Array.isArray(b.masters) || b.masters.length === 0 || typeof b.volumeId !== 'string' || typeof b.rev !== 'number') return;
    if (this.volumeIdV !== undefined && b.volumeId !== this.volumeIdV) return;
    let list: Address[];
    try {
      list = b.masters.map((m) => parseAddress(String(m), 'pushed masters'));
    } catch {
      return;
    }
    const current = this.servers[this.currentServer];
    const at = current === undefined ? -1 : list.findIndex((a) => formatAddress(a) === formatAddress(current));
    this.servers = list;
    this.currentServer = Math.max(0, at);
    this.nextServer = (this.currentServer + 1) % list.length;
    const m: MembersPush = { volumeId: b.volumeId, rev: b.rev, masters: list.map(formatAddress) };
    for (const f of this.membersListeners) f(m);
  }

  onPush(stream: number, handler: (body: unknown) => void): () => void {
    this.pushHandlers.set(stream, handler);
    return () => void this.pushHandlers.delete(stream);
  }

  deliver(link: Link, msg: AppMessage): void {
    if (msg.type === 'push') {
      // A connection left behind by a move: its streams ended when it was left.
      if (link !== this.link) return;
      // One push may serve several streams of this connection (watch events shared: `also`).
      this.pushHandlers.get(msg.stream)?.(msg.body);
      const also = (msg.body as { also?: unknown } | null)?.also;
      if (Array.isArray(also)) for (const s of also) if (typeof s === 'number') this.pushHandlers.get(s)?.(msg.body);
      // The stream ended `moved` (its sink has heard why): the server's other watches go too.
      const moved = movedEnd(msg.body);
      if (moved !== undefined && this.canMoveFrom(link)) this.movedFrom(link, moved);
      return;
    }
    if (msg.type !== 'response') return;
    const p = this.inFlight.get(msg.id);
    if (!p || p.link !== link) return; // answered after its deadline: the caller has its error already
    this.inFlight.delete(msg.id);
    p.id = undefined;
    p.link = undefined;
    // Before a move below: the connection it leaves counts only the requests still in flight.
    this.answeredOn(link);
    if (!msg.ok && msg.error.code === 'not-holder' && !p.brick && this.servers.length > 1 && !this.stopping) {
      this.notHolder(link, p, fromWireError(msg.error));
    } else {
      if (msg.ok && link === this.link && answeredByHolder(p)) {
        this.notHolderStreak = 0;
        this.hintTaken = false;
      }
      if (msg.ok && link === this.link && isWatchRequest(p)) this.movedStreak = 0;
      const outcome = msg.ok ? { ok: msg.result } : this.refusal(p, fromWireError(msg.error));
      this.settle(p, outcome);
      // A watch refused `moved`: the caller hears it, and the connection goes to another server.
      if ('code' in outcome && outcome.code === 'moved' && isWatchRequest(p) && this.canMoveFrom(link)) this.movedFrom(link, outcome);
    }
    if (this.waiting.live > 0) this.pump();
  }

  /**
   * A refusal as the caller hears it. A retried write refused because its client session ended
   * (session-expired naming the clientId) says nothing of the copy that may have been applied
   * before the break: its outcome is unknown.
   */
  private refusal(p: Pending, e: CoordError): CoordError {
    if (e.code !== 'session-expired' || !p.maybeApplied || p.origin === undefined || e.details['clientId'] !== p.origin.clientId) return e;
    this.stats.indeterminate++;
    return coordError('indeterminate', `${p.op} was retried after a broken connection, but the client's session ${p.origin.clientId} ended first: it may or may not have been applied`, { clientId: p.origin.clientId });
  }

  /**
   * `p` was refused not-holder on `link`: nothing was applied. It waits to go out again, and the
   * connection moves to another server (unless it has already moved away from `link`).
   */
  private notHolder(link: Link, p: Pending, err: CoordError): void {
    p.lastError = err;
    this.stats.notHolderRetries++;
    this.waiting.requeue(p);
    if (link === this.link && this.open) this.moveFrom(link, err);
  }

  /**
   * Leaves `link` for the server `err` names as holder (when listed), else the next one. Requests
   * in flight on `link` are answered there; it closes once they are. Its watch streams end now
   * (the library starts them again on the new connection).
   */
  private moveFrom(link: Link, err: CoordError): void {
    this.stats.notHolderMoves++;
    this.notHolderStreak++;
    const hinted = this.hintedServer(err);
    let pauseMs = 0;
    if (hinted !== undefined && !this.hintTaken) this.hintTaken = true;
    else pauseMs = this.movePauseMs(this.notHolderStreak);
    this.leave(link, hinted ?? (this.currentServer + 1) % this.servers.length, pauseMs, `moved from ${link.peer}, whose master does not hold the volume lock`, err);
  }

  /** `link` is the open connection, there is another server to go to, and the client is not closing. */
  private canMoveFrom(link: Link): boolean {
    return link === this.link && this.open && this.servers.length > 1 && !this.stopping;
  }

  /** A watch on `link` was refused or ended `moved`: the connection goes to the next server. */
  private movedFrom(link: Link, err: CoordError): void {
    this.stats.movedMoves++;
    this.movedStreak++;
    this.leave(link, (this.currentServer + 1) % this.servers.length, this.movePauseMs(this.movedStreak), `moved from ${link.peer}, whose brick has not heard from a holder`, err);
  }

  /** The pause before the `streak`-th move in a row: none for the first, then about 50, 100, 200 ms. */
  private movePauseMs(streak: number): number {
    if (streak <= 1) return 0;
    const base = Math.min(NOT_HOLDER_PAUSE_MAX_MS, NOT_HOLDER_PAUSE_MIN_MS * 2 ** Math.min(streak - 2, 30));
    return Math.round(base * (0.75 + this.random() / 4));
  }

  /** Leaves the open connection `link` for server `next` after `pauseMs`; see moveFrom. */
  private leave(link: Link, next: number, pauseMs: number, why: string, err: CoordError): void {
    this.nextServer = next;
    this.link = undefined;
    this.open = false;
    let left = 0;
    for (const q of this.inFlight.values()) if (q.link === link) left++;
    if (left > 0) this.draining.set(link, left);
    else link.close(coordError('closed', `moved to another server: ${err.message}`));
    this.watches.connectionLost(coordError('unavailable', why));
    this.reconnectTimer = setTimeout(() => this.connectNext(), pauseMs);
  }

  /** The listed server a not-holder error names as holder (not the current one), if any. */
  private hintedServer(err: CoordError): number | undefined {
    const h = err.details['holder'];
    if (typeof h !== 'string') return undefined;
    let want: string;
    try {
      want = formatAddress(parseAddress(h, 'holder'));
    } catch {
      return undefined;
    }
    const i = this.servers.findIndex((a) => formatAddress(a) === want);
    return i < 0 || i === this.currentServer ? undefined : i;
  }

  /** A request in flight on `link` was settled: a connection left by a move closes after its last. */
  private answeredOn(link: Link | undefined): void {
    if (link === undefined) return;
    const left = this.draining.get(link);
    if (left === undefined) return;
    if (left > 1) return void this.draining.set(link, left - 1);
    this.draining.delete(link);
    link.close(coordError('closed', 'moved to another server'));
  }

  closed(link: Link, why: CoordError): void {
    if (link !== this.link) {
      // A connection left by a move: what was still in flight on it is handled as on any break.
      this.draining.delete(link);
      this.failInFlight(link, why);
      if (this.waiting.live > 0) this.pump();
      return;
    }
    const wasOpen = this.open;
    this.link = undefined;
    this.open = false;
    this.failInFlight(link, why);
    if (this.stopping) this.watches.close(why);
    else this.watches.connectionLost(why);
    if (this.stopping) return;
    if (!wasOpen) {
      this.failures++;
      this.recentErrors = [...this.recentErrors, why].slice(-this.servers.length);
      this.refuseIfDefinitive();
    }
    const delay = wasOpen ? Math.round(this.o['reconnect-min-ms'] * this.random()) : this.backoffMs();
    this.reconnectTimer = setTimeout(() => this.connectNext(), delay);
  }

  /**
   * In-flight requests of a broken connection: reads and writes with an origin go back to wait
   * for the next one (the holder answers a retried origin from its stored result), other writes
   * fail indeterminate, brick fops unavailable.
   */
  private failInFlight(link: Link, why: CoordError): void {
    const retry: Pending[] = [];
    for (const [id, p] of this.inFlight) {
      if (p.link !== link) continue;
      this.inFlight.delete(id);
      p.id = undefined;
      p.link = undefined;
      const broke = `the connection to ${link.peer} broke before ${p.op} was answered (${why.code}: ${why.message})`;
      if (p.brick) {
        this.settle(p, this.stopping ? coordError('closed', `${this.name} is closed`) : coordError('unavailable', broke, { lastError: why.code }));
      } else if (isRead(p.op) || (p.origin !== undefined && this.o['resend-writes'])) {
        if (p.origin !== undefined) p.maybeApplied = true;
        retry.push(p);
        this.stats.retried++;
      } else if (p.origin !== undefined) {
        // Its caller sends it again elsewhere with the same origin (a forward, re-routed).
        this.settle(p, coordError('unavailable', `${broke}; it carries its origin, so it may be sent again`, { lastError: why.code }));
      } else {
        this.stats.indeterminate++;
        this.settle(p, coordError('indeterminate', `the connection broke before ${p.op} was answered (${why.code}: ${why.message}): it may or may not have been applied`));
      }
    }
    this.waiting.unshift(retry);
  }

  /** Every server refused for good in the last pass: those waiting for an open connection hear why. */
  private refuseIfDefinitive(): void {
    const errs = this.recentErrors;
    if (errs.length < this.servers.length || !errs.every((e) => DEFINITIVE.has(e.code))) return;
    const e = errs.at(-1) as CoordError;
    for (const w of this.openWaiters.splice(0)) w.reject(e);
  }

  /** Doubles from reconnect-min-ms to reconnect-max-ms, each pause jittered to [½, 1] of it. */
  private backoffMs(): number {
    const base = Math.min(this.o['reconnect-max-ms'], this.o['reconnect-min-ms'] * 2 ** Math.min(this.failures - 1, 30));
    return Math.round(base * (0.5 + this.random() / 2));
  }

  override dump(): Readonly<Record<string, unknown>> {
    return {
      servers: this.servers.map(formatAddress),
      tls: this.tls !== undefined,
      state: this.link === undefined ? 'reconnecting' : this.open ? 'open' : 'connecting',
      server: this.link?.peer ?? null,
      volumeId: this.volumeIdV ?? null,
      waiting: this.waiting.live,
      inFlight: this.inFlight.size,
      draining: this.draining.size,
      notHolderStreak: this.notHolderStreak,
      movedStreak: this.movedStreak,
      failures: this.failures,
      lastError: this.recentErrors.at(-1)?.message ?? null,
      ...this.stats,
      watches: this.watches.dump(),
    };
  }

  override async fini(): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    const bye = coordError('closed', `${this.name} is closed`);
    const links = [...(this.link ? [this.link] : []), ...this.draining.keys()];
    // Closing a link fails its in-flight writes indeterminate and queues its reads, which,
    // with everything else still waiting, are refused below.
    for (const link of links) link.close(bye);
    for (const w of this.openWaiters.splice(0)) w.reject(bye);
    for (const p of this.waiting.drain()) this.settle(p, bye);
    this.watches.close(bye);
    if (links.length > 0) {
      await Promise.race([Promise.all(links.map((l) => l.socketClosed)), new Promise((r) => setTimeout(r, 1_000).unref())]);
      for (const link of links) link.destroy();
    }
    await super.fini();
  }
}

export const protocolClientClass: TranslatorClass = {
  type: 'protocol/client',
  options,
  subvolumes: { min: 0, max: 0 },
  create: (spec) => new ProtocolClientTranslator(spec),
};
