// Network fixtures the wire tests share: a TCP proxy whose connections can be cut, and a client
// that does the handshake by hand and then sends anything. Every socket they open goes into the
// caller's `sockets` set, which the test destroys at the end.
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Connection, NONCE_BYTES, type PushMessage, type ResponseMessage } from '../../src/wire/index.js';

/** A TCP proxy whose connections can be cut at once, as a crash or a partition would. */
export class Proxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  /** Blocked: open connections were cut and new ones are refused (a partition that lasts). */
  private blocked = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(upstreamPort: number, sockets: Set<Socket>): Promise<Proxy> {
    let proxy: Proxy | undefined;
    const server = createServer((down) => {
      if (proxy?.blocked === true) {
        down.on('error', () => undefined);
        return void down.destroy();
      }
      const up = tcpConnect({ host: '127.0.0.1', port: upstreamPort });
      const pair: [Socket, Socket] = [down, up];
      proxy?.pairs.add(pair);
      for (const s of pair) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => (down.destroy(), up.destroy(), proxy?.pairs.delete(pair)));
      }
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    proxy = new Proxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  /** Cuts every open connection; returns how many there were. */
  cut(): number {
    const n = this.pairs.size;
    for (const [a, b] of this.pairs) (a.destroy(), b.destroy());
    return n;
  }

  /**
   * Open connections stop carrying the server's answers (requests still reach it): a write sent
   * now is applied, and its client never hears so. cut() then ends them.
   */
  dropReplies(): void {
    for (const [down, up] of this.pairs) up.unpipe(down);
  }

  /** Cuts every open connection and refuses new ones until unblock(). */
  block(): void {
    this.blocked = true;
    this.cut();
  }

  unblock(): void {
    this.blocked = false;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((ok) => this.server.close(() => ok()));
  }
}

/** A client that does the handshake by hand, then sends any request it is given; it keeps pushes. */
export class RawClient {
  readonly conn: Connection;
  readonly pushes: PushMessage[] = [];
  private readonly waiters = new Map<number, (r: ResponseMessage) => void>();
  private nextId = 1;
  private opened!: () => void;
  readonly ready = new Promise<void>((ok) => (this.opened = ok));

  constructor(readonly socket: Socket, secret: string, sockets: Set<Socket>) {
    sockets.add(socket);
    this.conn = new Connection({ role: 'client', secret: Buffer.from(secret), nonce: randomBytes(NONCE_BYTES), handshakeTimeoutMs: 5_000 }, 0);
    socket.on('error', () => undefined);
    socket.on('data', (c: Buffer) => {
      const step = this.conn.receive(c, 0);
      for (const b of step.send) if (!socket.destroyed) socket.write(b);
      if (step.opened) this.opened();
      for (const m of step.deliver) {
        if (m.type === 'response') this.waiters.get(m.id)?.(m);
        else if (m.type === 'push') this.pushes.push(m);
      }
    });
    socket.once('connect', () => this.conn.connected(0));
  }

  static async open(port: number, secret: string, sockets: Set<Socket>): Promise<RawClient> {
    const c = new RawClient(tcpConnect({ host: '127.0.0.1', port }), secret, sockets);
    await c.ready;
    return c;
  }

  /** Sends a request (with the next id, or `id`; `origin` as given, unchecked) and resolves with its response. */
  request(op: string, args: unknown, id = this.nextId++, origin?: unknown): Promise<ResponseMessage> {
    const p = new Promise<ResponseMessage>((ok) => this.waiters.set(id, ok));
    const msg = origin === undefined ? { type: 'request' as const, id, op, args } : { type: 'request' as const, id, op, args, origin: origin as [number, number, number] };
    for (const b of this.conn.send(msg).send) this.socket.write(b);
    return p;
  }

  /** The error code a request gets, or 'ok'. */
  async error(op: string, args: unknown): Promise<string> {
    const r = await this.request(op, args);
    return r.ok ? 'ok' : r.error.code;
  }
}
