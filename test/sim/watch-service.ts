// Watches served by the simulated bricks (DESIGN §6; §4 "Required checks": every watch stream is
// gap-free, duplicate-free and in rev order, under compaction and snapshot heals). The real
// features/watch translator is asynchronous and sits on a BrickStore, so it cannot run here; this
// models its contract (translators/features/watch.ts and watch-history.ts, header comments) at
// the brick level, with the product's own selection code (watchRange, seesReserved, inRange,
// changesOf: keys under /_coordvol/ only for a watch wholly inside it):
//  - A stream is served from its brick's committed log, in rev order, a rev's events together in
//    key order. It is advanced whenever the brick's commit point moves (Simulation.write calls
//    committed() after each brick write, before the log is trimmed): every committed rev from its
//    cursor (the next rev it must deliver) up to commitRev. Revs the log no longer holds, above
//    the brick's compactRev, are rebuilt from the versions the brick keeps (SimBrick
//    changesBetween), as the real replay reads its history tables (so, as in the translator, the
//    design's third cause of `moved` — a fromRev below the brick's log — does not arise; ending
//    such a stream `moved` instead would strand it, as every brick here trims its log to a few
//    dozen revs); a cursor at or below the brick's compactRev ends the stream `compacted`, and a
//    new watch from such a rev is refused so. A fromRev above commitRev + 1 waits; no fromRev
//    means commitRev + 1, told in the answer. (The real fan-out runs a turn after the commit and
//    replays in chunks; here both are immediate, which changes timing, not what a stream carries.)
//  - Progress notifications, for a stream idle progressMs, carry min(cursor − 1, commitRev),
//    never below fromRev − 1 nor below the last one sent.
//  - A stream ends `moved` with its cursor when its brick (of a volume of more than one voter)
//    has not heard from a holder for 2·leaseMs — checked every leaseMs/2 and when a watch
//    starts (then the watch is refused `moved`); "heard" is features/locks' lastHeardMs: an
//    append or snapshot chunk that set the acceptor's lease record (Simulation tracks it) — and
//    when a snapshot install passes its cursor (cursor ≤ s, DESIGN §4.8).
//  - Each request and each stream rides a connection (Conn): the request is lost, delayed or
//    refused by a partition like any client request; the stream is ordered (a TCP connection)
//    and breaks, losing what is still in flight, when its master crashes or its link to the
//    clients is cut while something is sent; the client finds out by pinging (watch-clients.ts).
// Resync (the library's answer to `compacted` with resync: true) is modelled as a read of the
// whole range at the brick's commitRev, once that is at least the rev the client has reached.
import { assert } from '../../src/common/assert.js';
import { asRev, type Rev } from '../../src/common/ids.js';
import { RESERVED_PREFIX } from '../../src/common/keys.js';
import type { Random } from '../../src/common/random.js';
import type { KeyRange, KeyRecord } from '../../store/types.js';
import { seesReserved, watchRange } from '../../translators/features/watch-args.js';
import { changesOf, type Change } from '../../translators/features/watch-history.js';
import { inRange } from '../../translators/features/watch-index.js';
import type { SimBrick } from './sim-brick.js';

/** What a connection carries to its client, in order. */
export type WatchMsg =
  /** The watch's answer: where its stream starts. */
  | { readonly t: 'started'; readonly fromRev: Rev }
  | { readonly t: 'events'; readonly rev: Rev; readonly changes: readonly Change[] }
  | { readonly t: 'progress'; readonly rev: Rev }
  /** The answer to a resync read: every key of the range at `rev`. */
  | { readonly t: 'resync'; readonly rev: Rev; readonly kvs: readonly { readonly key: string; readonly record: KeyRecord }[] }
  /** The stream ended (or the request was refused): moved, compacted, or (a resync read) behind. */
  | { readonly t: 'end'; readonly code: 'moved' | 'compacted' | 'behind'; readonly cursor: Rev; readonly compactRev?: Rev; readonly why: string };

export type WatchRequest =
  | { readonly t: 'watch'; readonly prefix: string; readonly fromRev: Rev | undefined; readonly progress: boolean }
  | { readonly t: 'resync'; readonly prefix: string; readonly minRev: Rev };

