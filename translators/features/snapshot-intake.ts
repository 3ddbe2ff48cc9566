// features/locks' side of a snapshot heal (DESIGN §4.8): the chunks of each transfer, one at a
// time, into one importSnapshot stream (store/snapshot.ts), which builds the snapshot in the
// brick's inactive table set and swaps it in with one durable write.
//
//  - Every chunk is first a decision of the acceptor (replication/brick.ts snapshotChunk: fenced
//    like an append, adopts a higher epoch durably, sets the lease) — but only once it is known
//    to belong where it claims: a chunk of an unknown transfer, out of seq order, or naming
//    another snapshot than its transfer's header gets a typed error and changes nothing.
//  - Fenced at any chunk: the answer is fenced and that transfer ends.
//  - The header says whether the brick wants it (s above its commitRev). A wanted stream feeds
//    the import through a one-chunk feed (chunk-feed.ts: backpressure); an unwanted one is
//    ignored to its end, which is answered snapshotDone(a, false).
//  - The end chunk of a wanted stream is handled while the brick decides nothing else, from its
//    arrival to its answer (`exclusive`: the install replaces the log the acceptor reads): it
//    waits for the import to install, and is answered snapshotDone(a, installed), or `failed`
//    with the import's error.
//  - One transfer at a time: a new header aborts an older unfinished transfer, and the new
//    import starts only once the old one has stopped writing (both build in the inactive set).
import { assert } from '../../src/common/assert.js';
import { coordError } from '../../src/common/errors.js';
import type { SnapshotChunkReply } from '../../replication/brick.js';
import type { SnapshotChunkArgs, SnapshotResult } from '../../replication/messages.js';
import type { BrickStore } from '../../store/index.js';
import { importSnapshot, type SnapshotChunk } from '../../store/snapshot.js';
import type { SnapshotChunkFopArgs, SnapshotChunkFopResult } from '../fops.js';
import { ChunkFeed } from './chunk-feed.js';

/** What the intake needs of features/locks. */
export interface IntakeBrick {
  readonly store: BrickStore;
  /** The acceptor's decision on a chunk, decided and issued at the call, answered once durable. */
  accept(a: SnapshotChunkArgs): Promise<SnapshotChunkReply>;
  /** The acceptor's answer once a stream ended (installed or ignored), sent once durable. */
  done(a: SnapshotChunkArgs, installed: boolean): Promise<SnapshotResult>;
  /** Runs `f` while the brick decides no other request, after every write issued so far is durable. */
  exclusive<T>(f: () => Promise<T>): Promise<T>;
}

type Outcome = { readonly installed: boolean } | { readonly error: string };

interface Transfer {
  readonly id: string;
  /** The snapshot its header named: every later chunk must name the same. */
  readonly stream: SnapshotChunkArgs;
  nextSeq: number;
  /** A chunk of it is being handled (the carrier sends the next only after the answer). */
  busy: boolean;
  wanted: boolean;
  versions: number;
  /** While wanted: the import's input, and its outcome (never rejects). */
  feed: ChunkFeed | undefined;
  outcome: Promise<Outcome> | undefined;
  ended: boolean;
}

