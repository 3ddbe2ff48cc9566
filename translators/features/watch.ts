// features/watch (DESIGN §6): watches served by a brick from its committed log. It sits on the
// brick side of the graph (above features/locks) and subscribes to its store's committed entries.
//
// A watcher is in one of two states:
//  - replay: its cursor (the next rev it must get) is at or below the last rev fanned out live.
//    It reads the past on its own, a chunk per turn of the event loop, from the log or — below
//    the log's first rev — from the history tables (watch-history.ts), pausing while its
//    consumer's backlog is over half the cap. Caught up, it joins the live index in the same turn,
//    so no committed rev falls between replay and live.
//  - live: in the prefix index. Each committed entry is fanned out once, in the store's commit
//    callback: the changed keys are matched through the index, each event is built once per
//    prevKv choice and shared by every watcher that takes it. A live watcher whose first rev is
//    still ahead (fromRev above commitRev + 1) waits in the index until the stream reaches it.
// A live consumer whose backlog is over the cap when its next rev comes is cancelled with
// `slow-consumer`; nothing waits for a consumer, so neither writes nor other watchers stall.
// `compacted` goes to a watcher whose cursor is at or below the brick's compactRev.
//
// `moved` (DESIGN §6): on a brick of a replicated volume (more than one brick in its config), once
// the brick has not heard from a holder for 2·leaseMs (features/locks' lastHeardMs: no append or
// heartbeat at its promised epoch), its log may have fallen behind the volume's without knowing
// it, so a watch served from it could stall unnoticed. Every watch stream ends `moved` (details:
// its cursor, the next rev it would deliver) and new watches are refused `moved` until a holder
// is heard from again; the library resumes the stream on another master from its last rev + 1.
// Checked on a timer of leaseMs/2 and when a watch starts — never per event, so fan-out costs
// nothing more. A single-brick volume (or a graph with no features/locks below) never sends it.
// A snapshot install (DESIGN §4.8) moves the brick's commit point to s without committing the
// revs in between one by one, so they are never fanned out: every watch whose cursor is at or
// below s ends `moved` too (the design's "a snapshot install passes the watch's cursor"; a cursor
// equal to s still needs rev s's events). The design's third cause — a fromRev below what the
// brick holds but above the volume's compactRev — does not arise: a snapshot carries every
// version above its compactRev, so the history tables that replayHistory reads still hold every
// rev above the brick's compactRev, after an install as before.
import { AssertionError } from '../../src/common/assert.js';
import { coordError, isCoordError, type CoordError } from '../../src/common/errors.js';
import { asRev, NO_SESSION, type Rev } from '../../src/common/ids.js';
import { RESERVED_PREFIX } from '../../src/common/keys.js';
import { watchBacklogBytesMax, watchReplayEventsMax } from '../../src/common/limits.js';
import { toKeyValue } from '../../replication/read.js';
import type { BrickStore } from '../../store/index.js';
import type { Entry, KeyRange, LogPosition } from '../../store/types.js';
import type { OptionSchema, OptionValues } from '../options.js';
import { StorageTranslator } from '../storage/brick.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';
import { LocksTranslator } from './locks.js';
import { checkWatchArgs, seesReserved, watchRange } from './watch-args.js';
import { SharedEvent } from './watch-codec.js';
import { changesOf, historyWindow, type Change } from './watch-history.js';
import { inRange, RangeIndex } from './watch-index.js';
import type { WatchArgs, WatchResult, WatchSink } from './watch-types.js';

const options = {
  'progress-ms': { type: 'time', min: 10, max: 3_600_000, default: 10_000, description: 'a watch that asked for progress hears the rev it has reached after this long without a message' },
  'backlog-bytes-max': { type: 'size', min: 4096, max: watchBacklogBytesMax, default: watchBacklogBytesMax, description: "bytes a watch's consumer may leave untaken before the watch is cancelled (slow-consumer)" },
} as const satisfies OptionSchema;
type Values = OptionValues<typeof options>;

/** Revs one replay step reads from the log before it yields to the event loop. */
const REPLAY_REVS_PER_TURN = 1024;