/** One connection from a client to a master: a request, then the messages that answer it, in order. */
export class Conn {
  /** Broken (crash, cut link, closed by the client): nothing more arrives on it. */
  broken = false;
  /** The incarnation of the master that took the request (−1 until it arrives). */
  inc = -1;
  /** The stream the request opened, while it runs. */
  stream: Stream | undefined;
  readonly queue: WatchMsg[] = [];
  flushing = false;
  constructor(
    readonly node: number,
    readonly deliver: (m: WatchMsg) => void,
  ) {}
}

interface Stream {
  readonly conn: Conn;
  readonly node: number;
  readonly range: KeyRange;
  readonly seesReserved: boolean;
  readonly fromRev: Rev;
  readonly progress: boolean;
  cursor: Rev;
  progressRev: number;
  lastSentMs: number;
}

/** Broken variants of the watch service (bite tests only). */
export interface WatchBugs {
  /** A snapshot install does not end the watches it passes: they skip silently from their cursor to s + 1. */
  readonly snapshotKeepsWatches?: boolean;
}

export interface WatchServiceHost {
  readonly rnd: Random;
  readonly leaseMs: number;
  readonly maxDelayMs: number;
  readonly lossRate: number;
  /** A stream asking for progress hears from its brick after this long without a message. */
  readonly progressMs: number;
  readonly bugs: WatchBugs;
  now(): number;
  after(ms: number, run: () => void): void;
  readonly nodes: number;
  brick(node: number): SimBrick;
  up(node: number): boolean;
  incarnation(node: number): number;
  /** How long (the node's clock) its brick has not heard from a holder (features/locks' lastHeardMs). */
  quietMs(node: number): number;
  /** Clients and the master reach each other now. */
  reachable(node: number): boolean;
  faultsOn(): boolean;
  readonly tracing: boolean;
  trace(line: string): void;
}

export class WatchService {
  private readonly streams: Stream[][];
  readonly counts = { watches: 0, refusedMoved: 0, refusedCompacted: 0, movedQuiet: 0, movedSnapshot: 0, compacted: 0, historyRevs: 0, messages: 0, broken: 0, resyncReads: 0 };

  constructor(private readonly h: WatchServiceHost) {
    this.streams = Array.from({ length: h.nodes }, () => []);
  }

  /** Starts the brick timer: holder check and progress, every leaseMs/2, until `untilMs`. */
  start(untilMs: number): void {
    const tickMs = this.h.leaseMs / 2;
    const tick = (): void => {
      for (let n = 0; n < this.h.nodes; n++) if (this.h.up(n)) this.tick(n);
      if (this.h.now() + tickMs <= untilMs) this.h.after(tickMs, tick);
    };
    this.h.after(tickMs, tick);
  }

  /** A client sends `req` to master `node` over `conn` (lost, delayed or cut like any client request). */
  request(node: number, conn: Conn, req: WatchRequest): void {
    if (this.h.faultsOn() && this.h.rnd() < this.h.lossRate) return;
    const inc = this.h.incarnation(node);
    this.h.after(0.5 + this.h.rnd() * this.h.maxDelayMs, () => {
      if (conn.broken || !this.h.up(node) || this.h.incarnation(node) !== inc || !this.h.reachable(node)) return;
      conn.inc = inc;
      if (req.t === 'watch') this.watch(node, conn, req);
      else this.resyncRead(node, conn, req);
    });
  }

  /** Whether `conn` still works (its master up, the same incarnation, the link up); a client pings with it. */
  alive(conn: Conn): boolean {
    if (conn.broken) return false;
    if (conn.inc < 0) return true;
    return this.h.up(conn.node) && this.h.incarnation(conn.node) === conn.inc && this.h.reachable(conn.node);
  }

  /** The client gives `conn` up (broken, timed out): its master drops the stream. */
  close(conn: Conn): void {
    conn.broken = true;
    conn.queue.length = 0;
    if (conn.stream) this.drop(conn.stream);
  }

  /** The stream on `conn`, if it runs: its brick and cursor (for the end-of-run liveness check). */
  streamOf(conn: Conn): { node: number; cursor: Rev; conn: Conn } | undefined {
    const s = conn.stream;
    return s && !conn.broken ? { node: s.node, cursor: s.cursor, conn } : undefined;
  }

