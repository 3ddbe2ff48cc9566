// The server's side of watches over the wire (DESIGN §6, §7), used by protocol/server. A `watch`
// request names a stream number the client picked; the watch is started in the graph with a
// sink that pushes on that stream of that connection, and the answer says where it starts. An
// `unwatch` or the connection's close stops it. A connection's watches share its socket, so the
// backlog a watch reports is the socket's unsent bytes: a client that stops reading has its
// watches cancelled (slow-consumer) while the server goes on serving everyone else.
//
// Pushes go out at the end of the turn that made them, and a run of events pushes for one rev
// with the same encoded events (watchers of one connection whose options agree) goes as one
// message naming its other streams in `also`: a write seen by 20 watchers of a connection costs
// one message to encode, send and decode, not 20. Each stream's pushes keep their order: only
// consecutive pushes merge, and a stream has at most one events push per rev and part.
import { coordError, isCoordError, type CoordError } from '../../src/common/errors.js';
import { watchPushEventBytesMax, watchStreamsPerConnectionMax } from '../../src/common/limits.js';
import { toWireError } from '../../src/wire/index.js';
import type { Rev } from '../../src/common/ids.js';
import type { FopArgs, FopContext, FopName, FopResult } from '../fops.js';
import type { Link } from '../protocol/link.js';
import type { SharedWatchEvent, WatchPush, WatchSink, WireUnwatchArgs, WireWatchArgs } from './watch-types.js';

/** The wire ops of watches, served here rather than as plain fops. */
export const STREAM_OPS = ['watch', 'unwatch'] as const;
export type StreamOp = (typeof STREAM_OPS)[number];
export const isStreamOp = (op: string): op is StreamOp => (STREAM_OPS as readonly string[]).includes(op);
/** A stream request checked by protocol/requests.ts. */
export type StreamRequest = { readonly op: 'watch'; readonly args: WireWatchArgs } | { readonly op: 'unwatch'; readonly args: WireUnwatchArgs };


type Caller = <F extends FopName>(fop: F, ctx: FopContext, args: FopArgs<F>) => Promise<FopResult<F>>;

interface Stream {
  readonly sink: StreamSink;
  /** The graph's id for the watch, once it has answered. */
  watchId: number | undefined;
}

interface Conn {
  readonly link: Link;
  readonly streams: Map<number, Stream>;
  drainWaiters: (() => void)[];
  closed: boolean;
  /** Pushes of this turn, sent together at its end (see the header). */
  readonly queue: { stream: number; body: WatchPush }[];
}

/** Two events pushes carry the same rev, part and encoded events (shared between watchers). */
function sameEvents(a: WatchPush, b: WatchPush): boolean {
  if (a.kind !== 'events' || b.kind !== 'events' || a.rev !== b.rev || a.more !== b.more || a.events.length !== b.events.length) return false;
  for (let i = 0; i < a.events.length; i++) if (a.events[i] !== b.events[i]) return false;
  return true;
}

/** Sends a connection's queued pushes, merging runs of the same events into one message. */
function flush(conn: Conn): void {
  const q = conn.queue.splice(0);
  if (conn.closed) return;
  for (let i = 0; i < q.length; ) {
    const first = q[i] as { stream: number; body: WatchPush };
    let j = i + 1;
    while (j < q.length && sameEvents(first.body, (q[j] as { body: WatchPush }).body)) j++;
    const body: WatchPush = j - i > 1 && first.body.kind === 'events' ? { ...first.body, also: q.slice(i + 1, j).map((x) => x.stream) } : first.body;
    try {
      conn.link.send({ type: 'push', stream: first.stream, body });
    } catch (e) {
      // Not encodable (a push is sized to fit, so a bug): end the connection, and with it its
      // watches, which the client resumes elsewhere — rather than lose one stream's events.
      conn.link.close(isCoordError(e) ? e : coordError('internal', `a watch push could not be sent: ${String(e)}`));
      return;
    }
    i = j;
  }
}

class StreamSink implements WatchSink {
  gone = false;
  constructor(
    private readonly conn: Conn,
    private readonly stream: number,
    readonly owner: string,
    private readonly onEnd: () => void,
  ) {}

  get backlogBytes(): number {
    return this.conn.closed ? 0 : this.conn.link.socket.writableLength;
  }

  drained(bytes: number): Promise<void> {
    if (this.gone || this.backlogBytes <= bytes) return Promise.resolve();
    // The socket's 'drain' comes when its buffer has emptied; a close wakes every waiter too.
    return new Promise((resolve) => this.conn.drainWaiters.push(resolve));
  }

