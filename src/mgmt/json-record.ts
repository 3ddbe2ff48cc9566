// The records management keeps in the volume (the cluster map, volume info) are JSON values that
// anyone may overwrite with `kv put`: decoding one never throws, it says why it is not a record.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A key under a management prefix whose value is not a valid record. */
export interface SkippedRecord {
  readonly key: string;
  readonly reason: string;
}

/** A stored value as JSON (UTF-8), or why it is not. */
export function parseJsonValue(value: Uint8Array | undefined): { ok: unknown } | { bad: string } {
  if (value === undefined) return { bad: 'no value' };
  try {
    return { ok: JSON.parse(utf8.decode(value)) };
  } catch {
    return { bad: 'not JSON' };
  }
}
