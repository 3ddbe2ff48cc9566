// Value helpers: values are bytes; these encode and decode the common shapes.
import { pack, unpack } from 'msgpackr';

const utf8 = new TextDecoder('utf-8', { fatal: false });

export const text = {
  encode: (s: string): Uint8Array => Buffer.from(s, 'utf8'),
  decode: (b: Uint8Array): string => utf8.decode(b),
};

export const json = {
  encode: (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v), 'utf8'),
  decode: <T = unknown>(b: Uint8Array): T => JSON.parse(utf8.decode(b)) as T,
};

export const msgpack = {
  encode: (v: unknown): Uint8Array => pack(v),
  decode: <T = unknown>(b: Uint8Array): T => unpack(b) as T,
};

/** Strings are stored as their UTF-8 bytes. */
export function toBytes(v: Uint8Array | string): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

