// A master's running graph across volfile edits (DESIGN §8): the current graph, switched one edit
// at a time (translators/graph-switch.ts). Callers reach the graph through `top`, which is always
// the current graph's top, so new fops go to the new graph as soon as it serves.
//
// The master's own rewrites of the volfile (the committed config written back after a
// membership change) switch nothing: noted with noteOwnWrite() before the write, they become the
// membership guard's reference text, so a later operator edit is compared with what the master
// wrote rather than refused for the brick list the master itself changed.
import { coordError } from '../common/errors.js';
import { switchGraph, type SwitchOptions } from '../../translators/graph-switch.js';
import type { BuildOptions, Graph } from '../../translators/graph.js';
import type { Translator } from '../../translators/translator.js';
import { formatVolfile } from '../../translators/volfile.js';
import { declsOf } from './volfiles.js';

/** Own writes remembered at once: a master writes one per config commit, and each is seen soon after. */
const OWN_WRITES_MAX = 16;

export type SwitchableGraphOptions = BuildOptions & Pick<SwitchOptions, 'drainMs' | 'onRetireError'>;

export class SwitchableGraph {
  private current: Graph;
  private previous: string;
  /** The switch in progress (or the last one), for serialising the next. Never rejects. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly ownWrites: string[] = [];
  private closing: Promise<void> | undefined;

  /** `graph` is up and was built from `text` with the same registry and env as `opts`. */
  constructor(graph: Graph, text: string, private readonly opts: SwitchableGraphOptions) {
    this.current = graph;
    this.previous = text;
  }

  get graph(): Graph {
    return this.current;
  }

  /** The current graph's top: where every new fop enters. */
  get top(): Translator {
    return this.current.top;
  }

  /** The text the membership guard compares an edit with: the last switched to, or the master's own last write. */
  get previousText(): string {
    return this.previous;
  }

  /**
   * Switches to the volfile `text` after any switch in progress. Not switched: the text is the
   * previous one, differs from it only in comments and layout, or is the master's own write (then
   * adopted as the previous text). Refused with the switch's typed error, the graph unchanged.
   */
  switchTo(text: string): Promise<{ switched: boolean }> {
    const run = this.queue.then(() => this.switchNow(text));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Records a volfile text the master itself is about to write (see the header). */
  noteOwnWrite(text: string): void {
    this.ownWrites.push(text);
    if (this.ownWrites.length > OWN_WRITES_MAX) this.ownWrites.shift();
    // Adopted after any switch in progress, even if the watcher never passes the write on.
    const run = this.queue.then(() => void (this.previous = text));
    this.queue = run.catch(() => undefined);
  }

  /**
   * Whether `text` is one of the master's own recent writes (the watcher skips those), forgetting
   * it: an operator who later writes the same text back (undoing an edit) makes an edit.
   */
  takeOwnWrite(text: string): boolean {
    const i = this.ownWrites.indexOf(text);
    if (i < 0) return false;
    this.ownWrites.splice(i, 1);
    return true;
  }

  /** Tears down the current graph after any switch in progress; later switches are refused `closed`. */
  close(): Promise<void> {
    this.closing ??= this.queue.then(() => this.current.fini());
    return this.closing;
  }

  private async switchNow(text: string): Promise<{ switched: boolean }> {
    if (this.closing) throw coordError('closed', `${this.opts.file}: the master is shutting down; the volfile edit is not applied`);
    const own = this.ownWrites.indexOf(text);
    if (own >= 0) {
      this.ownWrites.splice(own, 1);
      this.previous = text;
      return { switched: false };
    }
    if (text === this.previous || sameGraph(this.previous, text, this.opts.file)) {
      this.previous = text;
      return { switched: false };
    }
    await switchGraph(this.current, text, {
      ...this.opts,
      previousText: this.previous,
      onSwitched: (next) => {
        this.current = next;
        this.previous = text;
      },
    });
    return { switched: true };
  }
}

/** Both texts declare the same graph (they differ in comments, blank lines or spacing only). */
function sameGraph(a: string, b: string, file: string): boolean {
  try {
    return canonical(a, file) === canonical(b, file);
  } catch {
    return false; // one does not parse: the switch reports it
  }
}

function canonical(text: string, file: string): string {
  return formatVolfile(declsOf(text, file));
}
