// Watches in the client library (DESIGN §6): `vol.watch(prefix)` is an async iterable of
// messages — one per rev that touches the range, progress notifications if asked for, and a
// `resync` snapshot after a compaction when the caller opted in.
//
//   for await (const m of vol.watch('/volumes/', { prevKv: true })) {
//     if (m.kind === 'events') for (const e of m.events) apply(e);
//   }
//
// The stream outlives the watch that serves it: when the serving watch ends for a reason that
// another try can cure (a broken connection, a server going away), the library starts a new one
// from the rev after the last it delivered, so the consumer sees no gap and no duplicate. One
// such end is `moved` (DESIGN §6): the serving brick has not heard from a holder for 2·leaseMs,
// so its log may be behind; over connect() the connection has moved to the next listed server
// (protocol/client), and the watch starts again there after a short pause — with one server (or
// in-process) it tries the same one again after that pause, backing off, until it is cancelled.
// Messages wait in a queue until the consumer takes them; past the backlog cap the serving side
// cancels the watch and the iterator ends with `slow-consumer` after the queued messages.
import { coordError, isCoordError, type CoordError } from '../common/errors.js';
import { asRev, type Rev } from '../common/ids.js';
import { prefixEnd } from '../common/keys.js';
import type { KeySelector, KeyValue, SharedWatchEvent, WatchArgs, WatchEvent, WatchSink } from '../../translators/fops.js';
import type { FopCaller, Volume } from './volume.js';

export type { WatchEvent } from '../../translators/fops.js';

export type WatchMessage =
  | { readonly kind: 'events'; readonly rev: Rev; readonly events: readonly WatchEvent[] }
  /** Every event up to `rev` has been delivered: the consumer's view is that of `rev`. */
  | { readonly kind: 'progress'; readonly rev: Rev }
  /** After `compacted` with resync: the whole watched range at `rev` (absent keys are deleted). */
  | { readonly kind: 'resync'; readonly rev: Rev; readonly kvs: readonly KeyValue[] };

export interface WatchOpts {
  /** The first rev to deliver. Default: the rev after the highest this client has seen, else from now. */
  readonly fromRev?: number;
  readonly prevKv?: boolean;
  /** On `compacted`, read the whole range at the current rev, deliver it as one `resync`, go on after it. */
  readonly resync?: boolean;
  /** Progress notifications while the range is quiet. */
  readonly progress?: boolean;
  /**
   * On `moved` (the serving brick lost touch with the holder), end the stream with it — thrown
   * after the queued messages, `details.cursor` the rev after the last delivered — rather than
   * resume it. For a caller that can send its own consumer elsewhere (the HTTP API).
   */
  readonly endOnMoved?: boolean;
}

export interface Watcher extends AsyncIterable<WatchMessage> {
  /** Stops the watch; the iterator ends (queued messages are dropped). */
  cancel(): Promise<void>;
}

/** Ends of a serving watch that a new watch from the next rev cures (`moved`: on another master, or later). */
const RESUMABLE = new Set(['unavailable', 'timeout', 'indeterminate', 'no-quorum', 'behind', 'moved']);
const RETRY_MS_MIN = 20;
const RETRY_MS_MAX = 2_000;

export interface WatchDeps {
  readonly caller: FopCaller;
  /** The highest rev this client has seen (the default start is the rev after it). */
  readonly seenRev: Rev;
  readonly timeoutMs: number;
  /** Reads the whole selection at one rev (resync). */
  readonly readAll: (sel: KeySelector) => Promise<{ rev: Rev; kvs: readonly KeyValue[] }>;
}

let watcherSeq = 0;

/** One serving watch: the sink handed to the fop. Stale once the stream has moved on from it. */
class Attempt implements WatchSink {
  watchId: number | undefined;
  ended = false;
  /** cancel() stops this watch itself, once it has answered. */
  cancelling = false;
  /** Settles when the watch fop has answered (or failed). */
  ready: Promise<void> = Promise.resolve();
  constructor(private readonly stream: WatchStream) {}
  get owner(): string {
    return this.stream.owner;
  }
  get backlogBytes(): number {
    return this.stream.queuedBytes;
  }
  drained(bytes: number): Promise<void> {
    return this.stream.whenDrained(bytes);
  }
  events(rev: Rev, events: readonly SharedWatchEvent[]): void {
    if (this.current()) this.stream.onEvents(rev, events);
  }
  progress(rev: Rev): void {
    if (this.current()) this.stream.onProgress(rev);
  }
  end(error: CoordError): void {
    if (!this.current()) return;
    this.ended = true;
    this.stream.onEnd(error);
  }
  private current(): boolean {
    return !this.ended && this.stream.attempt === this;
  }
}

interface Queued {
  readonly msg: WatchMessage;
  readonly bytes: number;
}

