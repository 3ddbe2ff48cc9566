// Leader election, as etcd's concurrency.Election offers it:
//
//   const e = election(vol, 'scheduler', { ttlMs: 5_000 });
//   const term = await e.campaign('node-1:7000');   // resolves once this candidate leads
//   void term.lost.then((why) => stepDown(why));     // the session ended or the key went
//   ...
//   await e.resign();
//
//   for await (const kv of election(vol, 'scheduler').observe()) console.log('leader', kv.value);
//
// Candidates queue under `/_elections/<name>/` exactly as lock contenders do (queue.ts): the
// leader is the candidate with the lowest createRev, its key's value is the leader's value, and
// a waiting candidate watches only its predecessor's delete. Observers need no session.
import { coordError, type CoordError } from '../../common/errors.js';
import type { Rev } from '../../common/ids.js';
import type { KeyValue } from '../../../translators/fops.js';
import { toBytes } from '../codec.js';
import type { Session } from '../session.js';
import type { Volume } from '../volume.js';
import { readAll, type Watcher } from '../watch.js';
import { Holding } from './holding.js';
import { checkRecipeName, dequeue, enqueue, head, queueKey, waitHead } from './queue.js';

/** Where elections keep their candidates: visible to `coordvol kv ls /_elections/`. */
export const ELECTIONS_PREFIX = '/_elections/';
export const ELECTION_TTL_MS_DEFAULT = 10_000;

export interface ElectionOpts {
  /** The ttl of the session each campaign opens for itself (default 10 s). Not with `session`. */
  readonly ttlMs?: number;
  /** Campaign under this session instead (it stays open after resign). */
  readonly session?: Session;
}

/** This candidate's time as leader. */
export interface Term {
  /** The leader's key, `/_elections/<name>/<session>-<random>`. */
  readonly key: string;
  /** The key's createRev: strictly increasing from one leader of this election to the next. */
  readonly rev: Rev;
  readonly session: Session;
  /** Resolves with the reason if the leadership is lost (not after resign()). */
  readonly lost: Promise<CoordError>;
  readonly isLost: boolean;
}

/** Leader changes: an async iterable of the leader's kv, ended by cancel() or `break`. */
export interface LeaderObserver extends AsyncIterable<KeyValue> {
  cancel(): Promise<void>;
}

export interface Election {
  readonly name: string;
  /** Joins the candidates with `value` and resolves once this candidate leads. One campaign at a time. */
  campaign(value: string | Uint8Array, opts?: { readonly signal?: AbortSignal }): Promise<Term>;
  /** The leader changes its value without an election (fails `not-found` if it no longer leads). */
  proclaim(value: string | Uint8Array): Promise<void>;
  /** The current leader's kv (its value is the leader's value), or undefined if there is none. */
  leader(): Promise<KeyValue | undefined>;
  /** The leader now (if any), then each new leader or new value of the leader. */
  observe(): LeaderObserver;
  /** Leaves the election (or stops a campaign still waiting): the next candidate leads. */
  resign(): Promise<void>;
}

export function election(vol: Volume, name: string, opts: ElectionOpts = {}): Election {
  checkRecipeName('election', name);
  if (opts.session !== undefined && opts.ttlMs !== undefined) throw coordError('invalid-argument', 'election: give ttlMs or session, not both (the ttl is the session’s)');
  return new VolumeElection(vol, name, opts);
}

interface LeaderTerm extends Term {
  readonly holding: Holding;
}

interface Campaign {
  readonly abort: AbortController;
  /** Settles once campaign() has (its cleanup included). */
  settled: Promise<void>;
  term?: LeaderTerm;
}

class VolumeElection implements Election {
  private readonly prefix: string;
  /** Set from the start of a campaign until resign(). */
  private campaigning: Campaign | undefined;

  constructor(
    private readonly vol: Volume,
    readonly name: string,
    private readonly opts: ElectionOpts,
  ) {
    this.prefix = `${ELECTIONS_PREFIX}${name}/`;
  }

  campaign(value: string | Uint8Array, o: { readonly signal?: AbortSignal } = {}): Promise<Term> {
    if (this.campaigning && !this.campaigning.term?.isLost) return Promise.reject(coordError('invalid-argument', `already campaigning in election ${this.name}: resign first`));
    const run: Campaign = { abort: new AbortController(), settled: Promise.resolve() };
    this.campaigning = run;
    const p = this.run(run, toBytes(value), o.signal);
    run.settled = p.then(() => undefined, () => undefined);
    return p;
  }

