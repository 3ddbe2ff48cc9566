// The Volume interface: what a daemon or a tool does with the store, the same whether the volume
// runs in-process (openVolume) or, with the network surfaces, on remote masters.
import { asRev, asSessionId, type Rev } from '../common/ids.js';
import type {
  CompactResult, Compare, DeleteResult, FopContext, FopName, FopArgs, FopResult, GetResult, KeySelector,
  ProfileEntry, PutResult, RangeQuery, RangeResult, StatusResult, TranslatorDump, TxnOp, TxnResult, Consistency,
  CompareOp, CompareTarget, KeyValue, SessionsResult, ConfigChangeResult, PeerInfo, PeerJoinArgs, PeerJoinResult,
} from '../../translators/fops.js';
import type { ConfigChange } from '../../replication/config.js';
import { toBytes } from './codec.js';
import { openSession, type Session, type SessionOpts } from './session.js';
import { TxnBuilder, type CompareValue } from './txn-builder.js';
import { getAndWatch, readAll, startWatch, type Watcher, type WatchOpts } from './watch.js';

export interface ReadOpts {
  /** Read as of an older rev still in history. */
  readonly rev?: number;
  /** Default linearizable; serializable reads never go back in time for this client. */
  readonly consistency?: Consistency;
  /**
   * Serializable reads: the highest rev the caller has seen elsewhere (another process, an HTTP
   * client that carries its own): the read waits for it as for this client's own (DESIGN §3).
   */
  readonly minRev?: number;
}

export type RangeOpts = KeySelector & RangeQuery & ReadOpts;

export interface PutOpts {
  readonly prevKv?: boolean;
  /** A session (or its id): the key is ephemeral, owned by it. */
  readonly session?: Session | number;
  readonly sequential?: boolean;
}

export interface Volume {
  get(key: string, opts?: ReadOpts): Promise<GetResult>;
  /** A prefix (string) or a selector with options. */
  range(q: string | RangeOpts): Promise<RangeResult>;
  /**
   * `session` makes the key ephemeral (it goes when the session ends); `sequential` appends a
   * zero-padded, volume-wide increasing counter to the key (the result's `key` is the final one).
   */
  put(key: string, value: Uint8Array | string, opts?: PutOpts): Promise<PutResult>;
  /** One key (string) or a selector (prefix, or [start, end)). */
  delete(q: string | KeySelector, opts?: { readonly prevKv?: boolean }): Promise<DeleteResult>;
  txn(t: { readonly compare?: readonly Compare[]; readonly success?: readonly TxnOp[]; readonly failure?: readonly TxnOp[] }): Promise<TxnResult>;
  /** Starts a txn with its first compare: `vol.if(k, 'version', '=', 3).then(op.put(k, v)).commit()`. */
  if<T extends CompareTarget>(key: string, target: T, cmp: T extends 'exists' ? '=' | '!=' : CompareOp, value: CompareValue<T>): TxnBuilder;
  /** A txn with no compare (its `then` branch always runs). */
  newTxn(): TxnBuilder;
  compact(rev: number): Promise<CompactResult>;
  /**
   * Changes the volume's membership by one brick (DESIGN §4.7): add a learner, promote a caught-up
   * learner to voter, remove a brick, or set quorum-count. Refused `config-pending` while an
   * earlier change is uncommitted and `learner-behind` until the learner has caught up: retry.
   */
  reconfigure(change: ConfigChange): Promise<ConfigChangeResult>;
  status(): Promise<StatusResult>;
  /** Management (DESIGN §8): the daemon behind the server — its uuid, role, volume, whether it holds anything. */
  peerInfo(): Promise<PeerInfo>;
  /** Management: asks a fresh daemon to discard its single-brick volume and join another (what `peer probe` sends). */
  peerJoin(args: PeerJoinArgs): Promise<PeerJoinResult>;
  statedump(): Promise<readonly TranslatorDump[]>;
  profile(): Promise<readonly ProfileEntry[]>;
  /** The highest rev this client has seen (its serializable reads never go below it). */
  readonly seenRev: Rev;
  /** Opens a session that this client keeps alive (keepalives every ttl/3) until close() or loss. */
  openSession(opts: SessionOpts): Promise<Session>;
  /** Every session of the volume: id, ttl, remaining time, owner, keys owned, active or idle. */
  sessions(): Promise<SessionsResult>;
  /**
   * Events of a prefix (string) or selector in rev order, from `fromRev` (default: the rev after
   * the highest this client has seen, else from now), resumed across broken connections.
   */
  watch(q: string | KeySelector, opts?: WatchOpts): Watcher;
  /** A prefix's keys at one rev R and a watch of it from R + 1. */
  getAndWatch(prefix: string, opts?: { readonly prevKv?: boolean }): Promise<{ rev: Rev; kvs: readonly KeyValue[]; watcher: Watcher }>;
  close(): Promise<void>;
}

/** How a Volume reaches the top of a graph: in-process, or through protocol/client later. */
export type FopCaller = <F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>) => Promise<FopResult<F>>;

/** A Volume over any fop caller. Tracks the revs it sees, for monotonic serializable reads. */
export class FopVolume implements Volume {
  private seen = 0;

