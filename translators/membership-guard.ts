// The membership guard of a graph switch (DESIGN §8): the brick list and quorum live in the log
// after the first start, so an edit of them in the volfile reconfigures nothing — it is refused,
// naming `peer probe` / `peer detach`, and the running graph is left as it was. The edit is
// compared with the text the running graph was built from (or that the master last wrote), not
// with the running graph: the running replicate may hold links it made at run time.
import { coordError, type CoordError } from '../src/common/errors.js';
import type { CheckedVolfile } from './graph.js';
import type { RawOptionValue } from './options.js';
import type { VolfileDecl } from './volfile.js';

/** How a field's values compare: as one value, as a list in order, or as a set. */
type Shape = 'value' | 'list' | 'set';

/** A storage translator's options that make the volume's initial config and the brick's place in it. */
const STORAGE_FIELDS: Readonly<Record<string, Shape>> = {
  'volume-name': 'value', brick: 'value', 'volume-bricks': 'set', 'quorum-count': 'value', directory: 'value',
};
/** cluster/replicate's options that say which brick and master is behind each remote subvolume. */
const REPLICATE_FIELDS: Readonly<Record<string, Shape>> = { 'remote-bricks': 'list', 'remote-masters': 'list', 'holder-id': 'value' };

export const MEMBERSHIP_HINT =
  'the brick list and quorum change only through `coordvol peer probe HOST --as-master` / `coordvol peer detach HOST` ' +
  '(or `coordvol volume reconfigure`); the running graph is unchanged';

/** One membership field of one volume: its normalised value and where the text sets it. */
interface Field {
  readonly volume: string;
  /** An option name, `type` (the volume is there, of this type), or `subvolumes`. */
  readonly field: string;
  readonly value: string | undefined;
  readonly line: number;
}

/**
 * Refuses (`membership-edit`) a volfile whose membership fields differ from `previous`'s: the
 * first difference in the new text's line order, naming the volume, the field and its line.
 */
export function guardMembership(previous: CheckedVolfile, next: CheckedVolfile, file: string): void {
  const before = fieldsOf(previous);
  const after = fieldsOf(next);
  const diffs: { readonly f: Field; readonly was: string | undefined; readonly now: string | undefined; readonly line?: number }[] = [];
  for (const [key, f] of after) {
    const was = before.get(key)?.value;
    if (was !== f.value) diffs.push({ f, was, now: f.value, line: f.line });
  }
  for (const [key, f] of before) if (!after.has(key)) diffs.push({ f, was: f.value, now: undefined });
  // A volume added, removed or retyped first (its options differ only because of that), then the
  // replicate's set of links, then options; each in line order, removals (no line) last.
  const rank = (f: Field): number => (f.field === 'type' ? 0 : f.field === 'subvolumes' ? 1 : 2);
  diffs.sort((a, b) => rank(a.f) - rank(b.f) || (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER));
  const d = diffs[0];
  if (d) throw membershipError(file, d.line, d.f, d.was, d.now);
}

function membershipError(file: string, line: number | undefined, f: Field, was: string | undefined, now: string | undefined): CoordError {
  const what =
    f.field === 'type'
      ? now === undefined
        ? `volume ${f.volume} (${was}) was removed`
        : was === undefined
          ? `volume ${f.volume} (${now}) was added`
          : `volume ${f.volume}: type changed from ${was} to ${now}`
      : `volume ${f.volume}: ${f.field === 'subvolumes' ? 'its protocol/client subvolumes' : `option ${f.field}`} changed (was ${shown(was)}, now ${shown(now)})`;
  const where = line === undefined ? `${file}: ` : `${file}:${line}: `;
  return coordError('membership-edit', `${where}${what}: ${MEMBERSHIP_HINT}`, {
    file, ...(line === undefined ? {} : { line }), volume: f.volume, field: f.field,
  });
}

const shown = (v: string | undefined): string => (v === undefined ? '(unset)' : JSON.stringify(v));

/** Every membership field of a volfile, by `volume field`. */
function fieldsOf(v: CheckedVolfile): Map<string, Field> {
  const out = new Map<string, Field>();
  const add = (f: Field): void => void out.set(`${f.volume} ${f.field}`, f);
  const options = (d: VolfileDecl, table: Readonly<Record<string, Shape>>): void => {
    const parsed = v.options.get(d.name) ?? {};
    for (const [key, shape] of Object.entries(table)) {
      add({ volume: d.name, field: key, value: normalised(parsed[key], shape), line: d.options.find((o) => o.key === key)?.line ?? d.line });
    }
  };
  for (const d of v.decls) {
    const isStorage = d.type.startsWith('storage/');
    if (!isStorage && d.type !== 'cluster/replicate') continue;
    add({ volume: d.name, field: 'type', value: d.type, line: d.typeLine });
    if (isStorage) {
      options(d, STORAGE_FIELDS);
      continue;
    }
    options(d, REPLICATE_FIELDS);
    // The links to the other masters' bricks: which, in which order, and where each connects.
    const clients = d.subvolumes.map((s) => v.byName.get(s.name)).filter((c): c is VolfileDecl => c?.type === 'protocol/client');
    add({ volume: d.name, field: 'subvolumes', value: clients.map((c) => c.name).join(' '), line: d.subvolumes[0]?.line ?? d.line });
    for (const c of clients) {
      const remote = v.options.get(c.name)?.['remote'];
      add({ volume: c.name, field: 'remote', value: normalised(remote, 'list'), line: c.options.find((o) => o.key === 'remote')?.line ?? c.line });
    }
  }
  return out;
}

/** A value as compared: lists split as their readers split them (volumeConfigOf, replicate's mapRemotes). */
function normalised(value: RawOptionValue | undefined, shape: Shape): string | undefined {
  if (value === undefined) return undefined;
  const s = String(value);
  if (shape === 'value') return s;
  const items = s.split(shape === 'set' ? /\s+/ : /[\s,]+/).filter((x) => x.length > 0);
  return (shape === 'set' ? items.sort() : items).join(' ');
}