interface Watcher {
  readonly id: number;
  readonly range: KeyRange;
  readonly exactKey: string | undefined;
  readonly seesReserved: boolean;
  readonly prevKv: boolean;
  readonly progress: boolean;
  readonly fromRev: Rev;
  readonly sink: WatchSink;
  state: 'replay' | 'live' | 'ended';
  /** replay: the next rev to deliver; live: the first rev it takes from the live stream. */
  cursor: Rev;
  lastSentMs: number;
  progressRev: number;
  /** Resolves when the watcher ends or is unwatched (a paused replay stops waiting). */
  readonly stopped: Promise<void>;
  stop: () => void;
}

const yieldTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

export class WatchTranslator extends Translator {
  private readonly o: Values;
  private storeV: BrickStore | undefined;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeInstalls: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The brick's lock keeper (features/locks), when it sits below: whether the brick hears a holder. */
  private locks: LocksTranslator | undefined;
  private holderTimer: NodeJS.Timeout | undefined;
  /** The last committed rev fanned out to live watchers. */
  private liveRev: Rev = asRev(0);
  private readonly watchers = new Map<number, Watcher>();
  private readonly index = new RangeIndex<Watcher>();
  private readonly progressWatchers = new Set<Watcher>();
  private nextId = 1;
  private readonly stats = { watches: 0, eventsSent: 0, messagesSent: 0, progressSent: 0, compacted: 0, slowConsumers: 0, moved: 0, movedRefused: 0, snapshotInstalls: 0, historyWindows: 0, sinkFailures: 0 };

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.o = spec.options as unknown as Values;
    this.handlers.watch = async (_ctx, a) => this.watch(a);
    this.handlers.unwatch = async (_ctx, a) => {
      this.unwatch(a.watchId);
      return {};
    };
  }

  override async init(): Promise<void> {
    const child = this.children[0];
    const storage = child?.find<StorageTranslator>('storage/lmdb') ?? child?.find<StorageTranslator>('storage/memory');
    if (!(storage instanceof StorageTranslator)) {
      throw coordError('volfile-invalid', `${this.name} (features/watch) needs its brick (a storage translator) below it`);
    }
    const store = storage.store;
    this.storeV = store;
    this.liveRev = store.commitRev;
    // Fan out after the write that committed these entries has answered: its writer's ack (and
    // the holder's next batch) must not wait for encoding and sending to every watcher.
    this.unsubscribe = store.onCommitted((entries) => {
      this.pendingLive.push(...entries);
      if (this.pendingLive.length === entries.length) setImmediate(() => this.drainLive());
    });
    this.unsubscribeInstalls = store.onSnapshotInstalled((s) => this.installed(s));
    const tickMs = Math.max(5, Math.floor(this.o['progress-ms'] / 2));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
    const locks = child?.find<LocksTranslator>('features/locks');
    if (locks instanceof LocksTranslator) {
      this.locks = locks;
      this.holderTimer = setInterval(() => this.checkHolder(), Math.max(5, Math.floor(locks.leaseDurationMs / 2)));
      this.holderTimer.unref();
    }
    await super.init();
  }

  private get store(): BrickStore {
    if (!this.storeV) throw coordError('closed', `${this.name} is not open`);
    return this.storeV;
  }

  private watch(a: WatchArgs): WatchResult {
    checkWatchArgs(a);
    const store = this.store;
    const fromRev = a.fromRev ?? asRev(this.liveRev + 1);
    if (fromRev <= store.compactRev) throw compactedError(fromRev, store.compactRev);
    const quietMs = this.cutOffMs();
    if (quietMs !== undefined) {
      this.stats.movedRefused++;
      throw movedError(this.name, fromRev, quietMs);
    }
    const range = watchRange(a);
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => (stop = r));
    const w: Watcher = {
      id: this.nextId++,
      range,
      exactKey: a.key,
      seesReserved: seesReserved(range),
      prevKv: a.prevKv === true,
      progress: a.progress === true,
      fromRev,
      sink: a.sink,
      state: fromRev <= this.liveRev ? 'replay' : 'live',
      cursor: fromRev,
      lastSentMs: this.env.clock.nowMs(),
      progressRev: fromRev - 1,
      stopped,
      stop,
    };
    this.watchers.set(w.id, w);
    if (w.progress) this.progressWatchers.add(w);
    this.stats.watches++;
    if (w.state === 'live') this.index.add(w);
    else {
      this.replay(w).catch((e: unknown) => {
        if (e instanceof AssertionError) throw e; // a broken invariant stops the process loudly
        this.end(w, isCoordError(e) ? e : coordError('internal', `watch replay failed: ${e instanceof Error ? e.message : String(e)}`));
      });
    }
    return { watchId: w.id, fromRev };
  }

  private unwatch(id: number): void {
    const w = this.watchers.get(id);
    if (w) this.forget(w);
  }

  private forget(w: Watcher): void {
    if (w.state === 'live') this.index.remove(w);
    w.state = 'ended';
    this.watchers.delete(w.id);
    this.progressWatchers.delete(w);
    w.stop();
  }

  private end(w: Watcher, why: CoordError): void {
    if (w.state === 'ended') return;
    this.forget(w);
    if (why.code === 'compacted') this.stats.compacted++;
    if (why.code === 'slow-consumer') this.stats.slowConsumers++;
    if (why.code === 'moved') this.stats.moved++;
    try {
      w.sink.end(why);
    } catch (e) {
      this.sinkFailed(e);
    }
  }

  /** A sink that throws is a bug or a dead transport: the watch ends, nothing else does. */
  private sinkFailed(e: unknown): void {
    if (e instanceof AssertionError) throw e;
    this.stats.sinkFailures++;
  }

  // ---- live

  /** Committed entries not yet fanned out, in rev order. */
  private pendingLive: Entry[] = [];

  private drainLive(): void {
    const entries = this.pendingLive;
    this.pendingLive = [];
    if (this.storeV && entries.length > 0) this.committed(entries);
  }

  /** Newly committed entries in rev order (fanned out a turn after their commit, see init). */
  private committed(entries: readonly Entry[]): void {
    const s = this.store;
    // A compaction committed in a write that finished alongside these entries may already cover
    // live cursors (the brick's compactRev moves when any write completes after it was issued).
    if (s.compactRev > this.liveRev) {
      for (const w of [...this.watchers.values()]) {
        if (w.state === 'live' && Math.max(w.cursor, this.liveRev + 1) <= s.compactRev) this.end(w, compactedError(w.cursor, s.compactRev));
      }
    }
    for (const e of entries) {
      if (this.index.size > 0) this.fanOut(e);
      this.liveRev = e.rev;
    }
  }

  private fanOut(e: Entry): void {
    const batches = new Map<Watcher, SharedEvent[]>();
    for (const c of changesOf(e)) {
      const reserved = c.key.startsWith(RESERVED_PREFIX);
      let plain: SharedEvent | undefined;
      let withPrev: SharedEvent | undefined;
      for (const w of this.index.match(c.key)) {
        if (w.cursor > e.rev || (reserved && !w.seesReserved)) continue;
        const ev = w.prevKv ? (withPrev ??= this.event(c, e.rev, true)) : (plain ??= this.event(c, e.rev, false));
        const batch = batches.get(w);
        if (batch) batch.push(ev);
        else batches.set(w, [ev]);
      }
    }
    for (const [w, evs] of batches) {
      if (w.sink.backlogBytes > this.o['backlog-bytes-max']) {
        this.end(w, coordError('slow-consumer', `the watch's consumer left ${w.sink.backlogBytes} bytes untaken, over the ${this.o['backlog-bytes-max']}-byte cap: cancelled at rev ${e.rev}`, { rev: e.rev }));
        continue;
      }
      this.send(w, e.rev, evs);
    }
  }

  /** An event of `c` at `rev`; prevKv is the key's record at rev − 1 (rev − 1 ≥ compactRev). */
  private event(c: Change, rev: Rev, prevKv: boolean): SharedEvent {
    const kv = c.record ? toKeyValue(c.key, c.record) : { key: c.key, createRev: asRev(0), modRev: rev, version: 0, session: NO_SESSION };
    const prev = prevKv ? this.store.get(c.key, asRev(rev - 1)) : undefined;
    const type = c.record ? 'put' : 'delete';
    return new SharedEvent(prev ? { type, kv, prevKv: toKeyValue(c.key, prev) } : { type, kv });
  }

  private send(w: Watcher, rev: Rev, evs: readonly SharedEvent[]): void {
    try {
      w.sink.events(rev, evs);
    } catch (e) {
      this.sinkFailed(e);
      this.end(w, isCoordError(e) ? e : coordError('internal', `watch sink failed: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    w.lastSentMs = this.env.clock.nowMs();
    this.stats.eventsSent += evs.length;
    this.stats.messagesSent++;
  }

  /**
   * A snapshot install moved the commit point to s (see the header): watchers whose cursor is at
   * or below s end `moved` with it. Entries committed before the install and not yet fanned out
   * lie below s, so they concern only watchers that have just ended; the live stream goes on
   * from s + 1 (the store's next onCommitted starts there).
   */
  private installed(s: LogPosition): void {
    this.stats.snapshotInstalls++;
    for (const w of [...this.watchers.values()]) {
      const cursor = this.cursorOf(w);
      if (cursor <= s.rev) this.end(w, snapshotMovedError(this.name, cursor, s.rev));
    }
    this.pendingLive = [];
    this.liveRev = s.rev;
  }

  // ---- replay

  private async replay(w: Watcher): Promise<void> {
    await yieldTurn(); // the watch's answer goes out before its first events
    const pauseAt = this.o['backlog-bytes-max'] / 2;
    while (w.state === 'replay') {
      const s = this.store;
      if (w.cursor <= s.compactRev) return this.end(w, compactedError(w.cursor, s.compactRev));
      if (w.cursor > this.liveRev) {
        w.state = 'live';
        this.index.add(w);
        return;
      }
      if (w.sink.backlogBytes > pauseAt) {
        await Promise.race([w.sink.drained(pauseAt / 2), w.stopped]);
        continue;
      }
      if (w.cursor >= s.firstRev) this.replayLog(w, s, pauseAt);
      else await this.replayHistory(w, s);
      await yieldTurn();
    }
  }

  /** Up to REPLAY_REVS_PER_TURN revs from the log, stopping early once the backlog passes `pauseAt`. */
  private replayLog(w: Watcher, s: BrickStore, pauseAt: number): void {
    const to = Math.min(this.liveRev, w.cursor + REPLAY_REVS_PER_TURN - 1);
    for (let r = w.cursor; r <= to && w.state === 'replay'; r++) {
      const e = s.entry(asRev(r));
      if (e === undefined) throw new AssertionError(`invariant violated: committed entry ${r} is in the log (first ${s.firstRev})`);
      this.replayRev(w, asRev(r), changesOf(e));
      w.cursor = asRev(r + 1);
      if (w.sink.backlogBytes > pauseAt) return;
    }
  }

  /** One window of revs below the log's first rev, rebuilt from history. */
  private async replayHistory(w: Watcher, s: BrickStore): Promise<void> {
    this.stats.historyWindows++;
    const budget = { events: watchReplayEventsMax, bytes: this.o['backlog-bytes-max'] / 4 };
    const { revs, next } = await historyWindow(s, w.range, w.cursor, s.firstRev, budget);
    // The scan yielded: the watch may be gone, or compaction may have overtaken it.
    if (w.state !== 'replay' || w.cursor <= s.compactRev) return;
    for (const { rev, changes } of revs) {
      if (w.state !== 'replay') return;
      this.replayRev(w, rev, changes);
      w.cursor = asRev(rev + 1);
    }
    if (w.state === 'replay') w.cursor = next;
  }

  private replayRev(w: Watcher, rev: Rev, changes: readonly Change[]): void {
    const evs: SharedEvent[] = [];
    for (const c of changes) {
      if (!this.selects(w, c.key)) continue;
      evs.push(this.event(c, rev, w.prevKv));
    }
    if (evs.length > 0) this.send(w, rev, evs);
  }

  private selects(w: Watcher, key: string): boolean {
    if (key.startsWith(RESERVED_PREFIX) && !w.seesReserved) return false;
    if (w.exactKey !== undefined) return key === w.exactKey;
    return inRange(key, w.range);
  }

  // ---- progress

  /** Idle watchers that asked for progress hear the rev every event up to which they have. */
  private tick(): void {
    const now = this.env.clock.nowMs();
    for (const w of this.progressWatchers) {
      if (now - w.lastSentMs < this.o['progress-ms']) continue;
      // live: everything up to liveRev was fanned out; replay: everything before the cursor.
      const p = w.state === 'live' ? this.liveRev : w.cursor - 1;
      if (p < w.fromRev - 1 || p < w.progressRev) continue; // still waiting for its fromRev
      try {
        w.sink.progress(asRev(p));
      } catch (e) {
        this.sinkFailed(e);
        this.end(w, coordError('internal', `watch sink failed: ${e instanceof Error ? e.message : String(e)}`));
        continue;
      }
      w.progressRev = p;
      w.lastSentMs = now;
      this.stats.progressSent++;
    }
  }

  // ---- moved

  /**
   * How long the brick has not heard from a holder, when that is 2·leaseMs or more on a brick of
   * a replicated volume (its log may be behind the volume's); undefined while it is in touch.
   */
  private cutOffMs(): number | undefined {
    const locks = this.locks;
    if (locks === undefined || !this.storeV || this.storeV.config.bricks.length <= 1) return undefined;
    const quietMs = this.env.clock.nowMs() - locks.lastHeardMs();
    return quietMs >= 2 * locks.leaseDurationMs ? quietMs : undefined;
  }

  /** The holder timer: a brick cut off from the holder ends every watch stream `moved`. */
  private checkHolder(): void {
    if (this.watchers.size === 0) return;
    const quietMs = this.cutOffMs();
    if (quietMs === undefined) return;
    for (const w of [...this.watchers.values()]) this.end(w, movedError(this.name, this.cursorOf(w), quietMs));
  }

  /** The next rev a watcher's stream would deliver. */
  private cursorOf(w: Watcher): Rev {
    // live: everything up to liveRev has been fanned out to it (or lies before its first rev).
    return w.state === 'live' ? asRev(Math.max(w.cursor, this.liveRev + 1)) : w.cursor;
  }

  // ---- inspection and lifecycle

  override dump(): Readonly<Record<string, unknown>> {
    const consumers: Record<string, { watchers: number; backlogBytes: number }> = {};
    let replaying = 0;
    let waiting = 0;
    for (const w of this.watchers.values()) {
      if (w.state === 'replay') replaying++;
      else if (w.cursor > this.liveRev + 1) waiting++;
      const c = (consumers[w.sink.owner] ??= { watchers: 0, backlogBytes: 0 });
      c.watchers++;
      // Watchers of one connection share its buffer: the largest reading is the buffer's.
      c.backlogBytes = Math.max(c.backlogBytes, w.sink.backlogBytes);
    }
    return {
      watchers: this.watchers.size,
      live: this.index.size,
      replaying,
      waiting,
      liveRev: this.liveRev,
      cutOff: this.cutOffMs() !== undefined,
      progressMs: this.o['progress-ms'],
      backlogBytesMax: this.o['backlog-bytes-max'],
      ...this.stats,
      consumers,
    };
  }

  override async fini(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.holderTimer !== undefined) clearInterval(this.holderTimer);
    this.unsubscribe?.();
    this.unsubscribeInstalls?.();
    const bye = coordError('closed', 'the volume is shutting down');
    for (const w of [...this.watchers.values()]) this.end(w, bye);
    this.storeV = undefined;
    await super.fini();
  }
}

function compactedError(cursor: number, compactRev: Rev): CoordError {
  return coordError('compacted', `the watch needs rev ${cursor}, at or below the compact rev ${compactRev}`, { compactRev, rev: cursor });
}

function movedError(brick: string, cursor: number, quietMs: number): CoordError {
  return coordError('moved', `${brick} has not heard from a holder for ${Math.round(quietMs)} ms (2·leaseMs or more): its log may be behind the volume's; watch from rev ${cursor} on another master`, { cursor });
}

function snapshotMovedError(brick: string, cursor: number, s: number): CoordError {
  return coordError('moved', `${brick} installed a snapshot at rev ${s}, past the watch's cursor: it no longer holds revs ${cursor}..${s} one by one; watch from rev ${cursor} on another master`, { cursor });
}

export const watchClass: TranslatorClass = {
  type: 'features/watch',
  options,
  // Its watch streams survive a graph switch. Every option change is refused live.
  carried: true,
  subvolumes: { min: 1, max: 1 },
  create: (spec) => new WatchTranslator(spec),
};
