// `coordvol lock NAME -- COMMAND [ARGS...]`: flock(1) for a cluster. Waits for the lock, runs the
// command with COORDVOL_LOCK_TOKEN (the fencing token) and COORDVOL_LOCK_KEY in its environment,
// releases the lock when it exits, and exits with its status (128 + n if signal n ended it).
//
// If the lock is lost while the command runs (the session expired, or the masters were out of
// reach for its ttl), the command is sent SIGTERM — SIGKILL after a grace period — and coordvol
// exits 1 with a one-line reason: work done under a lost lock must stop. SIGTERM and SIGHUP sent
// to coordvol are passed to the command; SIGINT is not, since Ctrl-C already reaches the whole
// foreground process group. A signal while waiting gives up the wait and leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { coordError, type CoordError } from '../common/errors.js';
import { lock, LOCK_TTL_MS_DEFAULT } from '../client/recipes/lock.js';
import { run } from './context.js';
import { ttlOpt } from './session.js';

/** How long a command has to exit after SIGTERM, once its lock is lost, before SIGKILL. */
const KILL_GRACE_MS = 5_000;

type Exit = { readonly kind: 'exit'; readonly status: number } | { readonly kind: 'lost'; readonly why: CoordError };

/** The shell's convention: the exit code, or 128 + the number of the signal that ended it. */
function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal !== null ? (constants.signals[signal] ?? 0) : 0);
}

function exited(child: ChildProcess, file: string): Promise<Exit> {
  return new Promise((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => reject(coordError('invalid-argument', `cannot run ${file}: ${e.code ?? e.message}`)));
    child.once('exit', (code, signal) => resolve({ kind: 'exit', status: exitStatus(code, signal) }));
  });
}

/** SIGTERM now, SIGKILL if the command is still there after the grace period. */
async function stopChild(child: ChildProcess, done: Promise<unknown>): Promise<void> {
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  await done.catch(() => undefined);
  clearTimeout(timer);
}

export function registerLock(program: Command): void {
  program
    .command('lock <name> <command...>')
    .description('run a command while holding a lock; release it when the command exits, exit with its status')
    .option('--ttl <ms>', 'how long the lock outlives a killed coordvol (its session ttl; default 10000)')
    .addHelpText(
      'after',
      `
Put -- before the command so that its options are not read as coordvol's. The command gets
COORDVOL_LOCK_TOKEN (the fencing token: it only grows from one holder to the next) and
COORDVOL_LOCK_KEY. If the lock is lost while it runs, the command gets SIGTERM and coordvol
exits 1.

Examples:
  coordvol lock db-migrate -- ./migrate.sh
  coordvol lock nightly --ttl 30000 -- sh -c 'backup --fence "$COORDVOL_LOCK_TOKEN"'`,
    )
    .action(async (name: string, command: string[], o: { ttl?: string }, cmd: Command) => {
      const waiting = new AbortController();
      let child: ChildProcess | undefined;
      const onSignal = (sig: NodeJS.Signals): void => {
        if (child) {
          if (sig !== 'SIGINT') child.kill(sig);
        } else waiting.abort(coordError('closed', `${sig} while waiting for lock ${name}`));
      };
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      for (const s of signals) process.on(s, onSignal);
      try {
        await run(
          cmd,
          async (vol) => {
            const [file, ...args] = command;
            if (file === undefined || file === '') throw coordError('invalid-argument', 'lock needs a command to run');
            const held = await lock(vol, name, { ttlMs: ttlOpt(o.ttl, LOCK_TTL_MS_DEFAULT), signal: waiting.signal });
            try {
              const env = { ...process.env, COORDVOL_LOCK_TOKEN: String(held.fencingToken), COORDVOL_LOCK_KEY: held.key };
              const c = spawn(file, args, { stdio: 'inherit', env });
              child = c;
              const done = exited(c, file);
              const end = await Promise.race([done, held.lost.then((why): Exit => ({ kind: 'lost', why }))]);
              if (end.kind === 'lost') {
                await stopChild(c, done);
                throw coordError(end.why.code, `lock ${name} lost while the command ran (sent it SIGTERM): ${end.why.message}`, { key: held.key });
              }
              process.exitCode = end.status;
              return { name, key: held.key, fencingToken: held.fencingToken, status: end.status };
            } finally {
              await held.unlock().catch(() => undefined);
            }
          },
          { human: () => '', json: (r) => r },
        );
      } finally {
        for (const s of signals) process.off(s, onSignal);
      }
    });
}