  events(rev: Rev, events: readonly SharedWatchEvent[]): void {
    let part: Uint8Array[] = [];
    let bytes = 0;
    for (const e of events) {
      const b = e.encoded;
      if (part.length > 0 && bytes + b.byteLength > watchPushEventBytesMax) {
        this.push({ kind: 'events', rev, events: part, more: true });
        part = [];
        bytes = 0;
      }
      part.push(b);
      bytes += b.byteLength;
    }
    this.push({ kind: 'events', rev, events: part });
  }

  progress(rev: Rev): void {
    this.push({ kind: 'progress', rev });
  }

  end(error: CoordError): void {
    this.push({ kind: 'end', error: toWireError(error) });
    this.gone = true;
    this.onEnd();
  }

  private push(body: WatchPush): void {
    if (this.gone || this.conn.closed) return;
    const conn = this.conn;
    if (conn.queue.length === 0) queueMicrotask(() => flush(conn));
    conn.queue.push({ stream: this.stream, body });
  }
}

export class WatchStreams {
  private readonly conns = new Map<number, Conn>();
  private watches = 0;

  constructor(private readonly call: Caller) {}

  /** Serves a (checked) watch or unwatch request of connection `id`; refusals are typed errors. */
  async serve(id: number, link: Link, req: StreamRequest, ctx: FopContext): Promise<unknown> {
    let conn = this.conns.get(id);
    if (!conn) {
      const c: Conn = { link, streams: new Map(), drainWaiters: [], closed: false, queue: [] };
      link.socket.on('drain', () => this.wake(c));
      this.conns.set(id, (conn = c));
    }
    return req.op === 'watch' ? this.watch(id, conn, req.args, ctx) : this.unwatch(conn, req.args, ctx);
  }

  private async watch(id: number, conn: Conn, wire: WireWatchArgs, ctx: FopContext): Promise<{ fromRev: Rev }> {
    const { stream, ...args } = wire;
    if (conn.streams.has(stream)) throw coordError('invalid-argument', `stream ${stream} is already in use on this connection`);
    if (conn.streams.size >= watchStreamsPerConnectionMax) throw coordError('too-large', `a connection holds at most ${watchStreamsPerConnectionMax} watches`);
    const entry: Stream = { sink: new StreamSink(conn, stream, `connection ${id}`, () => conn.streams.delete(stream)), watchId: undefined };
    conn.streams.set(stream, entry);
    try {
      const r = await this.call('watch', ctx, { ...args, sink: entry.sink });
      entry.watchId = r.watchId;
      this.watches++;
      // The connection closed (or the client unwatched) while the watch was being set up.
      if (conn.closed || conn.streams.get(stream) !== entry) this.stop(entry);
      return { fromRev: r.fromRev };
    } catch (e) {
      if (conn.streams.get(stream) === entry) conn.streams.delete(stream);
      entry.sink.gone = true;
      throw e;
    }
  }

  private async unwatch(conn: Conn, { stream }: WireUnwatchArgs, ctx: FopContext): Promise<Record<string, never>> {
    const entry = conn.streams.get(stream);
    // Unknown or already ended (its end push may be on its way): nothing to stop.
    if (!entry) return {};
    conn.streams.delete(stream);
    entry.sink.gone = true;
    if (entry.watchId !== undefined) await this.call('unwatch', ctx, { watchId: entry.watchId });
    return {};
  }

  /** The connection is gone: every watch on it stops. */
  connectionClosed(id: number): void {
    const conn = this.conns.get(id);
    if (!conn) return;
    this.conns.delete(id);
    conn.closed = true;
    for (const entry of conn.streams.values()) this.stop(entry);
    conn.streams.clear();
    this.wake(conn);
  }

  private stop(entry: Stream): void {
    entry.sink.gone = true;
    if (entry.watchId === undefined) return;
    this.call('unwatch', {}, { watchId: entry.watchId }).catch(() => undefined);
  }

  private wake(conn: Conn): void {
    for (const w of conn.drainWaiters.splice(0)) w();
  }

  dump(): Record<string, unknown> {
    const perConnection: Record<string, { watches: number; unsentBytes: number }> = {};
    for (const [id, c] of this.conns) {
      if (c.streams.size > 0) perConnection[String(id)] = { watches: c.streams.size, unsentBytes: c.link.socket.writableLength };
    }
    return { watchesStarted: this.watches, perConnection };
  }
}
