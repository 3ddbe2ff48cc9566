// W5's client process (workloads-session.ts starts it): connects to the system named in its
// JSON argument, opens a session asking for the TTL given, puts one ephemeral key in it, prints
// `ready {"grantedTtlMs":…}` once the put is acknowledged, and then lives on (its client library
// keeping the session alive) until the harness SIGKILLs it. It never outlives LIFETIME_MAX_MS,
// so a harness that dies without cleaning up does not leave it behind for long.
import { connectCoord } from './systems/coord.js';
import { READY, type SessionChildSpec } from './workloads-session.js';

const LIFETIME_MAX_MS = 120_000;

async function main(): Promise<void> {
  setTimeout(() => {
    process.stderr.write(`session-child: still alive after ${LIFETIME_MAX_MS} ms; exiting\n`);
    process.exit(3);
  }, LIFETIME_MAX_MS);
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: session-child.js <json spec>');
  const spec = JSON.parse(arg) as SessionChildSpec;
  if (typeof spec.key !== 'string' || !(spec.ttlMs > 0) || typeof spec.endpoint?.system !== 'string') throw new Error(`session-child: bad spec ${arg}`);
  const client = await connectCoord(spec.endpoint, { sessionTtlMs: spec.ttlMs });
  const session = await client.session();
  void session.lost.then((why) => process.stderr.write(`session-child: ${why}\n`));
  await session.putEphemeral(spec.key, new TextEncoder().encode(`pid ${process.pid}`));
  process.stdout.write(`${READY}${JSON.stringify({ grantedTtlMs: session.grantedTtlMs })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`session-child failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(2);
});
