// Key validation shared by every layer: what a key may be (DESIGN §3) and which are reserved.
import { coordError } from './errors.js';
import { keyBytesMax, valueBytesMax } from './limits.js';

/** Reserved for the volume's own records; read-only to clients. */
export const RESERVED_PREFIX = '/_coordvol/';

const encoder = new TextEncoder();

export function keyByteLength(key: string): number {
  // Buffer.byteLength is exact for UTF-8 and avoids allocating.
  return Buffer.byteLength(key, 'utf8');
}

/** Throws a typed error unless `key` is a valid key (non-empty UTF-8 string, ≤ 4 KiB, no NUL). */
export function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string') throw coordError('invalid-argument', `${what} must be a string`);
  if (key.length === 0) throw coordError('invalid-argument', `${what} must not be empty`);
  // NUL separates a key from its rev in the history index (store/keys.ts).
  if (key.includes('\u0000')) throw coordError('invalid-argument', `${what} must not contain NUL`);
  if (!isWellFormed(key)) throw coordError('invalid-argument', `${what} is not valid UTF-16 (lone surrogate)`);
  const bytes = keyByteLength(key);
  if (bytes > keyBytesMax) {
    throw coordError('key-too-large', `${what} is ${bytes} bytes, over the ${keyBytesMax}-byte limit`, { bytes, max: keyBytesMax });
  }
}

/** A key a client may write: valid and outside the reserved prefix. */
export function checkWritableKey(key: unknown, what = 'key'): asserts key is string {
  checkKey(key, what);
  if (key.startsWith(RESERVED_PREFIX)) {
    throw coordError('reserved-key', `${what} ${JSON.stringify(key)} is under ${RESERVED_PREFIX}, which is read-only to clients`);
  }
}

/** A range bound (start may be '' for "from the first key"). */
export function checkRangeBound(key: unknown, what: string): asserts key is string {
  if (typeof key !== 'string') throw coordError('invalid-argument', `${what} must be a string`);
  if (key.length > 0) checkKey(key, what);
}

export function checkValue(value: unknown, max = valueBytesMax): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw coordError('invalid-argument', 'value must be bytes (Uint8Array)');
  if (value.byteLength > max) {
    throw coordError('value-too-large', `value is ${value.byteLength} bytes, over the ${max}-byte limit`, { bytes: value.byteLength, max });
  }
}

/**
 * The smallest string above every string that starts with `prefix` (etcd's prefix end), or
 * undefined when there is none (the prefix is all U+10FFFF).
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop() as string;
    const cp = last.codePointAt(0) as number;
    if (cp < 0x10ffff) {
      let next = cp + 1;
      if (next === 0xd800) next = 0xe000; // skip the surrogate block: not valid code points
      cps.push(String.fromCodePoint(next));
      return cps.join('');
    }
  }
  return undefined;
}

/**
 * Key order is UTF-8 byte order (= code point order), as in etcd and as LMDB stores them. JS `<`
 * compares UTF-16 code units, which differs only between surrogates and U+E000..U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1; // a surrogate pair encodes a code point above U+FFFF
      return x - y;
    }
  }
  return a.length - b.length;
}

function isWellFormed(s: string): boolean {
  // String.prototype.isWellFormed is Node 20+; keep a fallback for type-checking targets.
  const f = (s as unknown as { isWellFormed?: () => boolean }).isWellFormed;
  return f ? f.call(s) : encoder.encode(s).length === Buffer.byteLength(s);
}