  /** Master `node` crashed: its connections break (what is still in flight is lost). */
  crashed(node: number): void {
    for (const s of this.streams[node] as Stream[]) {
      s.conn.broken = true;
      s.conn.stream = undefined;
      s.conn.queue.length = 0;
      this.counts.broken++;
    }
    this.streams[node] = [];
  }

  /** The brick of `node` may have advanced its commit point: every stream on it catches up. */
  committed(node: number): void {
    const list = this.streams[node] as Stream[];
    if (list.length === 0) return;
    const b = this.h.brick(node);
    // Backwards: a stream that ends (compacted) leaves the list; nothing else changes it meanwhile.
    for (let i = list.length - 1; i >= 0; i--) {
      const s = list[i] as Stream;
      if (s.cursor <= b.commitRev) this.advance(s, b);
    }
  }

  /** The brick of `node` installed a snapshot at `s` (DESIGN §4.8): the streams it passes end `moved`. */
  installed(node: number, s: Rev): void {
    for (const st of (this.streams[node] as Stream[]).slice()) {
      if (st.cursor > s) continue;
      if (this.h.bugs.snapshotKeepsWatches === true) {
        if (this.h.tracing) this.h.trace(`watch on m${node} skips ${st.cursor}..${s}: snapshot at ${s} (bug)`);
        st.cursor = asRev(s + 1);
        continue;
      }
      this.counts.movedSnapshot++;
      if (this.h.tracing) this.h.trace(`watch on m${node} moved at ${st.cursor}: snapshot at ${s}`);
      this.end(st, { t: 'end', code: 'moved', cursor: st.cursor, why: `brick ${this.h.brick(node).brickId} installed a snapshot at ${s}, past the cursor ${st.cursor}` });
    }
  }

  /** Delivers everything still in flight on working connections (the run's end: no fault is on). */
  flushAll(): void {
    for (const list of this.streams) for (const s of list.slice()) this.flush(s.conn);
  }

  // ---- the brick side

  private cutOff(node: number): number | undefined {
    if (this.h.brick(node).config.bricks.length <= 1) return undefined;
    const quiet = this.h.quietMs(node);
    return quiet >= 2 * this.h.leaseMs ? quiet : undefined;
  }

  private watch(node: number, conn: Conn, req: Extract<WatchRequest, { t: 'watch' }>): void {
    const b = this.h.brick(node);
    const fromRev = req.fromRev ?? asRev(b.commitRev + 1);
    if (fromRev <= b.compactRev) {
      this.counts.refusedCompacted++;
      return this.send(conn, { t: 'end', code: 'compacted', cursor: fromRev, compactRev: b.compactRev, why: `watch from ${fromRev}, at or below the compact rev ${b.compactRev} of ${b.brickId}` });
    }
    const quiet = this.cutOff(node);
    if (quiet !== undefined) {
      this.counts.refusedMoved++;
      return this.send(conn, { t: 'end', code: 'moved', cursor: fromRev, why: `${b.brickId} has not heard from a holder for ${Math.round(quiet)} ms` });
    }
    const range = watchRange({ prefix: req.prefix });
    const s: Stream = { conn, node, range, seesReserved: seesReserved(range), fromRev, progress: req.progress, cursor: fromRev, progressRev: fromRev - 1, lastSentMs: this.h.now() };
    this.counts.watches++;
    conn.stream = s;
    (this.streams[node] as Stream[]).push(s);
    this.send(conn, { t: 'started', fromRev });
    this.advance(s, b);
  }

  private resyncRead(node: number, conn: Conn, req: Extract<WatchRequest, { t: 'resync' }>): void {
    const b = this.h.brick(node);
    const quiet = this.cutOff(node);
    if (quiet !== undefined) return this.send(conn, { t: 'end', code: 'moved', cursor: req.minRev, why: `${b.brickId} has not heard from a holder for ${Math.round(quiet)} ms` });
    if (b.commitRev < req.minRev) return this.send(conn, { t: 'end', code: 'behind', cursor: req.minRev, why: `${b.brickId} is at ${b.commitRev}, below ${req.minRev}` });
    const range = watchRange({ prefix: req.prefix });
    const reserved = seesReserved(range);
    const kvs: { key: string; record: KeyRecord }[] = [];
    for (const kv of b.viewAt(b.commitRev).scan(range)) if (reserved || !kv.key.startsWith(RESERVED_PREFIX)) kvs.push(kv);
    this.counts.resyncReads++;
    this.send(conn, { t: 'resync', rev: b.commitRev, kvs });
  }

