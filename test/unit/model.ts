// A plain in-memory model of the volume's key-value semantics (DESIGN §3), written from the
// contract and nothing else: no product evaluation code, only the key order helpers. Each key
// keeps its whole list of versions (tombstones included); compaction only moves compactRev, so
// the model can tell what the product must still be able to read after it drops history.
import { Buffer } from 'node:buffer';
import { compareKeys } from '../../src/common/keys.js';

export const RESERVED = '/_coordvol/';
const KEY_BYTES_MAX = 4096;
const LIMIT_MAX = 100_000;
const LIMIT_DEFAULT = 10_000;

/** A typed refusal, by the product's error codes. */
export class ModelError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}
const fail = (code: string, msg: string): never => {
  throw new ModelError(code, msg);
};

export interface ModelKv {
  readonly key: string;
  readonly value?: Uint8Array;
  readonly createRev: number;
  readonly modRev: number;
  readonly version: number;
  readonly session: number;
}

interface Rec {
  readonly value: Uint8Array;
  readonly createRev: number;
  readonly modRev: number;
  readonly version: number;
}
interface Version {
  readonly rev: number;
  /** undefined: deleted at this rev. */
  readonly rec: Rec | undefined;
}

export type ModelSelector = { key: string } | { prefix: string } | { start: string; end?: string };
export interface ModelRangeQuery {
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  children?: boolean;
}
export type ModelCompare =
  | { key: string; target: 'value'; op: '=' | '!=' | '<' | '>'; value: Uint8Array }
  | { key: string; target: 'version' | 'createRev' | 'modRev'; op: '=' | '!=' | '<' | '>'; value: number }
  | { key: string; target: 'exists'; op: '=' | '!=' | '<' | '>'; value: boolean };
export type ModelTxnOp =
  | { op: 'put'; key: string; value: Uint8Array; prevKv?: boolean }
  | ({ op: 'delete'; prevKv?: boolean } & ModelSelector)
  | { op: 'get'; key: string }
  | ({ op: 'range' } & ModelSelector & ModelRangeQuery);

// --- argument checks (what the contract says is refused) --------------------------------------

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function checkKey(k: unknown): asserts k is string {
  if (typeof k !== 'string' || k.length === 0) fail('invalid-argument', 'key must be a non-empty string');
  const s = k as string;
  if (s.includes('\u0000')) fail('invalid-argument', 'key contains NUL');
  if (utf8Bytes(s) > KEY_BYTES_MAX) fail('key-too-large', 'key over 4 KiB');
}

function checkWritable(k: unknown): asserts k is string {
  checkKey(k);
  if ((k as string).startsWith(RESERVED)) fail('reserved-key', 'reserved');
}

function checkSelector(sel: Record<string, unknown>): void {
  const n = ['key', 'prefix', 'start'].filter((f) => sel[f] !== undefined).length;
  if (n !== 1) fail('invalid-argument', 'exactly one of key, prefix, start');
  if (sel['key'] !== undefined) checkKey(sel['key']);
  if (sel['prefix'] !== undefined && sel['prefix'] !== '') checkKey(sel['prefix']);
  if (sel['start'] !== undefined) {
    if (sel['start'] !== '') checkKey(sel['start']);
    if (sel['end'] !== undefined) {
      checkKey(sel['end']);
      if (compareKeys(sel['end'] as string, sel['start'] as string) <= 0) fail('invalid-argument', 'end must be above start');
    }
  } else if (sel['end'] !== undefined) fail('invalid-argument', 'end without start');
}

function checkRangeQuery(q: ModelSelector & ModelRangeQuery): void {
  checkSelector(q as unknown as Record<string, unknown>);
  if (q.limit !== undefined && (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > LIMIT_MAX)) fail('invalid-argument', 'limit');
  if (q.children && !('prefix' in q && q.prefix !== undefined)) fail('invalid-argument', 'children needs a prefix');
}

function checkDelete(sel: ModelSelector): void {
  checkSelector(sel as unknown as Record<string, unknown>);
  if ('key' in sel) checkWritable(sel.key);
  // A range delete may span the reserved prefix; the reserved keys in it are skipped.
}

function checkReadRev(rev: unknown): void {
  if (rev !== undefined && (typeof rev !== 'number' || !Number.isInteger(rev) || rev < 0)) fail('invalid-argument', 'rev');
}

