// CLI output: aligned tables for people, JSON for scripts, one-line reasons on error.
import { isCoordError } from '../common/errors.js';

/** Two columns, names left: `key   value`. */
const MAX_SHOWN = 60;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A value for a table cell or a line: UTF-8 text on one line, cut at 60 characters; else its size. */
export function shown(v: Uint8Array | undefined): string {
  if (v === undefined) return '';
  let value: string;
  try {
    value = strictUtf8.decode(v);
  } catch {
    return `<${v.byteLength} bytes, binary>`;
  }
  const line = value.replace(/\n/g, '\\n');
  return line.length > MAX_SHOWN ? line.slice(0, MAX_SHOWN - 1) + '…' : line;
}

export function table(rows: readonly (readonly [string, string | number])[]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** A table with a header row; numeric-looking columns are right-aligned. */
export function columns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^-?[\d.,]+$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Prints an error as one line and sets a non-zero exit code. */
export function fail(e: unknown, json: boolean): void {
  const code = isCoordError(e) ? e.code : 'internal';
  const message = e instanceof Error ? e.message : String(e);
  if (json) process.stderr.write(JSON.stringify({ error: { code, message } }) + '\n');
  else process.stderr.write(`coordvol: ${code}: ${message.split('\n')[0]}\n`);
  process.exitCode = 1;
}
