// The cluster secret (DESIGN §7): the HMAC key of the handshake. On disk it is text (64 hex
// characters when coordvol makes it); the key is that text, trimmed, as UTF-8 bytes — the same
// bytes a client gets from the file's text or from `connect({ secret })`.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { coordError } from '../../src/common/errors.js';

export const SECRET_BYTES = 32;

/** The key for a secret given as text (trimmed) or as raw bytes. */
export function secretKey(secret: string | Uint8Array, where: string): Uint8Array {
  const key = typeof secret === 'string' ? Buffer.from(secret.trim(), 'utf8') : secret;
  if (key.byteLength === 0) throw coordError('invalid-argument', `${where}: the cluster secret is empty`);
  return key;
}

/** Reads the secret file; with `create`, a missing one is made: 32 random bytes as hex, mode 0600. */
export function loadSecretFile(path: string, create: boolean): Uint8Array {
  if (create) {
    try {
      writeFileSync(path, `${randomBytes(SECRET_BYTES).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      // EEXIST: it is there already (made earlier, or by a concurrent start): read it below.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw coordError('volfile-invalid', `cannot create the cluster secret ${path}: ${(e as Error).message}`, { file: path });
      }
    }
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw coordError('volfile-invalid', `cannot read the cluster secret ${path}: ${(e as Error).message}`, { file: path });
  }
  if (text.trim() === '') throw coordError('volfile-invalid', `the cluster secret ${path} is empty`, { file: path });
  return secretKey(text, path);
}
