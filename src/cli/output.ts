// CLI output: aligned tables for people, JSON for scripts, one-line reasons on error.
import { isCoordError } from '../common/errors.js';

export function table(rows: readonly (readonly [string, string | number])[]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** Prints an error as one line and sets a non-zero exit code. */
export function fail(e: unknown, json: boolean): void {
  const code = isCoordError(e) ? e.code : 'internal';
  const message = e instanceof Error ? e.message : String(e);
  if (json) process.stderr.write(JSON.stringify({ error: { code, message } }) + '\n');
  else process.stderr.write(`coordvol: ${code}: ${message.split('\n')[0]}\n`);
  process.exitCode = 1;
}