const failed = (message: string): SnapshotResult => ({ ok: false, reason: 'failed', message });
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class SnapshotIntake {
  private current: Transfer | undefined;
  /** Settles when the latest import started has stopped: the next one may use the inactive tables. */
  private importDone: Promise<unknown> = Promise.resolve();
  private readonly stats = { transfers: 0, installed: 0, ignored: 0, fenced: 0, failed: 0, aborted: 0, refusedChunks: 0 };

  constructor(private readonly brick: IntakeBrick) {}

  async chunk(a: SnapshotChunkFopArgs): Promise<SnapshotChunkFopResult> {
    const t = this.admit(a);
    t.busy = true;
    try {
      // The end of a wanted stream installs: from its arrival on the brick decides nothing else,
      // so requests that arrive after it are decided on the installed log.
      if (a.chunk.kind === 'end' && t.wanted) return await this.brick.exclusive(() => this.step(t, a));
      return await this.step(t, a);
    } finally {
      t.busy = false;
    }
  }

  private async step(t: Transfer, a: SnapshotChunkFopArgs): Promise<SnapshotChunkFopResult> {
    const reply = await this.brick.accept(a);
    if (!reply.ok) {
      this.stats.fenced++;
      this.end(t, 'fenced');
      return reply;
    }
    if (a.chunk.kind === 'header') return this.open(t, a.chunk, reply.wanted);
    if (this.current !== t) return failed(`snapshot transfer ${t.id} was aborted by a newer one`);
    if (a.chunk.kind === 'versions') return this.feed(t, a.chunk);
    return this.finish(t, a);
  }

  /**
   * The transfer a chunk belongs to (a new one for a header), or a typed error that changes
   * nothing: an unknown transfer, a chunk out of seq order, one that names another snapshot.
   */
  private admit(a: SnapshotChunkFopArgs): Transfer {
    const cur = this.current;
    const refuse = (why: string): never => {
      this.stats.refusedChunks++;
      throw coordError('invalid-argument', `snapshot chunk ${a.seq} of transfer ${a.transfer}: ${why}`, { transfer: a.transfer, seq: a.seq });
    };
    if (a.seq === 0) {
      assert(a.chunk.kind === 'header', 'chunk 0 is a header (checked off the wire)');
      if (cur?.id === a.transfer) refuse('the transfer has begun already');
      const stream = { epoch: a.epoch, sender: a.sender, rev: a.rev, revEpoch: a.revEpoch };
      return { id: a.transfer, stream, nextSeq: 1, busy: false, wanted: false, versions: 0, feed: undefined, outcome: undefined, ended: false };
    }
    if (cur === undefined || cur.id !== a.transfer) return refuse('no such transfer is open here');
    if (cur.busy) return refuse(`chunk ${cur.nextSeq - 1} is still being handled`);
    if (a.seq !== cur.nextSeq) return refuse(`expected chunk ${cur.nextSeq}`);
    const s = cur.stream;
    if (a.epoch !== s.epoch || a.sender !== s.sender || a.rev !== s.rev || a.revEpoch !== s.revEpoch) {
      return refuse(`it names (epoch ${a.epoch}, ${a.sender}, rev ${a.rev}/${a.revEpoch}), its header (epoch ${s.epoch}, ${s.sender}, rev ${s.rev}/${s.revEpoch})`);
    }
    cur.nextSeq++;
    return cur;
  }

  /** A header the acceptor let through: the transfer becomes the current one. */
  private async open(t: Transfer, header: SnapshotChunk, wanted: boolean): Promise<SnapshotChunkFopResult> {
    const old = this.current;
    this.current = t;
    this.stats.transfers++;
    if (old) {
      this.stats.aborted++;
      this.end(old, `aborted by transfer ${t.id}`);
    }
    // The import last started (the aborted one's, or one before it) stops writing the inactive
    // tables before this one clears them.
    await this.importDone;
    if (this.current !== t) return failed(`snapshot transfer ${t.id} was aborted by a newer one`);
    t.wanted = wanted;
    if (!wanted) return { ok: true, wanted: false };
    const feed = new ChunkFeed();
    t.feed = feed;
    t.outcome = importSnapshot(this.brick.store, feed).then(
      (installed): Outcome => ({ installed }),
      (e: unknown): Outcome => ({ error: messageOf(e) }),
    );
    this.importDone = t.outcome;
    return this.feed(t, header);
  }

  /** A header or versions chunk into a wanted stream's import (an unwanted one ignores it). */
  private async feed(t: Transfer, chunk: SnapshotChunk): Promise<SnapshotChunkFopResult> {
    if (!t.wanted) return { ok: true, wanted: false };
    const feed = t.feed;
    assert(feed !== undefined && t.outcome !== undefined, 'a wanted transfer has an import');
    try {
      await feed.push(chunk);
      if (chunk.kind === 'versions') t.versions += chunk.items.length;
      return { ok: true, wanted: true };
    } catch {
      // The import stopped before it took the chunk: it failed, or it found the brick at s already.
      const o = await t.outcome;
      if ('error' in o) {
        this.stats.failed++;
        this.end(t, o.error);
        return failed(o.error);
      }
      assert(!o.installed, 'an import installs only at the end chunk');
      t.wanted = false;
      return { ok: true, wanted: false };
    }
  }

  /** The end chunk: the import installs (inside exclusive, see chunk()), or the ignored stream ends. */
  private async finish(t: Transfer, a: SnapshotChunkFopArgs): Promise<SnapshotChunkFopResult> {
    assert(a.chunk.kind === 'end', 'finish takes the end chunk');
    if (!t.wanted) {
      this.stats.ignored++;
      this.end(t, undefined);
      return this.brick.done(a, false);
    }
    await t.feed?.push(a.chunk).catch(() => undefined); // a stopped import: its outcome says why
    const o = await (t.outcome as Promise<Outcome>);
    this.end(t, 'error' in o ? o.error : undefined);
    if ('error' in o) {
      this.stats.failed++;
      return failed(o.error);
    }
    if (o.installed) this.stats.installed++;
    else this.stats.ignored++;
    return this.brick.done(a, o.installed);
  }

  /** Ends `t`: no longer current; an import still reading gets `why` (its outcome settles soon after). */
  private end(t: Transfer, why: string | undefined): void {
    if (this.current === t) this.current = undefined;
    if (t.ended) return;
    t.ended = true;
    if (why !== undefined) t.feed?.fail(coordError('closed', `snapshot transfer ${t.id} ended: ${why}`));
  }

  /** Aborts the open transfer (the brick is shutting down); resolves once its import has stopped. */
  async close(): Promise<void> {
    const t = this.current;
    if (t) this.end(t, 'the brick is shutting down');
    await this.importDone;
  }

  dump(): Record<string, unknown> {
    const t = this.current;
    const open = t ? { transfer: t.id, rev: t.stream.rev, sender: t.stream.sender, epoch: t.stream.epoch, nextSeq: t.nextSeq, wanted: t.wanted, versions: t.versions } : null;
    return { snapshotTransfer: open, snapshotStats: { ...this.stats } };
  }
}
