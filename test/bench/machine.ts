// One line naming the machine a benchmark ran on, for the tables in BENCHMARKS.md.
import { execSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

export function machine(): string {
  const fs = (() => {
    try {
      return execSync('findmnt -no FSTYPE -T .', { encoding: 'utf8', timeout: 5_000 }).trim();
    } catch {
      return 'unknown';
    }
  })();
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${fs} disk, Node ${process.version}`;
}

/** Replaces the text between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` in `text`. */
export function replaceSection(text: string, name: string, section: string, file: string): string {
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file} lacks the ${begin} … ${end} markers`);
  return text.slice(0, a + begin.length) + '\n' + section + '\n' + text.slice(b);
}

/**
 * replaceSection, or, when `text` lacks the section's markers, `text` with `heading`, the markers
 * and the section appended at its end (the first run of a new kind of table).
 */
export function upsertSection(text: string, name: string, section: string, heading: string): string {
  if (text.includes(`<!-- bench:${name}:begin -->`) && text.includes(`<!-- bench:${name}:end -->`)) return replaceSection(text, name, section, 'BENCHMARKS.md');
  return `${text.trimEnd()}\n\n${heading}\n\n<!-- bench:${name}:begin -->\n${section}\n<!-- bench:${name}:end -->\n`;
}
