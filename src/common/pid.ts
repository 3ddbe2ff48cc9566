// Whether a process lives, by its pid: for brick directory locks, `cluster down`, and the tests
// and benchmarks that start processes and must clean them up.
import { readFileSync } from 'node:fs';

/**
 * Signal 0 reaches it (EPERM: it exists, owned by someone else) and it is not a zombie (killed,
 * not yet reaped by its parent: it answers signal 0 but is gone).
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    // No /proc (not Linux), or it went in between: signal 0 said it was there.
    return process.platform !== 'linux';
  }
}
