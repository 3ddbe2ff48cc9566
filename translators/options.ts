// Declarative option tables (GlusterFS's `struct volume_options`): each translator lists its
// options with types and defaults; the graph builder validates a volfile's options against it.
import type { CoordError } from '../src/common/errors.js';
import { volfileError } from './volfile.js';

export type OptionSpec =
  | { readonly type: 'bool'; readonly default?: boolean; readonly description: string }
  | { readonly type: 'int'; readonly min?: number; readonly max?: number; readonly default?: number; readonly description: string }
  /** Bytes; accepts suffixes KB, MB, GB (powers of 1024), e.g. `4MB`. */
  | { readonly type: 'size'; readonly min?: number; readonly max?: number; readonly default?: number; readonly description: string }
  /** Milliseconds; accepts suffixes ms, s, m, h, e.g. `500ms`, `2s`. */
  | { readonly type: 'time'; readonly min?: number; readonly max?: number; readonly default?: number; readonly description: string }
  | { readonly type: 'string'; readonly default?: string; readonly values?: readonly string[]; readonly description: string }
  | { readonly type: 'path'; readonly default?: string; readonly description: string };

export type OptionSchema = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S['type'] extends 'bool' ? boolean : S['type'] extends 'int' | 'size' | 'time' ? number : string;

/** The typed option values a translator receives: options with a default are always present. */
export type OptionValues<S extends OptionSchema> = {
  readonly [K in keyof S as S[K] extends { default: unknown } ? K : never]: ValueOf<S[K]>;
} & {
  readonly [K in keyof S as S[K] extends { default: unknown } ? never : K]?: ValueOf<S[K]>;
};

export type RawOptionValue = boolean | number | string;

/** Where a volume's options come from, for error messages. */
export interface OptionSource {
  readonly file: string;
  readonly volume: string;
  /** The `volume` line: for errors about the volume as a whole rather than one option. */
  readonly line: number;
}

const BOOL_WORDS: Readonly<Record<string, boolean>> = {
  on: true, true: true, yes: true, enable: true,
  off: false, false: false, no: false, disable: false,
};
const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
const TIME_UNITS: Readonly<Record<string, number>> = { '': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Validates a volume's `option KEY VALUE` lines against a translator's schema and converts them
 * to typed values (sizes to bytes, times to ms); options not given get their defaults.
 */
export function parseOptions(
  schema: OptionSchema,
  given: readonly { readonly key: string; readonly value: string; readonly line: number }[],
  where: OptionSource,
): Record<string, RawOptionValue> {
  const out: Record<string, RawOptionValue> = {};
  const seen = new Map<string, number>();
  for (const { key, value, line } of given) {
    const fail = (why: string): CoordError => volfileError(where.file, line, `volume ${where.volume}: option ${key}: ${why}`);
    // hasOwn, not `in`: a key such as `constructor` must not find Object.prototype's.
    const spec = Object.hasOwn(schema, key) ? schema[key] : undefined;
    if (!spec) {
      const known = Object.keys(schema).sort();
      throw fail(`unknown option; known options: ${known.length > 0 ? known.join(', ') : '(none)'}`);
    }
    const first = seen.get(key);
    if (first !== undefined) throw fail(`given twice (first at line ${first})`);
    seen.set(key, line);
    const parsed = parseValue(spec, value);
    if (typeof parsed === 'object') throw fail(parsed.why);
    out[key] = parsed;
  }
  for (const [key, spec] of Object.entries(schema)) {
    if (!Object.hasOwn(out, key) && spec.default !== undefined) out[key] = spec.default;
  }
  return out;
}

/** One value, or why it is refused. */
function parseValue(spec: OptionSpec, value: string): RawOptionValue | { why: string } {
  switch (spec.type) {
    case 'bool': {
      const b = Object.hasOwn(BOOL_WORDS, value.toLowerCase()) ? BOOL_WORDS[value.toLowerCase()] : undefined;
      return b ?? { why: `${JSON.stringify(value)} is not a boolean (on/off, true/false, yes/no, enable/disable)` };
    }
    case 'int':
      return inRange(spec, /^[+-]?\d+$/.test(value) ? Number(value) : undefined, value, 'an integer');
    case 'size':
      return inRange(spec, scaled(value, SIZE_UNITS), value, 'a size (integer with optional B, KB, MB or GB)');
    case 'time':
      return inRange(spec, scaled(value, TIME_UNITS), value, 'a time (integer with optional ms, s, m or h; default ms)');
    case 'string':
      if (spec.values && !spec.values.includes(value)) return { why: `${JSON.stringify(value)} is not one of: ${spec.values.join(', ')}` };
      return value;
    case 'path':
      return value === '' ? { why: 'the path is empty' } : value;
  }
}

/** `<integer><unit>` with a case-insensitive unit from `units` ('' = no unit), or undefined. */
function scaled(value: string, units: Readonly<Record<string, number>>): number | undefined {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(value);
  const unit = m?.[2]?.toLowerCase() ?? '';
  const factor = m && Object.hasOwn(units, unit) ? units[unit] : undefined;
  return factor === undefined ? undefined : Number(m?.[1]) * factor;
}

function inRange(
  spec: { readonly min?: number; readonly max?: number },
  n: number | undefined,
  value: string,
  what: string,
): number | { why: string } {
  if (n === undefined) return { why: `${JSON.stringify(value)} is not ${what}` };
  // Past 2^53 the number is no longer the integer written, so refuse rather than round.
  if (!Number.isSafeInteger(n)) return { why: `${JSON.stringify(value)} is too large` };
  const { min, max } = spec;
  if ((min === undefined || n >= min) && (max === undefined || n <= max)) return n;
  const range = min === undefined ? `at most ${max}` : max === undefined ? `at least ${min}` : `between ${min} and ${max}`;
  const shown = String(n) === value ? value : `${value} (${n})`;
  return { why: `${shown} is out of range: must be ${range}` };
}
