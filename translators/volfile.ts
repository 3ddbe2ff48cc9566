// The volfile text format (GlusterFS syntax): parsing to declarations with line numbers, and
// writing canonical text back. Only syntax is checked here; whether types, subvolumes and
// options make a valid graph is graph.ts's job, which needs the translator registry.
import { coordError, type CoordError } from '../src/common/errors.js';

export interface VolfileOption {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

export interface VolfileSubvolume {
  readonly name: string;
  readonly line: number;
}

export interface VolfileDecl {
  readonly name: string;
  readonly type: string;
  readonly typeLine: number;
  readonly options: readonly VolfileOption[];
  readonly subvolumes: readonly VolfileSubvolume[];
  /** Line of the `volume` statement. */
  readonly line: number;
}

/** What formatVolfile writes: a declaration without line numbers. */
export interface VolfileDeclText {
  readonly name: string;
  readonly type: string;
  readonly options: readonly { readonly key: string; readonly value: string }[];
  readonly subvolumes: readonly string[];
}

export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const OPTION_KEY_RE = /^[a-z][a-z0-9-]*$/;
/** `category/name`, e.g. `cluster/replicate`, `debug/io-stats`. */
export const TYPE_RE = /^[A-Za-z][A-Za-z0-9_-]*\/[A-Za-z][A-Za-z0-9_.-]*$/;

/** Every volfile error carries the file and line, in the message (for people) and details (for tools). */
export function volfileError(file: string, line: number, message: string): CoordError {
  return coordError('volfile-invalid', `${file}:${line}: ${message}`, { file, line });
}

/** A volume block while it is being read. */
interface OpenDecl {
  name: string;
  type?: { value: string; line: number };
  options: VolfileOption[];
  subvolumes?: VolfileSubvolume[];
  line: number;
}

export function parseVolfile(text: string, file: string): VolfileDecl[] {
  const decls: VolfileDecl[] = [];
  const names = new Set<string>();
  let open: OpenDecl | undefined;
  function fail(line: number, message: string): never {
    throw volfileError(file, line, message);
  }
  function checkName(line: number, what: string, name: string): void {
    if (!VOLUME_NAME_RE.test(name)) fail(line, `invalid ${what} name ${JSON.stringify(name)} (letters, digits, _ . -; not starting with _ . -)`);
  }

  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = i + 1;
    const stmt = raw.trim();
    if (stmt === '' || stmt.startsWith('#')) continue;
    const words = stmt.split(/\s+/);
    const keyword = words[0] ?? '';
    const args = words.slice(1);

    if (keyword === 'volume') {
      if (open) fail(line, `volume inside volume ${open.name} (missing end-volume for the volume at line ${open.line})`);
      if (args.length !== 1) fail(line, 'volume takes exactly one name');
      const name = args[0] ?? '';
      checkName(line, 'volume', name);
      if (names.has(name)) fail(line, `duplicate volume name ${name}`);
      names.add(name);
      open = { name, options: [], line };
      continue;
    }
    if (keyword === 'end-volume') {
      if (!open) fail(line, 'end-volume with no open volume');
      if (args.length !== 0) fail(line, 'end-volume takes no arguments');
      decls.push(close(open, file));
      open = undefined;
      continue;
    }
    if (keyword !== 'type' && keyword !== 'option' && keyword !== 'subvolumes') {
      fail(line, `unknown keyword ${JSON.stringify(keyword)} (expected volume, type, option, subvolumes or end-volume)`);
    }
    if (!open) fail(line, `${keyword} outside a volume block`);

    if (keyword === 'type') {
      if (open.type) fail(line, `volume ${open.name}: type given twice (first at line ${open.type.line})`);
      if (args.length !== 1) fail(line, `volume ${open.name}: type takes exactly one CATEGORY/NAME`);
      const value = args[0] ?? '';
      if (!TYPE_RE.test(value)) fail(line, `volume ${open.name}: invalid type ${JSON.stringify(value)} (expected CATEGORY/NAME)`);
      open.type = { value, line };
    } else if (keyword === 'option') {
      // The value is the rest of the line, spaces included (e.g. a list of hosts).
      const m = /^option\s+(\S+)(?:\s+(.*))?$/s.exec(stmt);
      const key = m?.[1];
      const value = m?.[2]?.trim() ?? '';
      if (key === undefined) fail(line, `volume ${open.name}: option needs a KEY and a VALUE`);
      if (!OPTION_KEY_RE.test(key)) fail(line, `volume ${open.name}: invalid option key ${JSON.stringify(key)} (lower-case letters, digits and -)`);
      if (value === '') fail(line, `volume ${open.name}: option ${key} has no value`);
      const first = open.options.find((o) => o.key === key);
      if (first) fail(line, `volume ${open.name}: option ${key} given twice (first at line ${first.line})`);
      open.options.push({ key, value, line });
    } else {
      if (open.subvolumes) fail(line, `volume ${open.name}: more than one subvolumes line (first at line ${open.subvolumes[0]?.line})`);
      if (args.length === 0) fail(line, `volume ${open.name}: subvolumes needs at least one name`);
      for (const name of args) checkName(line, 'subvolume', name);
      const dup = args.find((n, j) => args.indexOf(n) !== j);
      if (dup !== undefined) fail(line, `volume ${open.name}: subvolume ${dup} listed twice`);
      open.subvolumes = args.map((name) => ({ name, line }));
    }
  }

  if (open) fail(open.line, `volume ${open.name} has no end-volume`);
  if (decls.length === 0) fail(1, 'the volfile declares no volume');
  return decls;
}

function close(open: OpenDecl, file: string): VolfileDecl {
  if (!open.type) throw volfileError(file, open.line, `volume ${open.name} has no type`);
  return {
    name: open.name,
    type: open.type.value,
    typeLine: open.type.line,
    options: open.options,
    subvolumes: open.subvolumes ?? [],
    line: open.line,
  };
}

/**
 * Canonical text for declarations; parseVolfile reads it back to the same declarations.
 * Refuses (invalid-argument) anything that would not survive that round trip, e.g. a value with
 * a newline or surrounding spaces, rather than write a file that means something else.
 */
export function formatVolfile(decls: readonly VolfileDeclText[]): string {
  const blocks = decls.map((d) => {
    checkWritable(d);
    const body = [
      `type ${d.type}`,
      ...d.options.map((o) => `option ${o.key} ${o.value}`),
      ...(d.subvolumes.length > 0 ? [`subvolumes ${d.subvolumes.join(' ')}`] : []),
    ];
    return [`volume ${d.name}`, ...body.map((s) => `    ${s}`), 'end-volume'].join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}

function checkWritable(d: VolfileDeclText): void {
  const bad = (why: string): never => {
    throw coordError('invalid-argument', `cannot write volume ${JSON.stringify(d.name)} as a volfile: ${why}`);
  };
  if (!VOLUME_NAME_RE.test(d.name)) bad('invalid volume name');
  if (!TYPE_RE.test(d.type)) bad(`invalid type ${JSON.stringify(d.type)}`);
  for (const o of d.options) {
    if (!OPTION_KEY_RE.test(o.key)) bad(`invalid option key ${JSON.stringify(o.key)}`);
    if (o.value === '' || o.value !== o.value.trim() || /[\r\n]/.test(o.value)) bad(`option ${o.key}: value must be non-empty, one line, without surrounding spaces`);
  }
  for (const s of d.subvolumes) if (!VOLUME_NAME_RE.test(s)) bad(`invalid subvolume name ${JSON.stringify(s)}`);
}