function matches(sel: ModelSelector, k: string): boolean {
  if ('key' in sel) return k === sel.key;
  if ('prefix' in sel) return k.startsWith(sel.prefix);
  return compareKeys(k, sel.start) >= 0 && (sel.end === undefined || compareKeys(k, sel.end) < 0);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

function holds(d: number, op: string): boolean {
  return op === '=' ? d === 0 : op === '!=' ? d !== 0 : op === '<' ? d < 0 : d > 0;
}

function kvOf(key: string, r: Rec, keysOnly = false): ModelKv {
  const base = { key, createRev: r.createRev, modRev: r.modRev, version: r.version, session: 0 };
  return keysOnly ? base : { ...base, value: r.value };
}

/** A point-in-time reader: get and ordered scan. */
interface Reader {
  get(key: string): Rec | undefined;
  keys(): Iterable<string>;
}

function rangeOver(r: Reader, q: ModelSelector & ModelRangeQuery): { kvs: ModelKv[]; count: number; more: boolean; children?: string[] } {
  const childSel = q.children ? { prefix: (q as { prefix: string }).prefix.endsWith('/') ? (q as { prefix: string }).prefix : (q as { prefix: string }).prefix + '/' } : q;
  const keys = [...new Set(r.keys())].filter((k) => matches(childSel, k) && r.get(k) !== undefined).sort(compareKeys);
  if (q.children) {
    // Children of P are the keys below P + '/' (ZooKeeper's getChildren).
    const parent = (q as { prefix: string }).prefix;
    const prefix = parent.endsWith('/') ? parent : parent + '/';
    const names = new Set<string>();
    for (const k of keys) {
      const rest = k.slice(prefix.length);
      if (rest === '') continue; // the parent itself is not its own child
      const slash = rest.indexOf('/');
      names.add(slash === -1 ? rest : rest.slice(0, slash));
    }
    const all = [...names].sort(compareKeys);
    const shown = all.slice(0, q.limit ?? LIMIT_DEFAULT);
    return { kvs: [], count: all.length, more: all.length > shown.length, children: shown };
  }
  if (q.countOnly) return { kvs: [], count: keys.length, more: false };
  const shown = keys.slice(0, q.limit ?? LIMIT_DEFAULT);
  return { kvs: shown.map((k) => kvOf(k, r.get(k) as Rec, q.keysOnly === true)), count: keys.length, more: keys.length > shown.length };
}

export class Model {
  /** rev 1 = the config entry, rev 2 = the first holder's epoch-start entry. */
  rev = 2;
  compactRev = 0;
  private readonly history = new Map<string, Version[]>();

  private recAt(key: string, rev: number): Rec | undefined {
    let found: Rec | undefined;
    for (const v of this.history.get(key) ?? []) if (v.rev <= rev) found = v.rec;
    return found;
  }

  private readerAt(rev: number): Reader {
    return { get: (k) => this.recAt(k, rev), keys: () => this.history.keys() };
  }

  private readRev(rev: number | undefined): number {
    checkReadRev(rev);
    const r = rev ?? this.rev;
    if (r > this.rev) fail('future-rev', `${r} > ${this.rev}`);
    if (r < this.compactRev) fail('compacted', `${r} < ${this.compactRev}`);
    return r;
  }

  private commit(writes: Map<string, Rec | undefined>): number {
    this.rev++;
    for (const [k, rec] of writes) {
      const list = this.history.get(k) ?? [];
      list.push({ rev: this.rev, rec });
      this.history.set(k, list);
    }
    return this.rev;
  }

  liveKeys(): number {
    let n = 0;
    for (const k of this.history.keys()) if (this.recAt(k, this.rev)) n++;
    return n;
  }

  get(key: string, opts: { rev?: number } = {}): { rev: number; kv: ModelKv | undefined } {
    checkKey(key);
    const rev = this.readRev(opts.rev);
    const r = this.recAt(key, rev);
    return { rev, kv: r ? kvOf(key, r) : undefined };
  }

  range(q: ModelSelector & ModelRangeQuery & { rev?: number }): { rev: number; kvs: ModelKv[]; count: number; more: boolean; children?: string[] } {
    checkRangeQuery(q);
    const rev = this.readRev(q.rev);
    return { rev, ...rangeOver(this.readerAt(rev), q) };
  }

  put(key: string, value: Uint8Array, opts: { prevKv?: boolean } = {}): { rev: number; key: string; prevKv?: ModelKv | undefined } {
    checkWritable(key);
    const old = this.recAt(key, this.rev);
    const next = this.rev + 1;
    this.commit(new Map([[key, { value, createRev: old ? old.createRev : next, modRev: next, version: old ? old.version + 1 : 1 }]]));
    return { rev: this.rev, key, ...(opts.prevKv ? { prevKv: old ? kvOf(key, old) : undefined } : {}) };
  }

  delete(sel: ModelSelector, opts: { prevKv?: boolean } = {}): { rev: number; deleted: number; prevKvs?: ModelKv[] } {
    checkDelete(sel);
    const r = this.readerAt(this.rev);
    const doomed = [...this.history.keys()].filter((k) => matches(sel, k) && r.get(k) !== undefined).sort(compareKeys);
    const prevKvs = doomed.map((k) => kvOf(k, r.get(k) as Rec));
    if (doomed.length > 0) this.commit(new Map(doomed.map((k) => [k, undefined])));
    return { rev: this.rev, deleted: doomed.length, ...(opts.prevKv ? { prevKvs } : {}) };
  }

  txn(t: { compare: ModelCompare[]; success: ModelTxnOp[]; failure: ModelTxnOp[] }): { rev: number; succeeded: boolean; results: Record<string, unknown>[] } {
    // Validation first, in order: compares, then each branch's ops and its duplicate-write rule.
    for (const c of t.compare) {
      checkKey(c.key);
      if (c.target === 'exists' && c.op !== '=' && c.op !== '!=') fail('invalid-argument', 'exists compares with = or !=');
    }
    for (const branch of [t.success, t.failure]) {
      for (const o of branch) {
        if (o.op === 'put') checkWritable(o.key);
        else if (o.op === 'delete') checkDelete(o);
        else if (o.op === 'get') checkKey(o.key);
        else checkRangeQuery(o);
      }
      const puts = branch.filter((o): o is Extract<ModelTxnOp, { op: 'put' }> => o.op === 'put').map((o) => o.key);
      if (new Set(puts).size !== puts.length) fail('invalid-argument', 'a key is put twice in one branch');
      const dels = branch.filter((o): o is Extract<ModelTxnOp, { op: 'delete' }> => o.op === 'delete');
      if (puts.some((k) => dels.some((d) => matches(d, k)))) fail('invalid-argument', 'a key is put and deleted in one branch');
    }

    const base = this.readerAt(this.rev);
    const succeeded = t.compare.every((c) => {
      const r = base.get(c.key);
      switch (c.target) {
        case 'exists':
          return (r !== undefined) === (c.op === '=' ? c.value : !c.value);
        case 'value':
          return r !== undefined && holds(compareBytes(r.value, c.value), c.op);
        default: {
          const actual = r === undefined ? 0 : c.target === 'version' ? r.version : c.target === 'createRev' ? r.createRev : r.modRev;
          return holds(actual - c.value, c.op);
        }
      }
    });

    // Writes of the branch, all at the next rev; reads of the branch see them.
    const next = this.rev + 1;
    const writes = new Map<string, Rec | undefined>();
    const local: Reader = {
      get: (k) => (writes.has(k) ? writes.get(k) : base.get(k)),
      keys: () => [...this.history.keys(), ...writes.keys()],
    };
    const results: Record<string, unknown>[] = [];
    for (const o of succeeded ? t.success : t.failure) {
      switch (o.op) {
        case 'put': {
          const old = local.get(o.key);
          writes.set(o.key, { value: o.value, createRev: old ? old.createRev : next, modRev: next, version: old ? old.version + 1 : 1 });
          results.push({ op: 'put', key: o.key, ...(o.prevKv ? { prevKv: old ? kvOf(o.key, old) : undefined } : {}) });
          break;
        }
        case 'delete': {
          const doomed = [...new Set(local.keys())].filter((k) => matches(o, k) && local.get(k) !== undefined).sort(compareKeys);
          const prevKvs = doomed.map((k) => kvOf(k, local.get(k) as Rec));
          for (const k of doomed) writes.set(k, undefined);
          results.push({ op: 'delete', deleted: doomed.length, ...(o.prevKv ? { prevKvs } : {}) });
          break;
        }
        case 'get': {
          const r = local.get(o.key);
          results.push({ op: 'get', kv: r ? kvOf(o.key, r) : undefined });
          break;
        }
        case 'range':
          results.push({ op: 'range', ...rangeOver(local, o) });
          break;
      }
    }
    // A key deleted in the branch that did not exist before is no write (it was never live).
    if (writes.size > 0) this.commit(writes);
    return { rev: this.rev, succeeded, results };
  }

  compact(rev: number): { rev: number; compactRev: number } {
    if (!Number.isInteger(rev) || rev < 1) fail('invalid-argument', 'compact rev must be a positive integer');
    if (rev > this.rev) fail('future-rev', `compact ${rev} above ${this.rev}`);
    if (rev <= this.compactRev) fail('compacted', `compact ${rev} at or below ${this.compactRev}`);
    this.commit(new Map());
    this.compactRev = rev;
    return { rev: this.rev, compactRev: rev };
  }
}
