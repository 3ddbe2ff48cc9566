// cluster/replicate's carrier of snapshot heals (DESIGN §4.8). When the holder asks for one (a
// `snapshot` brick request: the target needs entries the local log no longer holds), it exports
// the local brick's committed state at its commitRev s — the holder's log is its local brick's —
// and streams it to the target brick's subvolume as snapshotChunk calls (features/locks answers
// them: snapshot-intake.ts), one at a time, each sent once the one before is answered
// (backpressure: the target imports as fast as it can, no faster). The answer to the request is
// the end chunk's answer; `fenced` stops the stream at once; any error — the export, the
// connection, a timeout — answers `failed`, and the holder asks again later.
//
// One transfer per target brick at a time: a request for a target whose transfer is running at
// the same epoch gets that transfer's answer (the holder re-asks one that outlives its timeout);
// one of another epoch stops the old transfer before its next chunk, then starts anew.
import { createHash, randomUUID } from 'node:crypto';
import { assert } from '../../src/common/assert.js';
import type { Rev } from '../../src/common/ids.js';
import type { SnapshotArgs, SnapshotResult } from '../../replication/messages.js';
import type { BrickStore } from '../../store/index.js';
import { exportSnapshot, type SnapshotChunk } from '../../store/snapshot.js';
import type { SnapshotChunkFopResult, SnapshotProgress } from '../fops.js';
import type { Clock, Translator } from '../translator.js';

export interface SnapshotSenderDeps {
  readonly clock: Clock;
  /** The local brick: the snapshot's source. */
  readonly store: () => BrickStore;
  /** How long one chunk's answer may take (the end chunk's includes the target's install). */
  readonly chunkTimeoutMs: number;
}

interface Transfer {
  readonly id: string;
  readonly args: SnapshotArgs;
  readonly rev: Rev;
  readonly startedAtMs: number;
  versionsSent: number;
  chunksSent: number;
  bytesSent: number;
  stopped: string | undefined;
  done: Promise<SnapshotResult>;
}

/** The end marker of a stream cut short (the target holds s already): no versions, and the digest of none. */
const EMPTY_DIGEST = createHash('sha256').digest('hex');

const failed = (message: string): SnapshotResult => ({ ok: false, reason: 'failed', message });

export class SnapshotSender {
  private readonly running = new Map<string, Transfer>();
  /** The latest finished transfer per target, for statedump. */
  private readonly finished = new Map<string, { rev: Rev; result: SnapshotResult; versionsSent: number; tookMs: number }>();
  private stopAllReason: string | undefined;

  constructor(private readonly deps: SnapshotSenderDeps) {}

  /** Ships a snapshot to brick `to` through `via` (its subvolume). Never rejects. */
  async send(to: string, via: Translator, args: SnapshotArgs): Promise<SnapshotResult> {
    for (;;) {
      const r = this.running.get(to);
      if (r === undefined) break;
      if (r.args.epoch === args.epoch && r.args.sender === args.sender) return r.done;
      r.stopped ??= `a transfer at epoch ${args.epoch} replaces it`;
      await r.done;
    }
    if (this.stopAllReason !== undefined) return failed(this.stopAllReason);
    const store = this.deps.store();
    const t: Transfer = {
      id: randomUUID(),
      args,
      rev: store.commitRev,
      startedAtMs: this.deps.clock.nowMs(),
      versionsSent: 0,
      chunksSent: 0,
      bytesSent: 0,
      stopped: undefined,
      done: Promise.resolve(failed('not started')),
    };
    this.running.set(to, t);
    t.done = this.ship(store, via, t).then((result) => {
      this.running.delete(to);
      this.finished.set(to, { rev: t.rev, result, versionsSent: t.versionsSent, tookMs: this.deps.clock.nowMs() - t.startedAtMs });
      return result;
    });
    return t.done;
  }

  private async ship(store: BrickStore, via: Translator, t: Transfer): Promise<SnapshotResult> {
    let seq = 0;
    let revEpoch = t.args.epoch;
    const call = (chunk: SnapshotChunk): Promise<SnapshotChunkFopResult> =>
      via.call('snapshotChunk', { deadlineMs: this.deps.clock.nowMs() + this.deps.chunkTimeoutMs }, { ...t.args, rev: t.rev, revEpoch, transfer: t.id, seq: seq++, chunk });
    try {
      for await (const chunk of exportSnapshot(store, t.rev)) {
        const stop = t.stopped ?? this.stopAllReason;
        if (stop !== undefined) return failed(`snapshot transfer stopped: ${stop}`);
        if (chunk.kind === 'header') revEpoch = chunk.epoch;
        const res = await call(chunk);
        this.count(t, chunk);
        if (chunk.kind === 'end') return final(res);
        if (!res.ok) return res;
        if (!('wanted' in res)) return failed(`the target answered chunk ${seq - 1} as if it ended the stream`);
        // The target holds the state at s already: it ignores the stream, so end it here.
        if (!res.wanted) return final(await call({ kind: 'end', versions: 0, digest: EMPTY_DIGEST }));
      }
      assert(false, 'a snapshot export ends with its end marker');
    } catch (e) {
      return failed(e instanceof Error ? e.message : String(e));
    }
  }

  private count(t: Transfer, chunk: SnapshotChunk): void {
    t.chunksSent++;
    if (chunk.kind !== 'versions') return;
    t.versionsSent += chunk.items.length;
    for (const i of chunk.items) t.bytesSent += Buffer.byteLength(i.key) + (i.v.v?.byteLength ?? 0);
  }

  /** The transfer to `to` now running, if any. */
  progress(to: string): SnapshotProgress | undefined {
    const t = this.running.get(to);
    if (!t) return undefined;
    return { rev: t.rev, versionsSent: t.versionsSent, chunksSent: t.chunksSent, bytesSent: t.bytesSent, elapsedMs: Math.max(0, this.deps.clock.nowMs() - t.startedAtMs) };
  }

  /** Running transfers stop before their next chunk (this master stepped down, or shuts down). */
  stopAll(why: string, forGood: boolean): void {
    for (const t of this.running.values()) t.stopped ??= why;
    if (forGood) this.stopAllReason = why;
  }

  dump(): Record<string, unknown> {
    return {
      running: Object.fromEntries([...this.running.keys()].map((to) => [to, { ...this.progress(to), transfer: this.running.get(to)?.id }])),
      finished: Object.fromEntries(this.finished),
    };
  }
}

/** The answer to an end chunk: the stream's result (never `{ ok, wanted }`). */
function final(res: SnapshotChunkFopResult): SnapshotResult {
  return 'wanted' in res ? failed('the target answered the end chunk as a chunk within the stream') : res;
}