  constructor(
    private readonly caller: FopCaller,
    private readonly onClose: () => Promise<void>,
    private readonly timeoutMs = 10_000,
    /** Told of every session the caller opens (exactly-once writes may name the client by it: origins.ts). */
    private readonly onSession?: (s: Session) => void,
  ) {}

  get seenRev(): Rev {
    return asRev(this.seen);
  }

  private ctx(): FopContext {
    return { deadlineMs: performance.now() + this.timeoutMs };
  }

  private saw<T extends { readonly rev: Rev }>(r: T): T {
    if (r.rev > this.seen) this.seen = r.rev;
    return r;
  }

  private readOpts(o: ReadOpts | undefined): { rev?: Rev; consistency?: Consistency; minRev?: Rev } {
    const out: { rev?: Rev; consistency?: Consistency; minRev?: Rev } = {};
    if (o?.rev !== undefined) out.rev = asRev(o.rev);
    if (o?.consistency !== undefined) out.consistency = o.consistency;
    if (o?.consistency === 'serializable') out.minRev = asRev(Math.max(this.seen, o.minRev ?? 0));
    return out;
  }

  async get(key: string, opts?: ReadOpts): Promise<GetResult> {
    return this.saw(await this.caller('get', this.ctx(), opts === undefined ? { key } : { key, ...this.readOpts(opts) }));
  }

  async range(q: string | RangeOpts): Promise<RangeResult> {
    const sel: RangeOpts = typeof q === 'string' ? { prefix: q } : q;
    const { rev: _rev, consistency: _c, minRev: _m, ...rest } = sel;
    return this.saw(await this.caller('range', this.ctx(), { ...rest, ...this.readOpts(sel) } as FopArgs<'range'>));
  }

  async put(key: string, value: Uint8Array | string, opts?: PutOpts): Promise<PutResult> {
    const session = opts?.session === undefined ? undefined : typeof opts.session === 'number' ? opts.session : opts.session.id;
    const args = {
      key,
      value: toBytes(value),
      ...(opts?.prevKv ? { prevKv: true } : {}),
      ...(session !== undefined ? { session: asSessionId(session) } : {}),
      ...(opts?.sequential ? { sequential: true } : {}),
    };
    return this.saw(await this.caller('put', this.ctx(), args));
  }

  async openSession(opts: SessionOpts): Promise<Session> {
    const s = await openSession(this.caller, this.timeoutMs, opts);
    this.onSession?.(s);
    return s;
  }

  async sessions(): Promise<SessionsResult> {
    return this.saw(await this.caller('sessions', this.ctx(), {}));
  }

  async delete(q: string | KeySelector, opts?: { readonly prevKv?: boolean }): Promise<DeleteResult> {
    const sel: KeySelector = typeof q === 'string' ? { key: q } : q;
    return this.saw(await this.caller('delete', this.ctx(), { ...sel, ...(opts?.prevKv ? { prevKv: true } : {}) }));
  }

  async txn(t: { readonly compare?: readonly Compare[]; readonly success?: readonly TxnOp[]; readonly failure?: readonly TxnOp[] }): Promise<TxnResult> {
    return this.saw(await this.caller('txn', this.ctx(), { compare: t.compare ?? [], success: t.success ?? [], failure: t.failure ?? [] }));
  }

  if<T extends CompareTarget>(key: string, target: T, cmp: T extends 'exists' ? '=' | '!=' : CompareOp, value: CompareValue<T>): TxnBuilder {
    return this.newTxn().if(key, target, cmp, value);
  }

  newTxn(): TxnBuilder {
    return new TxnBuilder((t) => this.txn(t));
  }

  async compact(rev: number): Promise<CompactResult> {
    return this.saw(await this.caller('compact', this.ctx(), { rev: asRev(rev) }));
  }

  async reconfigure(change: ConfigChange): Promise<ConfigChangeResult> {
    return this.saw(await this.caller('configChange', this.ctx(), change));
  }

  status(): Promise<StatusResult> {
    return this.caller('status', this.ctx(), {});
  }

  peerInfo(): Promise<PeerInfo> {
    return this.caller('peerInfo', this.ctx(), {});
  }

  peerJoin(args: PeerJoinArgs): Promise<PeerJoinResult> {
    return this.caller('peerJoin', this.ctx(), args);
  }

  statedump(): Promise<readonly TranslatorDump[]> {
    return this.caller('statedump', this.ctx(), {});
  }

  profile(): Promise<readonly ProfileEntry[]> {
    return this.caller('profile', this.ctx(), {});
  }

  watch(q: string | KeySelector, opts?: WatchOpts): Watcher {
    return startWatch({ caller: this.caller, seenRev: this.seenRev, timeoutMs: this.timeoutMs, readAll: (sel) => readAll(this, sel) }, q, opts);
  }

  getAndWatch(prefix: string, opts?: { readonly prevKv?: boolean }): Promise<{ rev: Rev; kvs: readonly KeyValue[]; watcher: Watcher }> {
    return getAndWatch(this, prefix, opts);
  }

  close(): Promise<void> {
    return this.onClose();
  }
}
