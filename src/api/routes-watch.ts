// GET /v1/watch: a watch as server-sent events (DESIGN §9). The stream opens with a `watching`
// event naming the first rev it covers, then one `events` event per rev that touches the range
// (and `progress` events when asked for), each with `id: <rev>`: a browser's EventSource that
// reconnects sends Last-Event-ID and the stream goes on from the rev after it. An error after the
// stream started (compacted, slow-consumer, moved) is an `error` event, and the stream ends. Bad
// input is refused before the stream starts, like any route (400).
//
// `moved` (DESIGN §6): this master's brick has not heard from a holder for 2·leaseMs, so its log
// may be behind the volume's. The watch is not resumed here (it would wait on the same brick):
// the `error` event names `moved` with `details.cursor`, the rev after the last delivered, and
// the HTTP client reconnects — to another master — with Last-Event-ID or fromRev = cursor.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { coordError, isCoordError } from '../common/errors.js';
import { RESERVED_PREFIX } from '../common/keys.js';
import { checkWatchArgs } from '../../translators/features/watch-args.js';
import type { KeySelector } from '../../translators/fops.js';
import type { Volume } from '../client/volume.js';
import type { Watcher, WatchMessage } from '../client/watch.js';
import { kvJson } from './shape.js';

interface WatchQuery {
  prefix?: string;
  start?: string;
  end?: string;
  fromRev?: number;
  prevKv?: boolean;
  progress?: boolean;
}

const flag = { type: 'boolean' } as const;

function selector(q: WatchQuery): KeySelector {
  if ((q.prefix === undefined) === (q.start === undefined)) throw coordError('invalid-argument', 'give prefix, or start (with an optional end)');
  if (q.end !== undefined && q.start === undefined) throw coordError('invalid-argument', 'end goes with start');
  return q.prefix !== undefined ? { prefix: q.prefix } : { start: q.start as string, ...(q.end !== undefined ? { end: q.end } : {}) };
}

/** Last-Event-ID, when it is a rev this API sent. */
function lastEventId(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (v === undefined || !/^\d{1,15}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

function frame(event: string, data: unknown, id?: number): string {
  return `${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function messageFrame(m: WatchMessage): string {
  switch (m.kind) {
    case 'events':
      return frame('events', {
        rev: m.rev,
        events: m.events.map((e) => ({ type: e.type, kv: kvJson(e.kv), ...(e.prevKv ? { prevKv: kvJson(e.prevKv) } : {}) })),
      }, m.rev);
    case 'progress':
      return frame('progress', { rev: m.rev }, m.rev);
    case 'resync':
      return frame('resync', { rev: m.rev, kvs: m.kvs.map(kvJson) }, m.rev);
  }
}

export const watchRoutes: FastifyPluginAsync<{ volume: Volume }> = async (app, { volume }) => {
  // Open streams, so that closing the app ends them (an open stream would hold server.close()).
  const open = new Set<Watcher>();
  app.addHook('preClose', async () => {
    await Promise.all([...open].map((w) => w.cancel()));
  });

  app.get<{ Querystring: WatchQuery }>('/v1/watch', {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { prefix: { type: 'string' }, start: { type: 'string' }, end: { type: 'string' }, fromRev: { type: 'integer', minimum: 1 }, prevKv: flag, progress: flag },
      },
    },
  }, async (req, reply) => {
    const q = req.query;
    const sel = selector(q);
    const resumeAfter = lastEventId(req.headers['last-event-id']);
    const opts = { ...(q.prevKv ? { prevKv: true } : {}), ...(q.progress ? { progress: true } : {}) };
    // Refused here, with a status, rather than as an error event once the stream has begun.
    checkWatchArgs({ ...sel, ...(q.fromRev !== undefined ? { fromRev: q.fromRev } : {}), ...opts });
    // Without a start, the stream begins after the current rev (a linearizable read says which).
    const fromRev = q.fromRev ?? (resumeAfter !== undefined ? resumeAfter + 1 : (await volume.get(RESERVED_PREFIX)).rev + 1);
    const watcher = volume.watch(sel, { ...opts, fromRev, endOnMoved: true });
    open.add(watcher);
    await stream(reply, watcher, fromRev).finally(() => open.delete(watcher));
  });
};

/** Writes the watch to the response until the client goes, the watch fails, or the app closes. */
async function stream(reply: FastifyReply, watcher: Watcher, fromRev: number): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  res.on('close', () => void watcher.cancel());
  res.write(frame('watching', { fromRev }));
  try {
    for await (const m of watcher) {
      // A slow HTTP client: wait for its socket, so the watcher's own cap is what bounds memory.
      if (!res.write(messageFrame(m))) await writable(res);
    }
  } catch (e) {
    const err = isCoordError(e) ? e : coordError('internal', 'internal error (see the server log)');
    if (!res.writableEnded) res.write(frame('error', { error: { code: err.code, message: err.message, ...(Object.keys(err.details).length > 0 ? { details: err.details } : {}) } }));
  } finally {
    await watcher.cancel();
    if (!res.writableEnded) res.end();
  }
}

/** Resolves when a response's socket takes writes again, or is gone. */
function writable(res: FastifyReply['raw']): Promise<void> {
  return new Promise((ok) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      ok();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
