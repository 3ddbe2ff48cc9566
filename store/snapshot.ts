// Snapshots (DESIGN §4.8): the committed state at a rev s as a stream of chunks — a header, the
// key versions that compaction keeps, an end marker with a digest. A brick builds an incoming
// snapshot in its inactive table set and swaps it in with one durable write.
import { createHash, type Hash } from 'node:crypto';
import { coordError } from '../src/common/errors.js';
import { asEpoch, asRev, type Epoch, type Rev, type VolumeId } from '../src/common/ids.js';
import { snapshotChunkBytes, snapshotVersionOverheadBytes } from '../src/common/limits.js';
import type { BrickStore } from './brick-store.js';
import type { TableName, WriteOp } from './engine.js';
import { histKey, splitHistKey, tableKey, tableKeyIsLong, shortKeyOf } from './keys.js';
import { asStoredVersion, isTombstone, type StoredVersion } from './records.js';
import type { VolumeConfig } from './types.js';

export const SNAPSHOT_FORMAT = 'coordvol-snapshot/1';

/** One version of one key: the key, the rev it was written at, and its stored form (no `k`). */
export interface SnapshotVersion {
  readonly key: string;
  readonly rev: number;
  readonly v: StoredVersion;
}

export type SnapshotChunk =
  | {
      readonly kind: 'header';
      readonly format: string;
      readonly volumeId: VolumeId;
      readonly volumeName: string;
      readonly rev: Rev;
      readonly epoch: Epoch;
      readonly compactRev: Rev;
      readonly config: VolumeConfig;
      /** The session clock of entry s (DESIGN §4.8, §5), when it has one: a brick based at s reports it as its last entry's. */
      readonly sclock?: number;
    }
  | { readonly kind: 'versions'; readonly items: readonly SnapshotVersion[] }
  | { readonly kind: 'end'; readonly versions: number; readonly digest: string };

function digestVersion(h: Hash, sv: SnapshotVersion): void {
  h.update(sv.key).update('\0').update(String(sv.rev)).update('\0');
  if (sv.v.d === 1) h.update('d');
  else h.update(`${sv.v.c}/${sv.v.n}/${sv.v.s}/`).update(sv.v.v as Uint8Array);
}

/**
 * Streams the state at `rev` (compactRev ≤ rev ≤ commitRev). Physical compaction pauses while
 * the stream is open, so versions the header's compactRev promises stay readable.
 */
export async function* exportSnapshot(store: BrickStore, rev: Rev): AsyncGenerator<SnapshotChunk> {
  if (rev > store.commitRev) throw coordError('future-rev', `snapshot rev ${rev} is above commitRev ${store.commitRev}`);
  if (rev < store.compactRev) throw coordError('compacted', `snapshot rev ${rev} is below compactRev ${store.compactRev}`, { compactRev: store.compactRev });
  const epoch = store.epochAt(rev);
  if (epoch === undefined) throw coordError('compacted', `entry ${rev} has left the log; snapshot at the commitRev instead`);
  const sclock = store.sclockAt(rev);
  const lock = await store.beginExport(rev);
  const compactRev = lock.compactRev;
  const config = lock.config;
  try {
    // While the export waited for its checkpoint, the log may have moved on: a compaction past
    // rev would leave versions at rev unkept, and a trimmed log may no longer tell its config.
    if (compactRev > rev) throw coordError('compacted', `snapshot rev ${rev} is below compactRev ${compactRev}`, { compactRev });
    if (config === undefined) throw coordError('compacted', `the config in force at rev ${rev} has left the log; snapshot at the commitRev instead`);
    yield {
      kind: 'header',
      format: SNAPSHOT_FORMAT,
      volumeId: store.identity.volumeId,
      volumeName: store.identity.volumeName,
      rev,
      epoch,
      compactRev,
      config,
      ...(sclock === undefined ? {} : { sclock }),
    };
    const h = createHash('sha256');
    let items: SnapshotVersion[] = [];
    let bytes = 0;
    let count = 0;
    let curTk: Buffer | undefined;
    let versions: { rev: number; v: StoredVersion }[] = [];
    const keyOf = (tk: Buffer, v: StoredVersion): string => (tableKeyIsLong(tk) ? (v.k as string) : shortKeyOf(tk));
    // A chunk ends at the version that reaches the byte budget, inside a key's history if need
    // be (one key may have many versions): every chunk fits a frame (limits.ts), and the import
    // carries a key across chunks.
    const flushKey = function* (): Generator<SnapshotChunk> {
      if (!curTk) return;
      // Keep the version live at compactRev (unless it is a deletion) and every later one ≤ rev.
      let from = 0;
      for (let i = 0; i < versions.length; i++) if ((versions[i] as { rev: number }).rev <= compactRev) from = i;
      for (let i = from; i < versions.length; i++) {
        const { rev: r, v } = versions[i] as { rev: number; v: StoredVersion };
        if (r <= compactRev && isTombstone(v)) continue;
        const { k: _k, ...rest } = v;
        const sv: SnapshotVersion = { key: keyOf(curTk, v), rev: r, v: rest };
        digestVersion(h, sv);
        items.push(sv);
        bytes += snapshotVersionOverheadBytes + Buffer.byteLength(sv.key) + (v.v?.byteLength ?? 0);
        count++;
        if (bytes >= snapshotChunkBytes) {
          yield { kind: 'versions', items };
          items = [];
          bytes = 0;
        }
      }
    };
    for (const { key, value } of store.engine.range(lock.hist, {})) {
      const { tk, rev: r } = splitHistKey(key as Buffer);
      if (!curTk || !tk.equals(curTk)) {
        yield* flushKey();
        curTk = Buffer.from(tk);
        versions = [];
      }
      if (r <= rev) versions.push({ rev: r, v: asStoredVersion(value) });
    }
    yield* flushKey();
    if (items.length > 0) yield { kind: 'versions', items };
    yield { kind: 'end', versions: count, digest: h.digest('hex') };
  } finally {
    lock.release();
  }
}

