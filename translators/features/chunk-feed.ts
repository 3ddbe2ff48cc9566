// A one-chunk hand-off from features/locks' chunk handler to importSnapshot (store/snapshot.ts),
// which reads its input as an async iterable. push() resolves once the import has taken the
// chunk — that is, once it has finished with the chunk before — so a transfer holds at most the
// chunk being imported and the one waiting: the carrier awaits each answer before it sends the
// next chunk, and that answer waits here (backpressure end to end, no unbounded queue).
import { assert } from '../../src/common/assert.js';
import { coordError } from '../../src/common/errors.js';
import type { SnapshotChunk } from '../../store/snapshot.js';

interface Waiting {
  readonly chunk: SnapshotChunk;
  readonly taken: () => void;
  readonly refused: (e: Error) => void;
}

interface Reader {
  readonly resolve: (r: IteratorResult<SnapshotChunk>) => void;
  readonly reject: (e: Error) => void;
}

export class ChunkFeed implements AsyncIterable<SnapshotChunk> {
  private waiting: Waiting | undefined;
  private reader: Reader | undefined;
  private failure: Error | undefined;
  private stoppedV = false;

  /** The import stopped reading (it finished, failed, or the feed was failed): pushes are refused. */
  get stopped(): boolean {
    return this.stoppedV;
  }

  /** Hands `chunk` to the import; resolves when taken, rejects if the import stops first. */
  push(chunk: SnapshotChunk): Promise<void> {
    if (this.stoppedV) return Promise.reject(this.failure ?? stoppedError());
    assert(this.waiting === undefined, 'a chunk feed takes one chunk at a time');
    const r = this.reader;
    if (r) {
      this.reader = undefined;
      r.resolve({ value: chunk, done: false });
      return Promise.resolve();
    }
    return new Promise((taken, refused) => (this.waiting = { chunk, taken, refused }));
  }

  /** Ends the stream with `e`: the import's next read throws it, a chunk still waiting is refused. */
  fail(e: Error): void {
    if (this.stoppedV) return;
    this.stoppedV = true;
    this.failure = e;
    this.reader?.reject(e);
    this.reader = undefined;
    this.waiting?.refused(e);
    this.waiting = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<SnapshotChunk> {
    return {
      next: () => {
        if (this.failure) return Promise.reject(this.failure);
        if (this.stoppedV) return Promise.resolve({ value: undefined, done: true });
        const w = this.waiting;
        if (w) {
          this.waiting = undefined;
          w.taken();
          return Promise.resolve({ value: w.chunk, done: false });
        }
        assert(this.reader === undefined, 'a chunk feed has one reader');
        return new Promise((resolve, reject) => (this.reader = { resolve, reject }));
      },
      // for-await calls this when the import leaves its loop (a return or a throw).
      return: () => {
        if (!this.stoppedV) {
          this.stoppedV = true;
          this.waiting?.refused(stoppedError());
          this.waiting = undefined;
        }
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

function stoppedError(): Error {
  return coordError('closed', 'the snapshot import has stopped reading');
}
