// What every client command shares: the global options (--server, --secret-file, --json,
// --timeout), the connection they make, and how results and errors are printed.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { coordError } from '../common/errors.js';
import { connect } from '../client/remote.js';
import type { Volume } from '../client/volume.js';
import { fail } from './output.js';

export const DEFAULT_SERVER = '127.0.0.1:7420';
export const DEFAULT_SECRET_FILE = './coordvol-data/secret';

export interface GlobalOpts {
  readonly server: string;
  readonly secretFile: string;
  readonly json: boolean;
  readonly timeout: number;
}

export function globals(cmd: Command): GlobalOpts {
  const o = cmd.optsWithGlobals<{ server?: string; secretFile?: string; json?: boolean; timeout?: string }>();
  const timeout = Number(o.timeout ?? 10_000);
  return {
    server: o.server ?? process.env['COORDVOL_SERVER'] ?? DEFAULT_SERVER,
    secretFile: o.secretFile ?? process.env['COORDVOL_SECRET_FILE'] ?? DEFAULT_SECRET_FILE,
    json: o.json === true,
    timeout: Number.isFinite(timeout) && timeout > 0 ? timeout : 10_000,
  };
}

export function readSecret(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw coordError('invalid-argument', `cannot read the cluster secret at ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'}): pass --secret-file or set COORDVOL_SECRET_FILE`);
  }
}

/**
 * Runs a command against the volume at --server and prints its result: `json(result)` with
 * --json, else `human(result)`. Any error becomes one line on stderr and exit code 1.
 */
export async function run<T>(cmd: Command, f: (v: Volume) => Promise<T>, out: { human: (r: T) => string; json: (r: T) => unknown }): Promise<void> {
  const g = globals(cmd);
  let vol: Volume | undefined;
  try {
    // A one-shot command opens no client session (two more entries per command): a write in
    // flight when its connection breaks fails `indeterminate`, as etcdctl's would.
    vol = await connect({ servers: g.server.split(','), secret: readSecret(g.secretFile), timeoutMs: g.timeout, exactlyOnce: false });
    const r = await f(vol);
    const text = g.json ? JSON.stringify(out.json(r)) : out.human(r);
    if (text !== '') process.stdout.write(text + '\n'); // '' : the command printed raw bytes itself
  } catch (e) {
    fail(e, g.json);
  } finally {
    await vol?.close().catch(() => undefined);
  }
}
