// Watch clients for the simulator (DESIGN §6), each following the client library's WatchStream
// (src/client/watch.ts): it watches a prefix (or everything) from rev 1, from an old rev, from a
// rev a little ahead (its stream waits), or from now (no fromRev: the brick's commitRev + 1, which
// the watch's answer tells), with progress notifications on some. Its `next` is the rev after the
// last event or progress it took. When the serving watch ends — `moved`, a broken connection
// (found by a ping every pingMs: its master crashed or the link is cut), a request unanswered for
// requestTimeoutMs — it starts a new one from `next` after the library's backoff (20 ms·2^k,
// at most 2 s, jittered; k resets once a watch is taken), on a master picked at random among
// those it has not tried since its stream last opened (the library over connect() moves along
// its server list; the exclusion bounds the tries in a row as the list does). On `compacted` it
// resyncs (the library's resync: true): a read of the whole range at a brick's current rev
// R ≥ next − 1, then a watch from R + 1. Everything it receives goes through WatchChecks.
//
// Liveness: at the end every watcher must stream from a brick at the volume's commit point with
// every event up to it. A watcher that backed off to 2 s during an outage and then meets masters
// that refuse it (spares, whose bricks hear no holder) can need longer than the quiet period, as
// the real library would: Simulation.finishWatches lets the run go on, fault-free, up to settleMs
// (one longest backoff per master, and a timeout) until every watcher has caught up, then checks.
import { asRev, type Rev } from '../../src/common/ids.js';
import type { Random } from '../../src/common/random.js';
import { SimViolation } from './log-checks.js';
import type { WatchChecks } from './watch-checks.js';
import { Conn, type WatchMsg, type WatchService } from './watch-service.js';

export interface WatchClientHost {
  readonly rnd: Random;
  readonly nodes: number;
  readonly requestTimeoutMs: number;
  readonly pingMs: number;
  now(): number;
  after(ms: number, run: () => void): void;
  /** The volume's commit point so far (to pick an old or a future fromRev). */
  committed(): number;
  readonly tracing: boolean;
  trace(line: string): void;
}

const PREFIXES = ['', '/k/', '/k/2', '/_coordvol/'];
const RETRY_MS_MIN = 20;
const RETRY_MS_MAX = 2_000;

interface Client {
  readonly id: number;
  readonly prefix: string;
  readonly progress: boolean;
  /** The next rev the stream must deliver; undefined until the first watch says where "now" is. */
  next: Rev | undefined;
  /** The connection of the current watch or resync read. */
  conn: Conn | undefined;
  mode: 'watch' | 'resync';
  /** The current watch has answered. */
  open: boolean;
  retries: number;
  /** Masters tried since the stream last opened. */
  readonly tried: Set<number>;
  /** The last end, for a liveness report. */
  lastEnd: string;
}

export class WatchClients {
  private readonly clients: Client[] = [];
  readonly counts = { watchers: 0, opens: 0, resumes: 0, moved: 0, compacted: 0, brokenSeen: 0, timeouts: 0 };

  constructor(
    private readonly h: WatchClientHost,
    private readonly service: WatchService,
    private readonly checks: WatchChecks,
  ) {}

  /** `count` watchers, each starting at a random time before `startUntilMs`. */
  start(count: number, startUntilMs: number, untilMs: number): void {
    for (let i = 0; i < count; i++) {
      const c: Client = { id: i, prefix: PREFIXES[Math.floor(this.h.rnd() * PREFIXES.length)] as string, progress: this.h.rnd() < 0.5, next: undefined, conn: undefined, mode: 'watch', open: false, retries: 0, tried: new Set(), lastEnd: 'none' };
      const from = this.h.rnd();
      this.clients.push(c);
      this.counts.watchers++;
      this.h.after(startUntilMs * this.h.rnd(), () => {
        const top = this.h.committed();
        // From the beginning, from an old rev, from a little ahead (the stream waits), or from now.
        if (from < 0.2) c.next = asRev(1);
        else if (from < 0.45) c.next = asRev(1 + Math.floor(this.h.rnd() * top));
        else if (from < 0.55) c.next = asRev(top + 1 + Math.floor(10 * this.h.rnd()));
        this.checks.watcher(c.id, c.prefix, c.next);
        if (this.h.tracing) this.h.trace(`watcher ${c.id} watches ${JSON.stringify(c.prefix)} from ${c.next ?? 'now'}`);
        this.openWatch(c);
        this.ping(c, untilMs);
      });
    }
  }

  /** How long after the quiet period a watcher may need to find a master that serves it: one longest backoff per master, and a timeout. */
  get settleMs(): number {
    return this.h.nodes * RETRY_MS_MAX + this.h.requestTimeoutMs;
  }

  /** Every watcher streams from a brick at `top`, past it, with every event up to it. */
  caughtUp(top: number, commitRevOf: (node: number) => number): boolean {
    return this.clients.every((c) => {
      const s = c.conn && c.open ? this.service.streamOf(c.conn) : undefined;
      return s !== undefined && commitRevOf(s.node) >= top && s.cursor > top && s.conn.queue.length === 0 && this.checks.missing(c.id, top) === undefined;
    });
  }

  /**
   * The end of the run: every watcher is streaming on a brick at the volume's commit point `top`
   * (its stream there has passed it) and has had every event up to it.
   */
  finish(top: number, commitRevOf: (node: number) => number): void {
    for (const c of this.clients) {
      const s = c.conn && c.open ? this.service.streamOf(c.conn) : undefined;
      if (s === undefined || commitRevOf(s.node) < top || s.cursor <= top) {
        const where = s ? `on m${s.node} at ${commitRevOf(s.node)} (cursor ${s.cursor})` : 'not streaming';
        throw new SimViolation('watch-liveness', `watcher ${c.id} (${JSON.stringify(c.prefix)}) is ${where} at the end of the run (the quiet period and up to settleMs), the volume at ${top}; it has every rev up to ${this.checks.accountedTo(c.id) ?? 'none'}; last end: ${c.lastEnd}`);
      }
      const gap = this.checks.missing(c.id, top);
      if (gap !== undefined) throw new SimViolation('watch-liveness', `watcher ${c.id} (${JSON.stringify(c.prefix)}) never got rev ${gap} by the end of the run (streaming on m${s.node}, cursor ${s.cursor})`);
    }
  }

