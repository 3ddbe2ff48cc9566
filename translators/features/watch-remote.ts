// The client's side of watches over the wire (DESIGN §6, §7), used by protocol/client. A watch
// fop becomes a `watch` request naming a fresh stream number, whose pushes are decoded, checked
// and handed to the caller's sink. The sink's consumer is held to the backlog cap here: past it,
// the watch is cancelled at the server and the sink ends `slow-consumer`. A broken connection
// ends every stream `unavailable` (the library starts them again, from the rev after the last
// it delivered, once a connection is back).
import { coordError, isCoordError, type CoordError } from '../../src/common/errors.js';
import { asRev } from '../../src/common/ids.js';
import type { FopContext, UnwatchArgs, WatchArgs, WatchResult, WatchSink, WireWatchArgs } from '../fops.js';
import { decodeWatchEvent, endError, parseWatchPush, SharedEvent } from './watch-codec.js';
import type { StreamOp } from './watch-streams.js';
import type { WatchPush } from './watch-types.js';

export interface RemoteWatchDeps {
  /** Sends a request; never re-sent after a broken connection (it fails `indeterminate` then). */
  request(op: StreamOp, ctx: FopContext, args: unknown): Promise<unknown>;
  onPush(stream: number, handler: (body: unknown) => void): () => void;
  readonly backlogBytesMax: number;
}

interface RemoteWatch {
  readonly id: number;
  readonly stream: number;
  readonly sink: WatchSink;
  off: () => void;
  /** The server answered the watch. */
  open: boolean;
  /** Dropped (ended, cancelled, or its connection broke): nothing more reaches the sink. */
  dropped: boolean;
  /** A connection broke before the answer was taken: the answer may be the dead connection's. */
  lost: boolean;
  /** Events of a rev that spans several pushes, until its last. */
  partial: SharedEvent[];
}

/** The connection broke under a watch: another one, from the next rev, cures it. */
function cut(why: CoordError): CoordError {
  return coordError('unavailable', `the watch's connection broke (${why.code}: ${why.message})`);
}

export class RemoteWatches {
  private readonly watches = new Map<number, RemoteWatch>();
  private nextId = 1;
  private nextStream = 1;
  private readonly stats = { started: 0, slowConsumers: 0, cut: 0, badPushes: 0 };
  /** The last events push decoded, kept for the other streams it names. */
  private decoded: { readonly body: unknown; readonly events: SharedEvent[] } | undefined;

  constructor(private readonly deps: RemoteWatchDeps) {}

  async watch(ctx: FopContext, a: WatchArgs): Promise<WatchResult> {
    const { sink, ...rest } = a;
    const stream = this.nextStream++;
    const w: RemoteWatch = { id: this.nextId++, stream, sink, off: () => undefined, open: false, dropped: false, lost: false, partial: [] };
    w.off = this.deps.onPush(stream, (body) => this.pushed(w, body));
    this.watches.set(w.id, w);
    const wire: WireWatchArgs = { ...rest, stream };
    let answer: unknown;
    try {
      answer = await this.deps.request('watch', ctx, wire);
    } catch (e) {
      const err = isCoordError(e) ? e : coordError('internal', String(e));
      this.drop(w);
      // In flight when the connection broke: the server dropped it with the connection.
      throw err.code === 'indeterminate' ? cut(err) : err;
    }
    if (w.dropped || w.lost) {
      // A connection broke while it was being set up: it may live on the dead connection only, or
      // (sent after the break) on the new one. Stop it wherever it is; the caller starts afresh.
      this.drop(w);
      this.deps.request('unwatch', {}, { stream: w.stream }).catch(() => undefined);
      throw coordError('unavailable', 'the watch\'s connection broke as it started');
    }
    w.open = true;
    this.stats.started++;
    const from = (answer as { fromRev?: unknown } | undefined)?.fromRev;
    if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 1) {
      this.cancel(w, coordError('protocol-error', 'the watch answer has no fromRev'));
      throw coordError('protocol-error', 'the watch answer has no fromRev');
    }
    return { watchId: w.id, fromRev: asRev(from) };
  }

  async unwatch(ctx: FopContext, a: UnwatchArgs): Promise<Record<string, never>> {
    const w = this.watches.get(a.watchId);
    if (!w) return {};
    this.drop(w);
    // Best effort: if the connection is gone, so is the watch at the server.
    await this.deps.request('unwatch', ctx, { stream: w.stream }).catch(() => undefined);
    return {};
  }

  private pushed(w: RemoteWatch, body: unknown): void {
    if (w.dropped) return;
    let p: WatchPush;
    try {
      p = parseWatchPush(body);
    } catch (e) {
      this.stats.badPushes++;
      return this.cancel(w, e as CoordError);
    }
    switch (p.kind) {
      case 'events': {
        let events: SharedEvent[];
        try {
          // A push shared by several streams (`also`) is decoded once for all of them.
          if (this.decoded === undefined || this.decoded.body !== body) {
            this.decoded = { body, events: p.events.map((b) => new SharedEvent(decodeWatchEvent(b), b)) };
          }
          events = this.decoded.events;
        } catch (e) {
          this.stats.badPushes++;
          return this.cancel(w, e as CoordError);
        }
        w.partial.push(...events);
        if (p.more) return;
        const all = w.partial;
        w.partial = [];
        if (w.sink.backlogBytes > this.deps.backlogBytesMax) {
          this.stats.slowConsumers++;
          return this.cancel(w, coordError('slow-consumer', `the watch's consumer left ${w.sink.backlogBytes} bytes untaken, over the ${this.deps.backlogBytesMax}-byte cap: cancelled at rev ${p.rev}`, { rev: p.rev }));
        }
        return w.sink.events(asRev(p.rev), all);
      }
      case 'progress':
        return w.sink.progress(asRev(p.rev));
      case 'end':
        this.drop(w);
        return w.sink.end(endError(p.error));
    }
  }

  /** Ends a watch from this side: stops it at the server, and tells the sink why. */
  private cancel(w: RemoteWatch, why: CoordError): void {
    this.drop(w);
    this.deps.request('unwatch', {}, { stream: w.stream }).catch(() => undefined);
    w.sink.end(why);
  }

  private drop(w: RemoteWatch): void {
    if (w.dropped) return;
    w.dropped = true;
    w.off();
    this.watches.delete(w.id);
  }

  /** The connection broke: streams end with it. Watches not yet answered are settled by their request. */
  connectionLost(why: CoordError): void {
    for (const w of [...this.watches.values()]) {
      if (!w.open) {
        w.lost = true;
        continue;
      }
      this.drop(w);
      this.stats.cut++;
      w.sink.end(cut(why));
    }
  }

  /** The client is closing: every watch ends `closed`. */
  close(why: CoordError): void {
    for (const w of [...this.watches.values()]) {
      this.drop(w);
      if (w.open) w.sink.end(why);
    }
  }

  dump(): Record<string, unknown> {
    return { watches: this.watches.size, ...this.stats };
  }
}
