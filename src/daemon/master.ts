// A master process's volume: the graph its volfile describes, initialised and ready to serve.
// The first start in an empty directory writes the embedded default volfile there.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { buildGraph, registry, systemClock, type Clock, type Graph, type Translator } from '../../translators/index.js';
import { coordError } from '../common/errors.js';
import { SwitchableGraph } from './switchable.js';
import { singleBrickVolfile, withListen } from './volfiles.js';

export const VOLFILE_NAME = 'coordvol.vol';

export interface MasterOptions {
  /** Data directory: holds the volfile (unless `volfile` is given) and the brick. */
  readonly dir: string;
  /** An explicit volfile; default: <dir>/coordvol.vol, written on first start. */
  readonly volfile?: string;
  /** Only used when writing the default volfile. */
  readonly fsync?: boolean;
  readonly volumeName?: string;
  readonly leaseMs?: number;
  readonly checkpointEntries?: number;
  /** Serve the volume on host:port (protocol/server): written into a new default volfile, else applied in memory. */
  readonly listen?: string;
  readonly clock?: Clock;
}

export interface Master {
  /** The graph serving now (a volfile edit switches it: DESIGN §8). */
  readonly graph: Graph;
  /** The current graph's top: where every new fop enters. */
  readonly top: Translator;
  readonly volfilePath: string;
  readonly dir: string;
  /** The volfile as this process runs it: the file's text with --listen applied. */
  runText(fileText: string): string;
  /** Switches to an edited volfile (the file's text); refused with a typed error, the graph unchanged. */
  switchTo(fileText: string): Promise<{ switched: boolean }>;
  /** Records a text the master itself is about to write to its volfile: it switches nothing. */
  noteOwnWrite(fileText: string): void;
  /** Whether `fileText` is one of its own writes, forgetting it (see SwitchableGraph.takeOwnWrite). */
  takeOwnWrite(fileText: string): boolean;
  close(): Promise<void>;
}

export async function startMaster(o: MasterOptions): Promise<Master> {
  const dir = resolve(o.dir);
  mkdirSync(dir, { recursive: true });
  const volfilePath = o.volfile ? resolve(o.volfile) : join(dir, VOLFILE_NAME);
  if (!o.volfile && !existsSync(volfilePath)) {
    const text = singleBrickVolfile({
      volumeName: o.volumeName ?? 'coordvol',
      brickDir: 'brick',
      fsync: o.fsync ?? true,
      ...(o.leaseMs !== undefined ? { leaseMs: o.leaseMs } : {}),
      ...(o.checkpointEntries !== undefined ? { checkpointEntries: o.checkpointEntries } : {}),
      ...(o.listen !== undefined ? { listen: o.listen } : {}),
    });
    writeFileSync(volfilePath, text, { mode: 0o644 });
  }
  let text: string;
  try {
    text = readFileSync(volfilePath, 'utf8');
  } catch (e) {
    throw coordError('volfile-invalid', `${volfilePath}: cannot read the volfile: ${(e as Error).message}`, { file: volfilePath });
  }
  const runText = (t: string): string => (o.listen !== undefined ? withListen(t, volfilePath, o.listen) : t);
  const build = { file: volfilePath, registry, env: { clock: o.clock ?? systemClock, baseDir: dirname(volfilePath) } };
  const running = runText(text);
  const graph = buildGraph(running, build);
  await graph.init();
  const sg = new SwitchableGraph(graph, running, build);
  return {
    get graph() {
      return sg.graph;
    },
    get top() {
      return sg.top;
    },
    volfilePath,
    dir,
    runText,
    switchTo: (t) => sg.switchTo(runText(t)),
    noteOwnWrite: (t) => sg.noteOwnWrite(runText(t)),
    takeOwnWrite: (t) => sg.takeOwnWrite(runText(t)),
    close: () => sg.close(),
  };
}