  /** A master other than those tried since the stream last opened (all again once each was). */
  private pick(c: Client): number {
    if (c.tried.size >= this.h.nodes) c.tried.clear();
    const free: number[] = [];
    for (let n = 0; n < this.h.nodes; n++) if (!c.tried.has(n)) free.push(n);
    const node = free[Math.floor(this.h.rnd() * free.length)] as number;
    c.tried.add(node);
    return node;
  }

  private openWatch(c: Client): void {
    const node = this.pick(c);
    const conn = new Conn(node, (m) => this.onMessage(c, conn, m));
    c.conn = conn;
    c.mode = 'watch';
    c.open = false;
    this.counts.opens++;
    if (this.h.tracing) this.h.trace(`watcher ${c.id} watches on m${node} from ${c.next ?? 'now'}`);
    this.service.request(node, conn, { t: 'watch', prefix: c.prefix, fromRev: c.next, progress: c.progress });
    this.timeout(c, conn);
  }

  private resync(c: Client): void {
    const node = this.pick(c);
    const conn = new Conn(node, (m) => this.onMessage(c, conn, m));
    c.conn = conn;
    c.mode = 'resync';
    c.open = false;
    this.service.request(node, conn, { t: 'resync', prefix: c.prefix, minRev: asRev((c.next ?? 1) - 1) });
    this.timeout(c, conn);
  }

  /** A request unanswered for requestTimeoutMs is given up (the library's fop deadline). */
  private timeout(c: Client, conn: Conn): void {
    this.h.after(this.h.requestTimeoutMs, () => {
      if (c.conn !== conn || c.open) return;
      this.counts.timeouts++;
      this.lost(c, `timeout on m${conn.node}`);
    });
  }

  /** The library pings while it only receives: a dead connection is found and given up. */
  private ping(c: Client, untilMs: number): void {
    this.h.after(this.h.pingMs, () => {
      const conn = c.conn;
      if (conn && !this.service.alive(conn)) {
        this.counts.brokenSeen++;
        this.lost(c, `connection to m${conn.node} broken`);
      }
      if (this.h.now() + this.h.pingMs <= untilMs) this.ping(c, untilMs);
    });
  }

  /** The current connection is given up: again after the backoff (a resync read again, if it was one). */
  private lost(c: Client, why: string): void {
    const conn = c.conn;
    if (conn) this.service.close(conn);
    c.conn = undefined;
    c.open = false;
    c.lastEnd = `${why} at ${this.h.now().toFixed(1)}`;
    if (this.h.tracing) this.h.trace(`watcher ${c.id}: ${why}`);
    const mode = c.mode;
    this.retryLater(c, () => (mode === 'resync' ? this.resync(c) : this.openWatch(c)));
  }

  private retryLater(c: Client, f: () => void): void {
    const base = Math.min(RETRY_MS_MAX, RETRY_MS_MIN * 2 ** Math.min(c.retries, 10));
    c.retries++;
    this.counts.resumes++;
    this.h.after(base * (0.5 + this.h.rnd() / 2), f);
  }

  private onMessage(c: Client, conn: Conn, m: WatchMsg): void {
    if (c.conn !== conn) return; // a connection the client has moved on from
    switch (m.t) {
      case 'started':
        c.open = true;
        c.retries = 0;
        c.tried.clear();
        c.tried.add(conn.node);
        this.checks.started(c.id, m.fromRev);
        c.next ??= m.fromRev;
        if (this.h.tracing) this.h.trace(`watcher ${c.id} streams on m${conn.node} from ${m.fromRev}`);
        return;
      case 'events':
        this.checks.events(c.id, m.rev, m.changes);
        c.next = asRev(m.rev + 1);
        return;
      case 'progress':
        this.checks.progress(c.id, m.rev);
        // The library takes a progress at or above what it has (checked above: the brick sends no other).
        c.next = asRev(Math.max(c.next ?? 0, m.rev + 1));
        return;
      case 'resync':
        this.checks.resync(c.id, m.rev, m.kvs);
        this.service.close(conn);
        c.next = asRev(m.rev + 1);
        if (this.h.tracing) this.h.trace(`watcher ${c.id} resynced at ${m.rev} on m${conn.node}`);
        this.openWatch(c);
        return;
      case 'end': {
        const mode = c.mode;
        this.service.close(conn);
        c.conn = undefined;
        c.open = false;
        c.lastEnd = `${m.code} on m${conn.node} at ${this.h.now().toFixed(1)}: ${m.why}`;
        if (this.h.tracing) this.h.trace(`watcher ${c.id} ${m.code} on m${conn.node} at cursor ${m.cursor}`);
        if (m.code === 'compacted') {
          this.counts.compacted++;
          this.checks.compacted(c.id, m.cursor, m.compactRev);
          return this.resync(c);
        }
        if (m.code === 'moved') {
          this.counts.moved++;
          // A stream's end (a refused resync read carries no stream position).
          if (mode === 'watch') this.checks.moved(c.id, m.cursor);
        }
        // Moved, or a resync read on a brick behind: the same again elsewhere after the backoff.
        return this.retryLater(c, () => (mode === 'resync' ? this.resync(c) : this.openWatch(c)));
      }
    }
  }
}
