// A daemon's identity in the cluster map (DESIGN §8), like glusterd's UUID in glusterd.info: made
// once, at the first start in a data directory, and kept in `<dir>/uuid` for every later start.
// Two daemons that share a data directory share the uuid, as two glusterds would.
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { coordError } from '../common/errors.js';

export const UUID_FILE = 'uuid';

/** The canonical form: lowercase, as crypto.randomUUID() writes it. */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID_RE.test(s);
}

function readUuid(path: string): string {
  const text = readFileSync(path, 'utf8').trim().toLowerCase(); // a hand-written file may be uppercase
  if (!UUID_RE.test(text)) {
    const shown = text === '' ? 'empty' : JSON.stringify(text.slice(0, 60));
    throw coordError('store-invalid', `${path} does not hold a UUID (${shown}): restore it, or remove it to make this daemon a new peer`, { path });
  }
  return text;
}

/**
 * The uuid in `<dir>/uuid`, made (and `dir` created) on first use. Throws `store-invalid` if the
 * file holds anything but a UUID — never replaces it: a new uuid would make this a new peer.
 */
export function daemonUuid(dir: string): string {
  const path = join(dir, UUID_FILE);
  try {
    return readUuid(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(dir, { recursive: true });
  const content = `${randomUUID()}\n`;
  // Written whole aside, then linked into place: link fails with EEXIST if another process got
  // there first, and a reader never sees a half-written file (a plain 'wx' open would show an
  // empty one to a concurrent reader).
  const tmp = join(dir, `.${UUID_FILE}.${process.pid}.${randomUUID()}`);
  writeSynced(tmp, content);
  try {
    linkSync(tmp, path);
    syncDir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS') {
      // A filesystem without hard links: create the file in place ('wx': EEXIST if it is there).
      try {
        writeSynced(path, content);
        syncDir(dir);
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw e2;
      }
    } else if (code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readUuid(path); // ours, or the one a concurrent first start made
}

/** Creates `path` (never overwriting: 'wx'), mode 0644, with `content`, synced. */
function writeSynced(path: string, content: string): void {
  const fd = openSync(path, 'wx', 0o644);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the new directory entry durable (best effort: not every platform can fsync a directory). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // EISDIR/EPERM on some platforms: the file itself is synced already.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