  /** Every committed rev from the stream's cursor: from the log, or below it from the versions kept. */
  private advance(s: Stream, b: SimBrick): void {
    while (s.conn.stream === s && s.cursor <= b.commitRev) {
      if (s.cursor <= b.compactRev) {
        this.counts.compacted++;
        return this.end(s, { t: 'end', code: 'compacted', cursor: s.cursor, compactRev: b.compactRev, why: `the cursor ${s.cursor} is at or below the compact rev ${b.compactRev} of ${b.brickId}` });
      }
      if (s.cursor >= b.firstRev) {
        const e = b.entry(s.cursor);
        assert(e !== undefined, `committed entry ${s.cursor} is in ${b.brickId}'s log (${b.firstRev}..${b.last.rev})`);
        this.sendRev(s, s.cursor, changesOf(e));
        s.cursor = asRev(s.cursor + 1);
        continue;
      }
      for (const { rev, changes } of b.changesBetween(s.range, s.cursor, b.firstRev)) {
        this.counts.historyRevs++;
        this.sendRev(s, rev, changes);
      }
      s.cursor = b.firstRev;
    }
  }

  private sendRev(s: Stream, rev: Rev, changes: readonly Change[]): void {
    let picked: Change[] | undefined;
    for (const c of changes) {
      if (!inRange(c.key, s.range) || (!s.seesReserved && c.key.startsWith(RESERVED_PREFIX))) continue;
      (picked ??= []).push(c);
    }
    if (picked === undefined) return;
    s.lastSentMs = this.h.now();
    this.send(s.conn, { t: 'events', rev, changes: picked });
  }

  /** The holder check and progress notifications of one brick (features/watch's two timers). */
  private tick(node: number): void {
    const list = this.streams[node] as Stream[];
    if (list.length === 0) return;
    const quiet = this.cutOff(node);
    const b = this.h.brick(node);
    if (quiet !== undefined) {
      for (const s of list.slice()) {
        this.counts.movedQuiet++;
        this.end(s, { t: 'end', code: 'moved', cursor: s.cursor, why: `${b.brickId} has not heard from a holder for ${Math.round(quiet)} ms` });
      }
      if (this.h.tracing) this.h.trace(`watches on m${node} moved: ${b.brickId} cut off`);
      return;
    }
    const now = this.h.now();
    for (const s of list) {
      if (!s.progress || now - s.lastSentMs < this.h.progressMs) continue;
      const p = Math.min(s.cursor - 1, b.commitRev);
      if (p < s.fromRev - 1 || p < s.progressRev) continue;
      s.progressRev = p;
      s.lastSentMs = now;
      this.send(s.conn, { t: 'progress', rev: asRev(p) });
    }
  }

  private end(s: Stream, m: WatchMsg): void {
    this.drop(s);
    this.send(s.conn, m);
  }

  private drop(s: Stream): void {
    if (s.conn.stream === s) s.conn.stream = undefined;
    const list = this.streams[s.node] as Stream[];
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
  }

  // ---- the connection: ordered, delayed, broken by a crash or a cut link

  private send(conn: Conn, m: WatchMsg): void {
    if (conn.broken) return;
    this.counts.messages++;
    conn.queue.push(m);
    if (conn.flushing) return;
    conn.flushing = true;
    this.h.after(0.5 + this.h.rnd() * this.h.maxDelayMs, () => this.flush(conn));
  }

  private flush(conn: Conn): void {
    conn.flushing = false;
    if (conn.queue.length === 0) return;
    if (!this.alive(conn)) {
      // A link cut while the master sends: the connection times out at both ends.
      if (!conn.broken) this.counts.broken++;
      this.close(conn);
      return;
    }
    const msgs = conn.queue.splice(0);
    for (const m of msgs) {
      if (conn.broken) return; // the client gave the connection up while taking an earlier message
      conn.deliver(m);
    }
  }
}
