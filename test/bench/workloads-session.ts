// W5, session expiry (issue 4): a client in a child process (session-child.ts) opens a session
// asking for a `ttlMs` TTL, puts one ephemeral key in it and says so; the harness watches the key
// for its delete, SIGKILLs the child, and measures from the kill to the receipt of the delete.
// A child process, not a client in this one, so the death is a real one: sockets closed by the
// kernel, no goodbye. Repeated `reps` times, each with a new child and key.
//
// When the kill lands relative to the session's last keepalive decides how long the server still
// waits, so the kills are spread over one keepalive interval (TTL/3, what every client library
// here uses), after at least TTL/2 of life so that each session has renewed once.
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errMsg } from './report-common.js';
import type { CoordClient, Endpoint } from './systems/coord.js';
import { logTail, removeDir, sleep, startServer, stopServer, tempDir, withTimeout, type Progress, type Server } from './systems/proc.js';

/** What session-child.ts is given, as JSON on its command line. */
export interface SessionChildSpec {
  readonly endpoint: Endpoint;
  readonly key: string;
  readonly ttlMs: number;
}

/** The child's one line once its ephemeral key is acknowledged. */
export const READY = 'ready ';

export interface SessionExpiryOptions {
  readonly reps: number;
  readonly ttlMs: number;
  readonly progress: Progress;
}

export interface SessionExpiryResult {
  readonly ttlMs: number;
  /** What the server granted, as the children reported it (ZooKeeper negotiates; etcd reports grantedTTL). */
  readonly grantedTtlMs: number;
  /** Kill → delete received, per repetition that completed, in ms. */
  readonly samplesMs: readonly number[];
  readonly failures: readonly string[];
}

const CHILD_READY_MS = 30_000;

function childScript(): string {
  return fileURLToPath(new URL('./session-child.js', import.meta.url));
}

/** Resolves with the child's ready line's JSON, or rejects if it exits or stays silent. */
async function readyLine(s: Server): Promise<{ grantedTtlMs: number }> {
  const out = s.child.stdout;
  if (!out) throw new Error('W5 child has no stdout pipe');
  out.setEncoding('utf8');
  let buf = '';
  const line = new Promise<string>((resolve, reject) => {
    out.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    s.child.once('exit', (code, sig) => reject(new Error(`W5 child exited (${sig ?? `code ${code}`}) before it was ready:\n${logTail(s)}`)));
  });
  const l = await withTimeout(line, CHILD_READY_MS, 'W5 child to open its session and put its key');
  if (!l.startsWith(READY)) throw new Error(`W5 child said ${JSON.stringify(l)}`);
  return JSON.parse(l.slice(READY.length)) as { grantedTtlMs: number };
}

export async function runSessionExpiry(endpoint: Endpoint, watcher: CoordClient, o: SessionExpiryOptions): Promise<SessionExpiryResult> {
  const dir = tempDir('w5');
  const samples: number[] = [];
  const failures: string[] = [];
  let granted = NaN;
  try {
    for (let rep = 0; rep < o.reps; rep++) {
      const key = `/w5/e${String(rep).padStart(3, '0')}`;
      const spec: SessionChildSpec = { endpoint, key, ttlMs: o.ttlMs };
      const s = startServer(`W5 session client ${rep}`, process.execPath, [childScript(), JSON.stringify(spec)], {
        cwd: dir,
        logFile: join(dir, `child-${rep}.log`),
        stdout: 'pipe',
      });
      try {
        const ready = await readyLine(s);
        granted = ready.grantedTtlMs;
        const dw = await withTimeout(watcher.watchDelete(key), 30_000, `W5: watching ${key}`);
        try {
          await sleep(o.ttlMs / 2 + ((rep / o.reps) * o.ttlMs) / 3);
          const exited = once(s.child, 'exit');
          const killedAt = performance.now();
          process.kill(s.pid, 'SIGKILL');
          const at = await withTimeout(dw.deleted, 5 * Math.max(o.ttlMs, granted) + 10_000, `W5: the delete of ${key} after SIGKILL`);
          samples.push(at - killedAt);
          o.progress(`W5 rep ${rep + 1}/${o.reps}: ${((at - killedAt) / 1000).toFixed(2)} s from SIGKILL to the delete (granted TTL ${granted} ms)`);
          await withTimeout(exited, 5_000, 'W5 child to be reaped').catch(() => undefined);
        } finally {
          await dw.cancel().catch(() => undefined);
        }
      } catch (e) {
        failures.push(`rep ${rep + 1}: ${errMsg(e).split('\n')[0]}`);
        o.progress(`W5 rep ${rep + 1}/${o.reps}: FAILED: ${errMsg(e)}`);
      } finally {
        await stopServer(s, 2_000);
      }
    }
  } finally {
    removeDir(dir);
  }
  return { ttlMs: o.ttlMs, grantedTtlMs: granted, samplesMs: samples, failures };
}