  private async run(run: Campaign, value: Uint8Array, signal: AbortSignal | undefined): Promise<Term> {
    const stop = (): void => run.abort.abort(signal?.reason);
    signal?.addEventListener('abort', stop, { once: true });
    const own = this.opts.session === undefined;
    let session: Session | undefined;
    let key: string | undefined;
    try {
      signal?.throwIfAborted();
      if (this.opts.session?.isLost) throw await this.opts.session.lost;
      session = this.opts.session ?? (await this.vol.openSession({ ttlMs: this.opts.ttlMs ?? ELECTION_TTL_MS_DEFAULT }));
      key = queueKey(this.prefix, session);
      const me = await enqueue(this.vol, key, session, value, run.abort.signal);
      const heldAt = await waitHead(this.vol, this.prefix, me, session, run.abort.signal);
      const holding = new Holding(this.vol, me.key, heldAt, session, own);
      const term: LeaderTerm = {
        key: me.key,
        rev: me.createRev,
        session,
        holding,
        lost: holding.lost,
        get isLost() {
          return holding.isLost;
        },
      };
      run.term = term;
      return term;
    } catch (e) {
      if (this.campaigning === run) this.campaigning = undefined;
      // Leave no candidate behind: it would lead, or block the others, with nobody behind it.
      if (session && own) await session.close().catch(() => undefined);
      else if (session && key !== undefined) await dequeue(this.vol, session, key).catch(() => undefined);
      throw e;
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  async proclaim(value: string | Uint8Array): Promise<void> {
    const term = this.campaigning?.term;
    if (term === undefined) throw coordError('invalid-argument', `not the leader of election ${this.name}: campaign first`);
    const r = await this.vol.txn({
      compare: [{ key: term.key, target: 'createRev', op: '=', value: term.rev }],
      success: [{ op: 'put', key: term.key, value: toBytes(value), session: term.session.id }],
      failure: [],
    });
    if (!r.succeeded) throw coordError('not-found', `no longer the leader of election ${this.name}: ${term.key} is gone`, { key: term.key });
  }

  async leader(): Promise<KeyValue | undefined> {
    return head((await readAll(this.vol, { prefix: this.prefix })).kvs);
  }

  observe(): LeaderObserver {
    return new Observer(this.vol, this.prefix);
  }

  async resign(): Promise<void> {
    const run = this.campaigning;
    if (run === undefined) return;
    this.campaigning = undefined;
    if (run.term) return run.term.holding.release();
    // Still waiting: campaign() sees the abort, removes its key and rejects.
    run.abort.abort(coordError('closed', `resigned from election ${this.name} before leading`));
    await run.settled;
  }
}

class Observer implements LeaderObserver {
  private cancelled = false;
  private started = false;
  private watcher: Watcher | undefined;

  constructor(
    private readonly vol: Volume,
    private readonly prefix: string,
  ) {}

  async cancel(): Promise<void> {
    this.cancelled = true;
    await this.watcher?.cancel();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<KeyValue, void, undefined> {
    if (this.started) throw coordError('invalid-argument', 'an observer is iterated once (call observe() again)');
    this.started = true;
    const { rev, kvs } = await readAll(this.vol, { prefix: this.prefix });
    if (this.cancelled) return;
    // Every candidate's kv: the leader is the one with the lowest createRev.
    const view = new Map(kvs.map((kv) => [kv.key, kv]));
    let shown = head(kvs);
    if (shown) yield shown;
    // resync: after a compaction the watch hands over the whole prefix instead of failing.
    const watcher = this.vol.watch(this.prefix, { fromRev: rev + 1, resync: true });
    this.watcher = watcher;
    try {
      if (this.cancelled) return;
      for await (const m of watcher) {
        if (m.kind === 'events') {
          for (const e of m.events) {
            if (e.type === 'put') view.set(e.kv.key, e.kv);
            else view.delete(e.kv.key);
          }
        } else if (m.kind === 'resync') {
          view.clear();
          for (const kv of m.kvs) view.set(kv.key, kv);
        } else continue;
        const now = head([...view.values()]);
        if (now !== undefined && (now.key !== shown?.key || now.modRev !== shown.modRev)) yield now;
        shown = now;
      }
    } finally {
      await watcher.cancel();
    }
  }
}
