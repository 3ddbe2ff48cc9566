// host:port as the volfile options and connect() take them ("127.0.0.1:7420", "[::1]:7420").
import { coordError, type ErrorCode } from '../common/errors.js';

export interface Address {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses host:port; `what` names the option in the error, `code` is its code (a volfile option's
 * error is volfile-invalid). Port 0 (any free port) only if allowed.
 */
export function parseAddress(s: string, what: string, allowPortZero = false, code: ErrorCode = 'invalid-argument'): Address {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(s.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (host === undefined || !Number.isInteger(port) || port > 65535 || (port === 0 && !allowPortZero)) {
    throw coordError(code, `${what}: ${JSON.stringify(s)} is not host:port${allowPortZero ? '' : ' (port 1-65535)'}`);
  }
  return { host, port };
}

/** A list of host:port separated by spaces or commas. */
export function parseAddressList(s: string, what: string, code: ErrorCode = 'invalid-argument'): Address[] {
  const list = s.split(/[\s,]+/).filter((x) => x.length > 0).map((x) => parseAddress(x, what, false, code));
  if (list.length === 0) throw coordError(code, `${what}: no host:port given`);
  return list;
}

export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