class WatchStream implements Watcher {
  readonly owner = `watcher ${++watcherSeq}`;
  attempt: Attempt | undefined;
  queuedBytes = 0;
  private readonly queue: Queued[] = [];
  private head = 0;
  /** The next rev the stream must deliver; undefined until the first watch says where "now" is. */
  private next: Rev | undefined;
  private progressRev = 0;
  private state: 'running' | 'failed' | 'done' = 'running';
  private failure: CoordError | undefined;
  private reader: { resolve: (r: IteratorResult<WatchMessage>) => void; reject: (e: unknown) => void } | undefined;
  private drainWaiters: { bytes: number; resolve: () => void }[] = [];
  private retries = 0;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: WatchDeps,
    private readonly sel: KeySelector,
    private readonly opts: WatchOpts,
  ) {
    if (opts.fromRev !== undefined) this.next = asRev(opts.fromRev);
    else if (deps.seenRev > 0) this.next = asRev(deps.seenRev + 1);
    this.open();
  }

  private ctx(): { deadlineMs: number } {
    return { deadlineMs: performance.now() + this.deps.timeoutMs };
  }

  /** Starts a serving watch from `next` (or from now, before the first one answered). */
  private open(): void {
    if (this.state !== 'running') return;
    const att = new Attempt(this);
    this.attempt = att;
    const args: WatchArgs = {
      ...this.sel,
      ...(this.next !== undefined ? { fromRev: this.next } : {}),
      ...(this.opts.prevKv ? { prevKv: true } : {}),
      ...(this.opts.progress ? { progress: true } : {}),
      sink: att,
    };
    att.ready = this.deps.caller('watch', this.ctx(), args).then(
      (r) => {
        att.watchId = r.watchId;
        if (att.cancelling) return;
        if (this.attempt !== att || att.ended) {
          // Ended while the watch was being set up: stop it where it runs.
          this.deps.caller('unwatch', this.ctx(), { watchId: r.watchId }).catch(() => undefined);
          return;
        }
        this.next ??= r.fromRev;
        this.retries = 0;
      },
      (e: unknown) => att.end(isCoordError(e) ? e : coordError('internal', `watch failed: ${String(e)}`)),
    );
  }

  onEvents(rev: Rev, events: readonly SharedWatchEvent[]): void {
    // A serving watch starts at `next` and only goes up: an older rev would be a duplicate, which
    // the stream must never deliver. It is the server's fault, so it ends the stream loudly.
    if (this.next !== undefined && rev < this.next) {
      const att = this.attempt;
      if (att?.watchId !== undefined) this.deps.caller('unwatch', this.ctx(), { watchId: att.watchId }).catch(() => undefined);
      return att?.end(coordError('protocol-error', `the watch sent rev ${rev} after it had reached ${this.next - 1}`));
    }
    let bytes = 0;
    const evs: WatchEvent[] = [];
    for (const e of events) {
      evs.push(e.event);
      bytes += e.sizeBytes;
    }
    this.push({ kind: 'events', rev, events: evs }, bytes);
    this.next = asRev(rev + 1);
  }

  onProgress(rev: Rev): void {
    if (rev < this.progressRev || (this.next !== undefined && rev < this.next - 1)) return;
    this.progressRev = rev;
    this.push({ kind: 'progress', rev }, 16);
    this.next = asRev(Math.max(this.next ?? 0, rev + 1));
  }

  onEnd(e: CoordError): void {
    this.attempt = undefined;
    if (this.state !== 'running') return;
    if (e.code === 'moved' && this.opts.endOnMoved) {
      // The consumer resumes from what it got: the rev after the last delivered (or the server's
      // cursor, before the first watch said where the stream starts).
      return this.fail(coordError('moved', e.message, this.next !== undefined ? { ...e.details, cursor: this.next } : e.details));
    }
    if (RESUMABLE.has(e.code)) return this.retryLater(() => this.open());
    if (e.code === 'compacted' && this.opts.resync) return void this.resync();
    this.fail(e);
  }

  private retryLater(f: () => void): void {
    const base = Math.min(RETRY_MS_MAX, RETRY_MS_MIN * 2 ** Math.min(this.retries, 10));
    this.retries++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      f();
    }, Math.round(base * (0.5 + Math.random() / 2)));
  }

  /** Compacted past the stream: the whole range now, then the stream goes on after it. */
  private async resync(): Promise<void> {
    try {
      const { rev, kvs } = await this.deps.readAll(this.sel);
      if (this.state !== 'running') return;
      let bytes = 0;
      for (const kv of kvs) bytes += kv.key.length + (kv.value?.byteLength ?? 0) + 64;
      this.push({ kind: 'resync', rev, kvs }, bytes);
      this.next = asRev(rev + 1);
      this.progressRev = Math.max(this.progressRev, rev);
      this.open();
    } catch (e) {
      if (this.state !== 'running') return;
      const err = isCoordError(e) ? e : coordError('internal', `resync failed: ${String(e)}`);
      // Compaction may overtake the read itself: read again.
      if (RESUMABLE.has(err.code) || err.code === 'compacted') this.retryLater(() => void this.resync());
      else this.fail(err);
    }
  }

  private push(msg: WatchMessage, bytes: number): void {
    if (this.reader) {
      const r = this.reader;
      this.reader = undefined;
      r.resolve({ value: msg, done: false });
      return;
    }
    this.queue.push({ msg, bytes });
    this.queuedBytes += bytes;
  }

  private fail(e: CoordError): void {
    this.state = 'failed';
    this.failure = e;
    this.stopTimers();
    const r = this.reader;
    this.reader = undefined;
    r?.reject(e);
  }

  whenDrained(bytes: number): Promise<void> {
    if (this.queuedBytes <= bytes || this.state !== 'running') return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ bytes, resolve }));
  }

  private pull(): Promise<IteratorResult<WatchMessage>> {
    if (this.head < this.queue.length) {
      const q = this.queue[this.head] as Queued;
      this.queue[this.head++] = undefined as never;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.queuedBytes -= q.bytes;
      this.wakeDrainWaiters();
      return Promise.resolve({ value: q.msg, done: false });
    }
    if (this.state === 'failed') {
      const e = this.failure as CoordError;
      this.state = 'done'; // the error is thrown once; the iterator is over after it
      return Promise.reject(e);
    }
    if (this.state === 'done') return Promise.resolve({ value: undefined, done: true });
    if (this.reader) return Promise.reject(coordError('invalid-argument', 'a watcher is read by one consumer at a time'));
    return new Promise((resolve, reject) => (this.reader = { resolve, reject }));
  }

  private wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0) return;
    const keep: { bytes: number; resolve: () => void }[] = [];
    for (const w of this.drainWaiters) {
      if (this.queuedBytes <= w.bytes) w.resolve();
      else keep.push(w);
    }
    this.drainWaiters = keep;
  }

  private stopTimers(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const w of this.drainWaiters.splice(0)) w.resolve();
  }

  async cancel(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    this.stopTimers();
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    const r = this.reader;
    this.reader = undefined;
    r?.resolve({ value: undefined, done: true });
    const att = this.attempt;
    this.attempt = undefined;
    if (!att) return;
    // A watch still being set up is stopped once it answers, so none outlives cancel().
    att.cancelling = true;
    await att.ready;
    if (att.watchId !== undefined) await this.deps.caller('unwatch', this.ctx(), { watchId: att.watchId }).catch(() => undefined);
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchMessage> {
    return {
      next: () => this.pull(),
      return: async () => {
        await this.cancel();
        return { value: undefined, done: true };
      },
    };
  }
}

