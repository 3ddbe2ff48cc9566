// Untrusted input is checked field by field; first, that it is a plain object at all.

/** A plain object (a msgpack map or record, a JSON object), not an array, Map, Date, Error or typed array. */
export function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}
