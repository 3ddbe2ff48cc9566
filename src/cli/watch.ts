// `coordvol kv watch PREFIX`: prints the changes under a prefix as they commit, one line per
// event (`REV  PUT|DELETE  KEY  VALUE`, or a JSON object per line with --json), until Ctrl-C or
// --count events. The library resumes the watch across reconnects without gaps.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { kvJson } from '../api/shape.js';
import { coordError } from '../common/errors.js';
import { connect } from '../client/remote.js';
import type { Volume } from '../client/volume.js';
import type { Watcher, WatchEvent } from '../client/watch.js';
import { globals } from './context.js';
import { fail, shown } from './output.js';

function count(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw coordError('invalid-argument', `${name} must be an integer ≥ ${min}, not ${JSON.stringify(v)}`);
  return n;
}

function line(rev: number, e: WatchEvent, json: boolean): string {
  if (json) return JSON.stringify({ rev, type: e.type, kv: kvJson(e.kv), ...(e.prevKv ? { prevKv: kvJson(e.prevKv) } : {}) });
  const value = e.type === 'put' ? shown(e.kv.value) : '';
  const prev = e.prevKv ? `  (was: ${shown(e.prevKv.value)})` : '';
  return `${rev}  ${e.type === 'put' ? 'PUT' : 'DELETE'}  ${e.kv.key}  ${value}${prev}`.trimEnd();
}

function readSecret(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw coordError('invalid-argument', `cannot read the cluster secret at ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'}): pass --secret-file or set COORDVOL_SECRET_FILE`);
  }
}

interface WatchCliOpts {
  fromRev?: string;
  prevKv?: boolean;
  count?: string;
}

/** Adds `watch` to the `kv` command (registered by kv.ts). */
export function registerWatch(program: Command): void {
  const kv = program.commands.find((c) => c.name() === 'kv');
  if (!kv) throw new Error('registerWatch: the kv command is registered first');
  kv.command('watch <prefix>')
    .description('print changes under a prefix as they commit, until Ctrl-C (or --count events)')
    .option('--from-rev <rev>', 'start at this rev (history first, then live); default: from now')
    .option('--prev-kv', 'also print the value each event replaced')
    .option('--count <n>', 'exit after n events')
    .addHelpText('after', "\nOutput: one line per event, `REV  PUT|DELETE  KEY  VALUE` (--json: one JSON object per line).\n\nExamples:\n  coordvol kv watch /volumes/\n  coordvol kv watch /cluster/peers/ --from-rev 1 --json\n  coordvol kv watch '' --count 1   # wait for the next change to any key")
    .action(async (prefix: string, o: WatchCliOpts, cmd: Command) => {
      const g = globals(cmd);
      let vol: Volume | undefined;
      let watcher: Watcher | undefined;
      const stop = (): void => void watcher?.cancel();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const fromRev = count(o.fromRev, '--from-rev', 1);
        const max = count(o.count, '--count', 1);
        vol = await connect({ servers: g.server.split(','), secret: readSecret(g.secretFile), timeoutMs: g.timeout, exactlyOnce: false });
        watcher = vol.watch(prefix, { ...(fromRev !== undefined ? { fromRev } : {}), ...(o.prevKv ? { prevKv: true } : {}) });
        let printed = 0;
        for await (const m of watcher) {
          if (m.kind !== 'events') continue;
          const out: string[] = [];
          for (const e of m.events) {
            out.push(line(m.rev, e, g.json));
            if (max !== undefined && ++printed >= max) break;
          }
          process.stdout.write(out.join('\n') + '\n');
          if (max !== undefined && printed >= max) break;
        }
      } catch (e) {
        fail(e, g.json);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await watcher?.cancel();
        await vol?.close().catch(() => undefined);
      }
    });
}
