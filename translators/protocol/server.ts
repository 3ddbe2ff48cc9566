// protocol/server (DESIGN §7): serves the graph below it over TCP, or TLS when a certificate is
// configured. It sits at the top of a master's graph; in-process fops (the embedded volume)
// pass straight through it. Each connection runs the wire state machine (src/wire) through a
// Link; each request is checked (a client fop, args that pass replication/validate) and wound
// to the subvolume, and its outcome goes back as a response, errors typed. Bad input closes that
// connection only, with a goaway saying why; the server keeps serving everyone else.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { coordError, isCoordError, type CoordError } from '../../src/common/errors.js';
import { connectionRequestsMax, connectionWriteBytesMax, requestTimeoutMsMax } from '../../src/common/limits.js';
import {
  Connection, formatAddress, NONCE_BYTES, parseAddress, toWireError,
  type Address, type AppMessage, type RequestMessage,
} from '../../src/wire/index.js';
import type { FopContext } from '../fops.js';
import type { OptionSchema, OptionValues } from '../options.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';
import { Link, type LinkHandler } from './link.js';
import { MEMBERS_STREAM, type MembersPush } from '../../src/wire/messages.js';
import { checkOrigin, checkRequest, checkStreamRequest } from './requests.js';
import type { Management } from './mgmt.js';
import { isStreamOp, WatchStreams } from '../features/watch-streams.js';
import { loadSecretFile } from './secret.js';

const options = {
  listen: { type: 'string', default: '127.0.0.1:7420', description: 'host:port to serve on (port 0: any free port)' },
  'secret-file': { type: 'path', default: 'secret', description: 'the cluster secret (relative to the volfile); made on first start if missing' },
  'tls-cert': { type: 'path', description: 'PEM certificate; TLS when given with tls-key' },
  'tls-key': { type: 'path', description: 'PEM private key of tls-cert' },
  'handshake-timeout-ms': { type: 'time', min: 1, max: 600_000, default: 5_000, description: 'a connection must finish its handshake (and TLS) within this' },
  'max-connections': { type: 'int', min: 1, max: 1_000_000, default: 10_000, description: 'connections held at once; more are refused' },
  'idle-timeout-ms': { type: 'time', min: 0, max: 86_400_000, default: 60_000, description: 'close a connection silent this long (0: never; clients ping)' },
} as const satisfies OptionSchema;
type Values = OptionValues<typeof options>;

/** A request's deadline when it names none. */
const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;
/** How long fini() lets requests being served finish before it closes their connections. */
const DRAIN_MS = 1_000;

/** The server's side of one connection: its requests in flight and whether reading is paused. */
interface Client {
  /** Unique per server, for pushes. */
  readonly id: number;
  readonly link: Link;
  inFlight: number;
  paused: boolean;
}

export class ProtocolServerTranslator extends Translator implements LinkHandler {
  private readonly o: Values;
  private server: Server | undefined;
  private addressV: Address | undefined;
  private secret: Uint8Array | undefined;
  private volumeId = '';
  private stopping = false;
  private readonly clients = new Map<Link, Client>();
  private readonly stats = {
    accepted: 0, opened: 0, refused: 0, protocolErrors: 0, authFailures: 0, timeouts: 0, requests: 0, errors: 0,
  };
  private lastListenError: string | undefined;
  private inFlightTotal = 0;
  private connectionSeq = 0;
  /** Watches of each connection, pushed on the stream the client named. */
  private readonly watchStreams = new WatchStreams((fop, ctx, args) => this.call(fop, ctx, args));
  /** fini() waiting for the requests being served. */
  private onDrained: (() => void) | undefined;

  /** The cluster secret's file (absolute): clients on this host read it to connect. */
  readonly secretFile: string;

