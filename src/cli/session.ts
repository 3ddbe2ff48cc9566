// `coordvol session ls`, and `coordvol kv put --ephemeral`: a key held under a session of this
// process for as long as it runs in the foreground — the shell's way to register a service:
//
//   coordvol kv put --ephemeral --ttl 3000 /cluster/alive/$(hostname) up &
//
// SIGINT or SIGTERM closes the session, so the key goes at once, and the command exits 0; a
// process that is killed outright stops its keepalives, and the volume expires the session
// within about its ttl. A session lost while running (expired, or the masters unreachable for
// its ttl) is printed as one line, and the command exits 1.
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { coordError } from '../common/errors.js';
import type { PutResult, SessionInfo } from '../../translators/fops.js';
import { globals, run } from './context.js';
import { columns, table } from './output.js';

/** The ttl of a session `kv put --ephemeral` opens without --ttl. */
export const EPHEMERAL_TTL_MS_DEFAULT = 10_000;

/** A --ttl value: a whole number of ms (the volume checks its bounds). */
export function ttlOpt(v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw coordError('invalid-argument', `--ttl must be a whole number of milliseconds, not ${JSON.stringify(v)}`);
  return n;
}

/** 2400 → "2.4s", 3000 → "3s", 250 → "0.25s". */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(2))}s`;
}

export interface EphemeralPutOpts {
  readonly ttl?: string;
  readonly sequential?: boolean;
  readonly prevKv?: boolean;
}

/** `kv put --ephemeral`: opens a session, puts the key under it, and holds it until a signal. */
export async function putEphemeral(cmd: Command, key: string, value: Uint8Array, o: EphemeralPutOpts): Promise<void> {
  const json = globals(cmd).json;
  // Handlers go in first: a signal at any point from here on ends the session, never the process.
  let stop: (signal: string) => void = () => undefined;
  let stoppedBy: string | undefined;
  const stopped = new Promise<string>((resolve) => (stop = resolve)).then((sig) => (stoppedBy = sig));
  const onInt = (): void => stop('SIGINT');
  const onTerm = (): void => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  // The session's timers do not hold the event loop open (a library must not); this command must.
  const hold = setInterval(() => undefined, 1 << 30);
  try {
    await run(
      cmd,
      async (vol) => {
        const ttlMs = ttlOpt(o.ttl, EPHEMERAL_TTL_MS_DEFAULT);
        const session = await vol.openSession({ ttlMs, owner: `coordvol kv put ${hostname()}:${process.pid}` });
        try {
          if (stoppedBy !== undefined) return { session: session.id, signal: stoppedBy };
          const r: PutResult = await vol.put(key, value, { session, ...(o.sequential ? { sequential: true } : {}), ...(o.prevKv ? { prevKv: true } : {}) });
          const info = { rev: r.rev, key: r.key, session: session.id, ttlMs: session.ttlMs };
          process.stdout.write(
            json
              ? JSON.stringify(info) + '\n'
              : `${table([['key', r.key], ['session', session.id], ['ttl', `${session.ttlMs} ms`], ['rev', r.rev]])}\nholding the key until Ctrl-C or SIGTERM (then it goes at once)\n`,
          );
          const lost = await Promise.race([stopped.then(() => undefined), session.lost]);
          if (lost !== undefined) throw coordError(lost.code, `session ${session.id} lost, so ${r.key} is gone: ${lost.message}`, { session: session.id, key: r.key });
          await session.close();
          return { session: session.id, signal: stoppedBy ?? '' };
        } finally {
          if (!session.isLost) await session.close().catch(() => undefined);
        }
      },
      {
        human: (r) => `closed session ${r.session} on ${r.signal}: its keys are gone`,
        json: (r) => ({ closed: true, session: r.session, signal: r.signal }),
      },
    );
  } finally {
    clearInterval(hold);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

function sessionRows(sessions: readonly SessionInfo[]): string[][] {
  return sessions.map((s) => [String(s.id), s.client ? 'client' : 'keys', seconds(s.ttlMs), seconds(Math.max(0, s.remainingMs)), s.state, String(s.keys), s.owner]);
}

export function registerSession(program: Command): void {
  const session = program.command('session').description('inspect sessions (the owners of ephemeral keys)');
  session
    .command('ls')
    .description("list the volume's sessions: ttl, time left before expiry, state, keys owned, owner")
    .addHelpText(
      'after',
      '\nKIND is "client" for a client library\'s own session (it names the client\'s writes, so a\nretried write is applied once), "keys" for a session opened to own ephemeral keys.\nREMAINING is the holder\'s view: the time until it expires the session unless a keepalive\narrives. An idle session has missed keepalives for ttl/2.\n\nExamples:\n  coordvol session ls\n  coordvol session ls --json | jq \'.sessions[] | select(.state == "idle")\'',
    )
    .action(async (_o: unknown, cmd: Command) => {
      await run(cmd, (v) => v.sessions(), {
        human: (r) => {
          const summary = `${r.sessions.length} session${r.sessions.length === 1 ? '' : 's'} at rev ${r.rev}`;
          if (r.sessions.length === 0) return summary;
          return columns(['ID', 'KIND', 'TTL', 'REMAINING', 'STATE', 'KEYS', 'OWNER'], sessionRows(r.sessions)) + '\n' + summary;
        },
        json: (r) => ({ rev: r.rev, sessions: r.sessions }),
      });
    });
}
