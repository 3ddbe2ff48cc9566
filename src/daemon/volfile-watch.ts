// Watching a master's volfile on disk (DESIGN §8) with chokidar: each settled edit's text goes to
// `onText` (the graph switch), one at a time. Editors save in place or atomically (write a temp
// file, rename it over the volfile); both are seen because the volfile's folder is watched, not
// the file's inode, and chokidar's `atomic` turns an unlink + add into one change. A burst of
// events (a chunked write, an editor's several syscalls) is debounced into one read.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { watch } from 'chokidar';
import { coordError } from '../common/errors.js';

export interface VolfileWatchOptions {
  readonly path: string;
  /** Applies an edit (switches the graph); a rejection goes to onError. */
  readonly onText: (text: string) => Promise<void>;
  /** The master's own rewrite of the volfile: skipped. */
  readonly isOwnWrite: (text: string) => boolean;
  /** A refused edit, an unreadable file, a watcher failure. The running graph is unaffected. */
  readonly onError: (e: unknown) => void;
  /** The text the running graph was built from (default: the file as watching starts). */
  readonly initialText?: string;
  /** Quiet time after the last event before the file is read (default 50 ms). */
  readonly debounceMs?: number;
  /** chokidar's awaitWriteFinish: the size must hold this long (default 50 ms). */
  readonly stabilityMs?: number;
}

export interface VolfileWatcher {
  /** Resolves once the watch is in place: edits from then on are seen. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export function watchVolfile(o: VolfileWatchOptions): VolfileWatcher {
  const file = resolve(o.path);
  const dir = dirname(file);
  const debounceMs = o.debounceMs ?? 50;
  const stabilityMs = o.stabilityMs ?? 50;
  /** The text now applied: an edit back to it needs no switch. Set only once onText accepted. */
  let lastText: string | undefined = o.initialText;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const watcher = watch(dir, {
    depth: 0,
    ignoreInitial: true,
    atomic: true,
    awaitWriteFinish: { stabilityThreshold: stabilityMs, pollInterval: Math.max(5, Math.floor(stabilityMs / 5)) },
    // Only the volfile (and its folder, which chokidar must read to see it).
    ignored: (p: string) => resolve(p) !== file && resolve(p) !== dir,
  });

  const handle = async (): Promise<void> => {
    await ready;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      // Between an editor's unlink and rename the file is briefly missing: its add comes next.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      o.onError(coordError('volfile-invalid', `${file}: cannot read the volfile: ${(e as Error).message}`, { file }));
      return;
    }
    if (closed || text === lastText) return;
    if (o.isOwnWrite(text)) {
      lastText = text;
      return;
    }
    try {
      await o.onText(text);
      lastText = text;
    } catch (e) {
      // Not remembered: saving the same text again retries it (and reports it again).
      o.onError(e);
    }
  };

  const fire = (): void => {
    timer = undefined;
    if (closed) return;
    if (running) {
      again = true; // read once more when the edit being applied is done
      return;
    }
    running = handle().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        fire();
      }
    });
  };

  const schedule = (path: string): void => {
    if (closed || resolve(path) !== file) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
  };

  watcher.on('add', schedule);
  watcher.on('change', schedule);
  watcher.on('error', (e) => o.onError(e));

  // The text to compare the first edit with: read now, before any edit can be seen.
  const initial = lastText !== undefined ? Promise.resolve() : readFile(file, 'utf8').then((t) => void (lastText ??= t), () => undefined);
  const ready = Promise.all([initial, new Promise<void>((ok) => watcher.once('ready', ok))]).then(() => undefined);

  return {
    ready,
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      await watcher.close();
      await running;
    },
  };
}