  /** The daemon's answers to management ops (DESIGN §8); none in a graph no daemon owns. */
  private management: Management | undefined;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.o = spec.options as unknown as Values;
    this.secretFile = resolve(this.env.baseDir, this.o['secret-file']);
    this.handlers.peerInfo = () => this.managed().peerInfo();
    this.handlers.peerJoin = (_ctx, a) => this.managed().peerJoin(a);
  }

  /** Installs the daemon that answers `peerInfo` and `peerJoin` on this listener. */
  setManagement(m: Management | undefined): void {
    this.management = m;
  }

  private managed(): Management {
    if (!this.management) throw coordError('invalid-argument', `${this.name} serves no daemon: peerInfo and peerJoin go to a daemon started by \`coordvol start\``);
    return this.management;
  }

  /** The address it listens on (with the real port when `listen` asked for port 0). */
  get address(): Address {
    if (!this.addressV) throw coordError('closed', `${this.name} is not listening`);
    return this.addressV;
  }

  get connections(): number {
    return this.clients.size;
  }

  override async init(): Promise<void> {
    const listen = parseAddress(this.o.listen, `volume ${this.name}: option listen`, true, 'volfile-invalid');
    const hasCert = this.o['tls-cert'] !== undefined;
    if (hasCert !== (this.o['tls-key'] !== undefined)) {
      throw coordError('volfile-invalid', `volume ${this.name}: tls-cert and tls-key go together`);
    }
    this.secret = loadSecretFile(this.secretFile, true);
    this.volumeId = await this.findVolumeId();
    const server = hasCert ? this.tlsServer() : createTcpServer((s) => this.accept(s));
    server.maxConnections = this.o['max-connections'];
    server.on('drop', () => this.stats.refused++);
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen({ host: listen.host, port: listen.port, backlog: 1024 }, () => {
        server.off('error', fail);
        ok();
      });
    }).catch((e: unknown) => {
      throw coordError('unavailable', `volume ${this.name}: cannot listen on ${this.o.listen}: ${(e as Error).message}`);
    });
    // After listening, an error (such as EMFILE on accept) must not take the process down.
    server.on('error', (e) => (this.lastListenError = e.message));
    const a = server.address();
    if (a === null || typeof a === 'string') throw coordError('internal', `${this.name}: no TCP address`);
    this.server = server;
    this.addressV = { host: a.address, port: a.port };
    await super.init();
  }

  /** The volume id the handshake announces, from the volume below. */
  private async findVolumeId(): Promise<string> {
    const ctx: FopContext = { deadlineMs: this.env.clock.nowMs() + REQUEST_TIMEOUT_MS_DEFAULT };
    const st = await this.wind('status', ctx, {});
    const id = st.volume?.volumeId;
    if (id === undefined) throw coordError('volfile-invalid', `volume ${this.name}: protocol/server needs a volume below it (cluster/replicate)`);
    return id;
  }

  private tlsServer(): Server {
    const read = (opt: 'tls-cert' | 'tls-key'): Buffer => {
      const path = resolve(this.env.baseDir, this.o[opt] as string);
      try {
        return readFileSync(path);
      } catch (e) {
        throw coordError('volfile-invalid', `volume ${this.name}: option ${opt}: cannot read ${path}: ${(e as Error).message}`);
      }
    };
    const server = createTlsServer({ cert: read('tls-cert'), key: read('tls-key'), handshakeTimeout: this.o['handshake-timeout-ms'] }, (s) => this.accept(s));
    server.on('tlsClientError', () => this.stats.authFailures++);
    return server;
  }

  private accept(socket: Socket): void {
    this.stats.accepted++;
    if (this.stopping || !this.secret) return void socket.destroy();
    const now = this.env.clock.nowMs();
    const conn = new Connection({
      role: 'server',
      secret: this.secret,
      nonce: randomBytes(NONCE_BYTES),
      volumeId: this.volumeId,
      handshakeTimeoutMs: this.o['handshake-timeout-ms'],
      idleTimeoutMs: this.o['idle-timeout-ms'],
    }, now);
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const link = new Link(socket, conn, peer, this.env.clock, this);
    this.clients.set(link, { id: ++this.connectionSeq, link, inFlight: 0, paused: false });
    socket.on('drain', () => this.maybeResume(link));
    void link.socketClosed.then(() => this.clients.delete(link));
    link.connected();
  }

  // LinkHandler: what a connection's state machine reports.
  opened(link: Link): void {
    this.stats.opened++;
    if (this.members) link.send({ type: 'push', stream: MEMBERS_STREAM, body: this.members });
  }

  /** The masters list pushed to every connection (DESIGN §8); the daemon sets it when membership commits. */
  private members: MembersPush | undefined;

  /** Pushes the volume's masters to every open connection, and to each one that opens later. */
  pushMembers(m: MembersPush): void {
    this.members = m;
    for (const c of this.clients.values()) {
      if (c.link.isOpen) c.link.send({ type: 'push', stream: MEMBERS_STREAM, body: m });
    }
  }

  closed(link: Link, why: CoordError): void {
    const client = this.clients.get(link);
    if (client) this.watchStreams.connectionClosed(client.id);
    if (why.code === 'protocol-error') this.stats.protocolErrors++;
    else if (why.code === 'auth-failed' || why.code === 'wrong-volume') this.stats.authFailures++;
    else if (why.code === 'timeout') this.stats.timeouts++;
  }

  /** Open connections, by id, for pushes (watches subscribe their connection). */
  connectionIds(): number[] {
    return [...this.clients.values()].map((c) => c.id);
  }

  /**
   * Pushes `body` on `stream` to the connection `connectionId`. False when that connection is
   * gone. Large bodies span frames like any message.
   */
  push(connectionId: number, stream: number, body: unknown): boolean {
    for (const c of this.clients.values()) {
      if (c.id !== connectionId) continue;
      c.link.send({ type: 'push', stream, body });
      return true;
    }
    return false;
  }

  deliver(link: Link, msg: AppMessage): void {
    // The state machine delivers only requests to a server.
    const req = msg as RequestMessage;
    const client = this.clients.get(link);
    if (!client) return;
    this.stats.requests++;
    client.inFlight++;
    this.inFlightTotal++;
    this.maybePause(client);
    this.serve(req, client).then(
      (result) => this.respond(client, req.id, result),
      (e: unknown) => this.respondError(client, req.id, e),
    );
  }

  /** Checks a request and winds it into the graph. */
  private async serve(req: RequestMessage, client: Client): Promise<unknown> {
    const timeoutMs = Math.min(req.timeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT, requestTimeoutMsMax);
    const deadlineMs = this.env.clock.nowMs() + timeoutMs;
    const ctx: FopContext = req.origin === undefined ? { deadlineMs } : { deadlineMs, origin: checkOrigin(req.op, req.origin) };
    // A watch streams its events to this connection: served with it, not as a plain fop.
    if (isStreamOp(req.op)) return this.watchStreams.serve(client.id, client.link, checkStreamRequest(req.op, req.args), ctx);
    const { op, args } = checkRequest(req.op, req.args);
    // call, not wind: a statedump off the wire includes this translator's own state.
    return this.call(op, ctx, args as never);
  }

  /** Sends a request's answer; never throws (a promise callback must not). */
  private respond(client: Client, id: number, result: unknown): void {
    this.done(client);
    try {
      client.link.send({ type: 'response', id, ok: true, result });
    } catch (e) {
      // Too large, or not encodable (a statedump of an odd shape): answer that instead.
      this.sendError(client, id, e);
    }
  }

  private respondError(client: Client, id: number, e: unknown): void {
    this.done(client);
    this.sendError(client, id, e);
  }

  private sendError(client: Client, id: number, e: unknown): void {
    this.stats.errors++;
    const err = isCoordError(e) ? e : coordError('internal', `${this.name}: ${e instanceof Error ? e.message : String(e)}`);
    try {
      client.link.send({ type: 'response', id, ok: false, error: toWireError(err) });
    } catch {
      try {
        client.link.send({ type: 'response', id, ok: false, error: { code: err.code, message: err.message, details: {} } });
      } catch {
        client.link.close(coordError('internal', `cannot encode the answer to request ${id}`));
      }
    }
  }

  private done(client: Client): void {
    client.inFlight--;
    this.inFlightTotal--;
    if (this.inFlightTotal === 0) this.onDrained?.();
    this.maybeResume(client.link);
  }

  /** Backpressure: a client with too much in flight, or not reading its answers, is not read. */
  private maybePause(client: Client): void {
    if (client.paused) return;
    if (client.inFlight >= connectionRequestsMax || client.link.socket.writableLength >= connectionWriteBytesMax) {
      client.paused = true;
      client.link.socket.pause();
    }
  }

  private maybeResume(link: Link): void {
    const client = this.clients.get(link);
    if (!client?.paused || this.stopping) return;
    if (client.inFlight < connectionRequestsMax && link.socket.writableLength < connectionWriteBytesMax) {
      client.paused = false;
      link.socket.resume();
    }
  }

  override dump(): Readonly<Record<string, unknown>> {
    return {
      listen: this.o.listen,
      secretFile: this.secretFile,
      address: this.addressV ? formatAddress(this.addressV) : null,
      port: this.addressV?.port ?? null,
      tls: this.o['tls-cert'] !== undefined,
      volumeId: this.volumeId,
      connections: this.clients.size,
      requestsInFlight: this.inFlightTotal,
      ...this.stats,
      lastListenError: this.lastListenError ?? null,
      watches: this.watchStreams.dump(),
    };
  }

  /** Stops accepting, lets requests being served finish (up to DRAIN_MS), then says goaway to all. */
  override async fini(): Promise<void> {
    this.stopping = true;
    const server = this.server;
    this.server = undefined;
    const serverClosed = server ? new Promise<void>((ok) => server.close(() => ok())) : Promise.resolve();
    for (const c of this.clients.values()) c.link.socket.pause();
    if (this.inFlightTotal > 0) {
      await new Promise<void>((ok) => {
        const timer = setTimeout(ok, DRAIN_MS);
        this.onDrained = () => (clearTimeout(timer), ok());
      });
    }
    const bye = coordError('closed', 'the server is shutting down');
    for (const c of this.clients.values()) c.link.close(bye);
    await Promise.race([
      Promise.all([...this.clients.keys()].map((l) => l.socketClosed)),
      new Promise((r) => setTimeout(r, 2_000).unref()),
    ]);
    for (const l of this.clients.keys()) l.destroy();
    await serverClosed;
    this.addressV = undefined;
    await super.fini();
  }
}

export const protocolServerClass: TranslatorClass = {
  type: 'protocol/server',
  options,
  // The listener and its connections survive a graph switch; relinked, it winds new requests to
  // the new graph. listen, secret-file and the rest are refused live (restart the master).
  carried: true,
  subvolumes: { min: 1, max: 1 },
  create: (spec) => new ProtocolServerTranslator(spec),
};
