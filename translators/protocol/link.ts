// A Link carries one wire Connection (src/wire/connection.ts, the pure state machine) over one
// socket, for protocol/server and protocol/client alike: socket events become the machine's
// inputs, and its steps become writes, deliveries, a timer for its next tick, and the close.
import type { Socket } from 'node:net';
import { coordError, type CoordError } from '../../src/common/errors.js';
import type { AppMessage, Connection, Step } from '../../src/wire/index.js';
import type { Clock } from '../translator.js';

export interface LinkHandler {
  /** The handshake completed. */
  opened(link: Link, volumeId: string): void;
  /** A request (server) or response (client). */
  deliver(link: Link, msg: AppMessage): void;
  /** The connection closed (exactly once); the socket may still be flushing its goaway. */
  closed(link: Link, why: CoordError): void;
}

/** How long a closed connection's socket may take to flush its goaway before it is destroyed. */
const CLOSE_FLUSH_MS = 1000;

/** A socket error as a typed reason: certificate failures are authentication failures. */
export function socketError(e: Error & { code?: string }, peer: string): CoordError {
  const code = e.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|ERR_SSL/.test(code)) {
    return coordError('auth-failed', `TLS with ${peer} failed: ${e.message}`, { errno: code });
  }
  return coordError('unavailable', `connection to ${peer}: ${e.message}`, { errno: code });
}

export class Link {
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Infinity;
  private corked = false;
  private error: CoordError | undefined;
  private closedV = false;
  readonly socketClosed: Promise<void>;

  constructor(
    readonly socket: Socket,
    readonly conn: Connection,
    readonly peer: string,
    private readonly clock: Clock,
    private readonly handler: LinkHandler,
  ) {
    socket.setNoDelay(true);
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.apply(this.conn.receive(chunk, this.clock.nowMs())));
    socket.on('error', (e: Error) => {
      this.error ??= socketError(e, peer);
    });
    socket.on('close', () => {
      this.clearTimer();
      this.apply(this.conn.transportClosed(this.error));
    });
    this.arm();
  }

  /** The transport is up (accepted, or connected and past TLS). */
  connected(): void {
    this.apply(this.conn.connected(this.clock.nowMs()));
  }

  get isClosed(): boolean {
    return this.closedV;
  }

  /** The handshake is done and the connection not closed: app messages may be sent. */
  get isOpen(): boolean {
    return this.conn.state === 'open';
  }

  /** Sends a request or response; throws if it cannot be encoded (nothing is sent then). */
  send(msg: AppMessage): void {
    this.apply(this.conn.send(msg));
  }

  close(why: CoordError): void {
    this.apply(this.conn.close(why));
  }

  /** Closes without a goaway: the socket is gone at once. */
  destroy(): void {
    this.socket.destroy();
  }

  private apply(step: Step): void {
    if (step.send.length > 0) this.write(step.send);
    if (step.opened) this.handler.opened(this, step.opened.volumeId);
    for (const m of step.deliver) {
      if (this.closedV) break;
      this.handler.deliver(this, m);
    }
    if (step.closed && !this.closedV) {
      this.closedV = true;
      this.clearTimer();
      // Still connecting: nothing to flush. Else let the goaway go out, but not for long.
      if (this.socket.connecting) this.socket.destroy();
      else this.socket.end();
      if (!this.socket.destroyed) setTimeout(() => this.socket.destroy(), CLOSE_FLUSH_MS).unref();
      this.handler.closed(this, step.closed);
      return;
    }
    if (!this.closedV) this.arm();
  }

  /** Writes made in one turn of the event loop go out in one writev. */
  private write(chunks: readonly Uint8Array[]): void {
    const s = this.socket;
    if (s.destroyed || s.writableEnded) return;
    if (!this.corked) {
      this.corked = true;
      s.cork();
      process.nextTick(() => {
        this.corked = false;
        s.uncork();
      });
    }
    for (const c of chunks) s.write(c);
  }

  /** One timer, at the machine's next deadline; a later deadline waits for the earlier timer. */
  private arm(): void {
    const at = this.conn.nextTickMs();
    if (at === undefined) return this.clearTimer();
    if (this.timer !== undefined && this.timerAtMs <= at) return;
    this.clearTimer();
    this.timerAtMs = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAtMs = Infinity;
      this.apply(this.conn.tick(this.clock.nowMs()));
    }, Math.max(0, Math.ceil(at - this.clock.nowMs())));
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAtMs = Infinity;
  }
}
