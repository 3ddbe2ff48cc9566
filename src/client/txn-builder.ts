// A small txn builder, in the style etcd3's users know:
//
//   const r = await vol.if('/leader', 'exists', '=', false)
//     .then(op.put('/leader', 'node-1'))
//     .else(op.get('/leader'))
//     .commit();
import type { Compare, CompareOp, CompareTarget, KeySelector, RangeQuery, TxnOp, TxnResult } from '../../translators/fops.js';
import { toBytes } from './codec.js';

/** The value a compare takes for each target. */
export type CompareValue<T extends CompareTarget> = T extends 'value' ? Uint8Array | string : T extends 'exists' ? boolean : number;

export function compare<T extends CompareTarget>(key: string, target: T, op: T extends 'exists' ? '=' | '!=' : CompareOp, value: CompareValue<T>): Compare {
  if (target === 'value') return { key, target: 'value', op, value: toBytes(value as Uint8Array | string) };
  if (target === 'exists') return { key, target: 'exists', op: op as '=' | '!=', value: value as boolean };
  return { key, target: target as 'version' | 'createRev' | 'modRev', op, value: value as number };
}

/** Txn op constructors. */
export const op = {
  put: (key: string, value: Uint8Array | string, opts?: { readonly prevKv?: boolean }): TxnOp => ({ op: 'put', key, value: toBytes(value), ...(opts?.prevKv ? { prevKv: true } : {}) }),
  get: (key: string): TxnOp => ({ op: 'get', key }),
  delete: (q: string | KeySelector, opts?: { readonly prevKv?: boolean }): TxnOp => ({ op: 'delete', ...(typeof q === 'string' ? { key: q } : q), ...(opts?.prevKv ? { prevKv: true } : {}) }),
  range: (q: string | (KeySelector & RangeQuery)): TxnOp => ({ op: 'range', ...(typeof q === 'string' ? { prefix: q } : q) }),
};

type Commit = (t: { compare: readonly Compare[]; success: readonly TxnOp[]; failure: readonly TxnOp[] }) => Promise<TxnResult>;

export class TxnBuilder {
  private readonly compares: Compare[] = [];
  private success: TxnOp[] = [];
  private failure: TxnOp[] = [];

  constructor(private readonly run: Commit) {}

  /** Adds a compare; all must hold for the `then` branch. */
  if<T extends CompareTarget>(key: string, target: T, cmp: T extends 'exists' ? '=' | '!=' : CompareOp, value: CompareValue<T>): this {
    this.compares.push(compare(key, target, cmp, value));
    return this;
  }

  /** Another compare (reads better after the first). */
  and<T extends CompareTarget>(key: string, target: T, cmp: T extends 'exists' ? '=' | '!=' : CompareOp, value: CompareValue<T>): this {
    return this.if(key, target, cmp, value);
  }

  then(...ops: TxnOp[]): this {
    this.success = [...this.success, ...ops];
    return this;
  }

  else(...ops: TxnOp[]): this {
    this.failure = [...this.failure, ...ops];
    return this;
  }

  commit(): Promise<TxnResult> {
    return this.run({ compare: this.compares, success: this.success, failure: this.failure });
  }
}
