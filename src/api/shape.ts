// JSON shapes of the HTTP API: values are bytes, so a kv carries `valueBase64` always and `value`
// as text when the bytes are valid UTF-8; txn requests give a value as `value` (text) or
// `valueBase64`. Everything else is the library's shape. Arguments are converted here, not
// validated: the volume validates every request where it enters the graph, with typed errors.
import { isUtf8 } from 'node:buffer';
import { coordError } from '../common/errors.js';
import type { Compare, KeyValue, TxnOp, TxnOpResult, TxnResult } from '../../translators/fops.js';

export interface KvJson {
  readonly key: string;
  /** The value as UTF-8 text, or null when the bytes are not valid UTF-8. Absent with keysOnly. */
  readonly value?: string | null;
  /** The value's bytes. Absent with keysOnly. */
  readonly valueBase64?: string;
  readonly createRev: number;
  readonly modRev: number;
  readonly version: number;
  readonly session: number;
}

export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength); // a view, not a copy
}

export function kvJson(kv: KeyValue): KvJson {
  const meta = { createRev: kv.createRev, modRev: kv.modRev, version: kv.version, session: kv.session };
  if (kv.value === undefined) return { key: kv.key, ...meta };
  const b = asBuffer(kv.value);
  return { key: kv.key, value: isUtf8(b) ? b.toString('utf8') : null, valueBase64: b.toString('base64'), ...meta };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding; anything else is refused rather than silently skipped. */
export function decodeBase64(s: string, where: string): Uint8Array {
  if (!BASE64.test(s)) throw coordError('invalid-argument', `${where} is not valid base64 (standard alphabet, padded)`);
  return Buffer.from(s, 'base64');
}

/** A value given as text or base64: exactly one of them. */
function valueBytes(o: { readonly value?: unknown; readonly valueBase64?: string | undefined }, where: string): Uint8Array {
  if (o.value !== undefined && o.valueBase64 !== undefined) throw coordError('invalid-argument', `${where}: give value or valueBase64, not both`);
  if (o.valueBase64 !== undefined) return decodeBase64(o.valueBase64, `${where}.valueBase64`);
  if (typeof o.value === 'string') return Buffer.from(o.value, 'utf8');
  if (o.value === undefined) throw coordError('invalid-argument', `${where} needs value (UTF-8 text) or valueBase64`);
  throw coordError('invalid-argument', `${where}.value must be text (or give valueBase64)`);
}

export interface CompareJson {
  readonly key: string;
  readonly target: string;
  readonly op: string;
  readonly value?: string | number | boolean;
  readonly valueBase64?: string;
}

export interface TxnOpJson {
  readonly op: 'put' | 'delete' | 'get' | 'range';
  readonly key?: string;
  readonly value?: string;
  readonly valueBase64?: string;
  readonly prefix?: string;
  readonly start?: string;
  readonly end?: string;
  readonly prevKv?: boolean;
  readonly session?: number;
  readonly sequential?: boolean;
  readonly limit?: number;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly children?: boolean;
}

export interface TxnJson {
  readonly compare?: readonly CompareJson[];
  readonly success?: readonly TxnOpJson[];
  readonly failure?: readonly TxnOpJson[];
}

function compareArg(c: CompareJson, i: number): Compare {
  const where = `compare[${i}]`;
  if (c.target === 'value') return { key: c.key, target: 'value', op: c.op, value: valueBytes(c, where) } as Compare;
  if (c.valueBase64 !== undefined) throw coordError('invalid-argument', `${where}: valueBase64 goes with target "value" only`);
  return { key: c.key, target: c.target, op: c.op, value: c.value } as Compare;
}

function txnOpArg(o: TxnOpJson, where: string): TxnOp {
  const { value, valueBase64, ...rest } = o;
  if (o.op === 'put') return { ...rest, value: valueBytes({ value, valueBase64 }, where) } as TxnOp;
  if (value !== undefined || valueBase64 !== undefined) throw coordError('invalid-argument', `${where}: only a put takes a value`);
  return rest as TxnOp;
}

export function txnArgs(t: TxnJson): { compare: Compare[]; success: TxnOp[]; failure: TxnOp[] } {
  return {
    compare: (t.compare ?? []).map(compareArg),
    success: (t.success ?? []).map((o, i) => txnOpArg(o, `success[${i}]`)),
    failure: (t.failure ?? []).map((o, i) => txnOpArg(o, `failure[${i}]`)),
  };
}

function txnOpResultJson(r: TxnOpResult): Record<string, unknown> {
  switch (r.op) {
    case 'put':
      return { op: 'put', key: r.key, ...(r.prevKv ? { prevKv: kvJson(r.prevKv) } : {}) };
    case 'delete':
      return { op: 'delete', deleted: r.deleted, ...(r.prevKvs ? { prevKvs: r.prevKvs.map(kvJson) } : {}) };
    case 'get':
      return { op: 'get', kv: r.kv ? kvJson(r.kv) : null };
    case 'range':
      return { op: 'range', count: r.count, more: r.more, kvs: r.kvs.map(kvJson), ...(r.children ? { children: r.children } : {}) };
  }
}

export function txnResultJson(r: TxnResult): { rev: number; succeeded: boolean; results: Record<string, unknown>[] } {
  return { rev: r.rev, succeeded: r.succeeded, results: r.results.map(txnOpResultJson) };
}

/** JSON for free-form dumps: bytes as base64, bigints as decimal text, maps and sets as objects and lists. */
export function dumpJson(x: unknown): string {
  return JSON.stringify(x, function (this: Record<string, unknown>, k: string, v: unknown) {
    const original = this[k]; // before toJSON: a Buffer's would list its bytes as numbers
    if (original instanceof Uint8Array) return { base64: asBuffer(original).toString('base64') };
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Map) return Object.fromEntries(v);
    if (v instanceof Set) return [...v];
    return v;
  });
}
