// One process per brick directory: LMDB is multi-process safe, but a brick's volatile state
// (lease record, unapplied entries, commit point) lives in one process, and two holders on one
// brick would fence each other. The lock is a pid file created with O_EXCL; a stale file (its
// process is gone) is taken over.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { coordError } from '../src/common/errors.js';
import { pidAlive } from '../src/common/pid.js';

export interface DirLock {
  release(): void;
}


export function lockDir(dir: string): DirLock {
  const path = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          try {
            unlinkSync(path);
          } catch {
            // already gone: nothing to release
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw coordError('store-invalid', `cannot lock ${dir}: ${(e as Error).message}`);
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid) && pid !== process.pid) {
        throw coordError('store-invalid', `brick directory ${dir} is in use by process ${pid}`, { pid });
      }
      if (pid === process.pid) throw coordError('store-invalid', `brick directory ${dir} is already open in this process`);
      unlinkSync(path); // stale: its process is gone
    }
  }
  throw coordError('store-invalid', `cannot lock ${dir}: the lock file keeps changing`);
}
