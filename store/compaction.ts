// Physical compaction: removes the history a compact entry made unreachable. Versions of one key
// go in one batch, older ones first, so a concurrent read at a rev ≥ compactRev always finds the
// version it needs. Scans in windows of whole keys (about 4096 versions) so no single write is
// unbounded.
import type { Rev } from '../src/common/ids.js';
import type { StorageEngine, TableName, WriteOp } from './engine.js';
import { splitHistKey } from './keys.js';
import { asStoredVersion, isTombstone } from './records.js';

const WINDOW_VERSIONS = 4096;

interface Ver {
  readonly hk: Buffer;
  readonly rev: Rev;
  readonly dead: boolean;
}

/** Deletes, for each key, every version below the one live at `through` (and that one if it is a deletion). */
export async function compactHistory(engine: StorageEngine, hist: TableName, through: Rev, stopped: () => boolean): Promise<void> {
  let start: Buffer | undefined;
  for (;;) {
    const batch: WriteOp[] = [];
    let curTk: Buffer | undefined;
    let versions: Ver[] = [];
    let seen = 0;
    let nextStart: Buffer | undefined;
    const flush = (): void => {
      let live = -1;
      for (let i = 0; i < versions.length; i++) if ((versions[i] as Ver).rev <= through) live = i;
      if (live < 0) return;
      for (let i = 0; i < live; i++) batch.push({ table: hist, op: 'del', key: (versions[i] as Ver).hk });
      if ((versions[live] as Ver).dead) batch.push({ table: hist, op: 'del', key: (versions[live] as Ver).hk });
    };
    for (const { key, value } of engine.range(hist, start === undefined ? {} : { start })) {
      const hk = Buffer.from(key as Buffer);
      const { tk, rev } = splitHistKey(hk);
      if (!curTk || !tk.equals(curTk)) {
        if (seen >= WINDOW_VERSIONS) {
          nextStart = tk;
          break;
        }
        flush();
        curTk = tk;
        versions = [];
      }
      versions.push({ hk, rev, dead: isTombstone(asStoredVersion(value)) });
      seen++;
    }
    if (!nextStart) flush();
    if (batch.length > 0) await engine.write(batch);
    if (!nextStart || stopped()) return;
    start = nextStart;
  }
}
