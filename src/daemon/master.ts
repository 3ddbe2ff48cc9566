// A master process's volume: the graph its volfile describes, initialised and ready to serve.
// The first start in an empty directory writes the embedded default volfile there.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { buildGraph, registry, systemClock, type Clock, type Graph, type Translator } from '../../translators/index.js';
import { coordError } from '../common/errors.js';
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
  readonly graph: Graph;
  readonly top: Translator;
  readonly volfilePath: string;
  readonly dir: string;
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
  if (o.listen !== undefined) text = withListen(text, volfilePath, o.listen);
  const graph = buildGraph(text, { file: volfilePath, registry, env: { clock: o.clock ?? systemClock, baseDir: dirname(volfilePath) } });
  await graph.init();
  let closed: Promise<void> | undefined;
  return {
    graph,
    top: graph.top,
    volfilePath,
    dir,
    close: () => (closed ??= graph.fini()),
  };
}