export function startWatch(deps: WatchDeps, q: string | KeySelector, opts: WatchOpts = {}): Watcher {
  const sel: KeySelector = typeof q === 'string' ? { prefix: q } : q;
  return new WatchStream(deps, sel, opts);
}

/**
 * Every key of a selection at one rev, across as many range calls as the answer's size needs
 * (each page read at the first page's rev).
 */
export async function readAll(vol: Pick<Volume, 'range'>, sel: KeySelector): Promise<{ rev: Rev; kvs: readonly KeyValue[] }> {
  const first = await vol.range(sel);
  const kvs: KeyValue[] = [...first.kvs];
  let more = first.more;
  const end = sel.key !== undefined ? sel.key + '\u0001' : sel.prefix !== undefined ? (sel.prefix === '' ? undefined : prefixEnd(sel.prefix)) : sel.end;
  while (more) {
    const last = kvs.at(-1);
    if (last === undefined) break;
    // The smallest key above the last one (keys never contain NUL).
    const r = await vol.range({ start: last.key + '\u0001', ...(end !== undefined ? { end } : {}), rev: first.rev });
    kvs.push(...r.kvs);
    more = r.more;
  }
  return { rev: first.rev, kvs };
}

/** getAndWatch: a prefix's keys at one rev R, and a watch of it from R + 1 (nothing missed between). */
export async function getAndWatch(vol: Pick<Volume, 'range' | 'watch'>, prefix: string, opts: { readonly prevKv?: boolean } = {}): Promise<{ rev: Rev; kvs: readonly KeyValue[]; watcher: Watcher }> {
  const { rev, kvs } = await readAll(vol, { prefix });
  const watcher = vol.watch(prefix, { fromRev: rev + 1, ...(opts.prevKv ? { prevKv: true } : {}) });
  return { rev, kvs, watcher };
}
