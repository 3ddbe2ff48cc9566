// Range and get semantics (DESIGN §3), written once over a StateView: bricks serve plain reads
// with it, the holder evaluates reads inside txns with it.
import { compareKeys, RESERVED_PREFIX } from '../src/common/keys.js';
import { rangeBytesMax, rangeLimitDefault } from '../src/common/limits.js';
import type { Rev } from '../src/common/ids.js';
import type { KeyRecord, KeyValue } from '../store/types.js';
import type { KeySelector, RangeQuery, RangeResult } from './ops.js';
import type { StateView } from './state-view.js';
import { selectorRange } from './validate.js';

/**
 * The volume's own records (sessions, their indexes) stay out of ranges that merely span them,
 * as etcd's and ZooKeeper's internals do; a range inside `/_coordvol/` shows them (read-only).
 */
function hidesReserved(start: string): boolean {
  return !start.startsWith(RESERVED_PREFIX);
}

export function toKeyValue(key: string, r: KeyRecord, keysOnly = false): KeyValue {
  // Literal objects, no spread: this is on every read's path.
  if (keysOnly) return { key, createRev: r.createRev, modRev: r.modRev, version: r.version, session: r.session };
  return { key, createRev: r.createRev, modRev: r.modRev, version: r.version, session: r.session, value: r.value };
}

export function readGet(view: StateView, key: string): KeyValue | undefined {
  const r = view.get(key);
  return r ? toKeyValue(key, r) : undefined;
}

export function readRange(view: StateView, q: KeySelector & RangeQuery, rev: Rev): RangeResult {
  if (q.children) return readChildren(view, childrenPrefix(q.prefix as string), q.limit, rev);
  const range = selectorRange(q);
  const hide = hidesReserved(range.start);
  const limit = q.limit ?? rangeLimitDefault;
  const kvs: KeyValue[] = [];
  let count = 0;
  let bytes = 0;
  let full = false; // the byte cap cut the result: the caller reads on from the last key
  for (const { key, record } of view.scan(range)) {
    if (hide && key.startsWith(RESERVED_PREFIX)) continue;
    if (!q.countOnly && !full && kvs.length < limit) {
      const size = key.length + (q.keysOnly ? 0 : record.value.byteLength) + 64;
      if (kvs.length > 0 && bytes + size > rangeBytesMax) full = true;
      else {
        kvs.push(toKeyValue(key, record, q.keysOnly === true));
        bytes += size;
      }
    }
    count++;
  }
  return { rev, kvs, count, more: count > kvs.length && !q.countOnly };
}

/** The children of path P are the keys below P + '/' (ZooKeeper: getChildren('/a') ≠ '/ab'). */
export function childrenPrefix(parent: string): string {
  return parent.endsWith('/') ? parent : parent + '/';
}

/**
 * Direct children of a path (ZooKeeper getChildren): the distinct first segments of the keys
 * below `prefix`. A segment ends at the next '/'. Segments are not contiguous in key order
 * ('/a/b-c' sorts between '/a/b' and '/a/b/x'), hence the set.
 */
function readChildren(view: StateView, prefix: string, limit: number | undefined, rev: Rev): RangeResult {
  const names = new Set<string>();
  const hide = hidesReserved(prefix);
  for (const { key } of view.scan(selectorRange({ prefix }))) {
    if (hide && key.startsWith(RESERVED_PREFIX)) continue;
    const rest = key.slice(prefix.length);
    if (rest.length === 0) continue;
    const cut = rest.indexOf('/');
    names.add(cut < 0 ? rest : rest.slice(0, cut));
  }
  const all = [...names].sort(compareKeys);
  const max = limit ?? rangeLimitDefault;
  const children = all.slice(0, max);
  return { rev, kvs: [], count: all.length, more: all.length > children.length, children };
}