/**
 * Installs a snapshot into `store` (a brick of the same volume). Ignored, returning false, when
 * s ≤ the brick's commitRev. Refuses a stream of another volume or one that fails its digest.
 */
export async function importSnapshot(store: BrickStore, chunks: AsyncIterable<SnapshotChunk> | Iterable<SnapshotChunk>, onProgress?: (versions: number) => void): Promise<boolean> {
  let header: Extract<SnapshotChunk, { kind: 'header' }> | undefined;
  const set = store.inactiveSet;
  const kvT = `kv${set}` as TableName;
  const histT = `hist${set}` as TableName;
  const h = createHash('sha256');
  let count = 0;
  let lastKey: string | undefined;
  let latest: { key: string; rev: number; v: StoredVersion } | undefined;
  const kvOp = (l: { key: string; v: StoredVersion }): WriteOp | undefined => {
    if (isTombstone(l.v)) return undefined;
    const tk = tableKey(l.key);
    return { table: kvT, op: 'put', key: tk, value: tableKeyIsLong(tk) ? { ...l.v, k: l.key } : l.v };
  };
  for await (const chunk of chunks) {
    if (chunk.kind === 'header') {
      if (chunk.format !== SNAPSHOT_FORMAT) throw coordError('invalid-argument', `snapshot format ${chunk.format} is not ${SNAPSHOT_FORMAT}`);
      if (chunk.volumeId !== store.identity.volumeId) {
        throw coordError('store-invalid', `snapshot of volume ${chunk.volumeId} offered to a brick of ${store.identity.volumeId}`);
      }
      if (chunk.rev <= store.commitRev) return false;
      header = chunk;
      await store.engine.clear(kvT);
      await store.engine.clear(histT);
      continue;
    }
    if (!header) throw coordError('invalid-argument', 'snapshot stream does not start with a header');
    if (chunk.kind === 'versions') {
      const ops: WriteOp[] = [];
      for (const sv of chunk.items) {
        if (lastKey !== undefined && sv.key !== lastKey && latest) {
          const op = kvOp(latest);
          if (op) ops.push(op);
        }
        if (sv.rev > header.rev) throw coordError('invalid-argument', `snapshot version at ${sv.rev} is above the snapshot rev ${header.rev}`);
        digestVersion(h, sv);
        const tk = tableKey(sv.key);
        ops.push({ table: histT, op: 'put', key: histKey(tk, asRev(sv.rev)), value: tableKeyIsLong(tk) ? { ...sv.v, k: sv.key } : sv.v });
        latest = { key: sv.key, rev: sv.rev, v: sv.v };
        lastKey = sv.key;
        count++;
      }
      await store.engine.write(ops);
      onProgress?.(count);
      continue;
    }
    // end
    if (latest) {
      const op = kvOp(latest);
      if (op) await store.engine.write([op]);
    }
    if (chunk.versions !== count || chunk.digest !== h.digest('hex')) {
      throw coordError('invalid-argument', `snapshot stream is damaged: ${count} versions received, ${chunk.versions} sent, digest mismatch`);
    }
    // The brick may have reached s on its own while the stream travelled (a holder's appends
    // committed past it): it holds that state already, and installing would move commitRev back.
    if (header.rev <= store.commitRev) return false;
    await store.installSnapshot({ epoch: asEpoch(header.epoch), rev: header.rev }, header.compactRev, header.config, header.sclock);
    return true;
  }
  throw coordError('invalid-argument', 'snapshot stream ended without its end marker');
}

