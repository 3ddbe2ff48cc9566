// One connection, either side, as one explicit state machine with no I/O (STYLE §1, DESIGN §7):
//
//   connecting ──connected()──▶ handshake ──(hello, auth, welcome)──▶ open ──▶ closed
//        └───────────────────────────┴── timeout, bad input, goaway, close() ──┘
//
// Inputs are bytes, transport events and clock readings (ms, passed in); each input returns a
// Step: chunks to write, messages for the user, and whether the connection opened or closed.
// The caller (protocol/server, protocol/client) carries the step out: it writes `send`, then
// ends the transport if `closed` is set. Randomness (the nonce) is a constructor argument.
//
// Handshake (mutual, HMAC-SHA256 with the cluster secret; the secret never crosses the wire):
//   server → hello   {v, volumeId, nonce: sN}
//   client → auth    {v, expectVolumeId?, clientNonce: cN, mac: H(secret, "coordvol client" ‖ sN ‖ cN)}
//   server → welcome {volumeId, mac: H(secret, "coordvol server" ‖ cN ‖ sN)}
// The labels keep one side's MAC from ever serving as the other's (no reflection). The client
// checks the volume id on hello (before it proves anything) and the server checks it on auth.
// A refusal is a goaway {error} and a close; the client sends nothing after auth until welcome.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { assert } from '../common/assert.js';
import { coordError, type CoordError } from '../common/errors.js';
import { handshakeMessageBytesMax, messageBytesMax } from '../common/limits.js';
import { MessageDecoder, MessageEncoder } from './codec.js';
import {
  fromWireError, MAC_BYTES, NONCE_BYTES, PROTOCOL_VERSION, toWireError,
  type AppMessage, type AuthMessage, type HelloMessage, type Message, type WelcomeMessage,
} from './messages.js';

export type ConnectionState = 'connecting' | 'handshake' | 'open' | 'closed';
export type Role = 'client' | 'server';

export interface ConnectionConfig {
  readonly role: Role;
  /** The cluster secret: the HMAC key. */
  readonly secret: Uint8Array;
  /** NONCE_BYTES fresh random bytes: this side's challenge. */
  readonly nonce: Uint8Array;
  /** Server: the volume it serves. */
  readonly volumeId?: string;
  /** Client: refuse a server of any other volume. */
  readonly expectVolumeId?: string;
  /** Transport connect plus handshake must be done within this (from construction). */
  readonly handshakeTimeoutMs: number;
  /** Server: close a connection that sent nothing for this long (0 or absent: never). */
  readonly idleTimeoutMs?: number;
  /** Client: ping after this long without hearing from the server, or without pinging (0 or absent: never)… */
  readonly pingMs?: number;
  /** …and close if nothing arrives within this after a ping. */
  readonly pingTimeoutMs?: number;
}

/** What the caller carries out after an input. */
export interface Step {
  /** Chunks to write, in order. */
  readonly send: Uint8Array[];
  /** Requests (at a server) or responses (at a client), in arrival order. */
  readonly deliver: AppMessage[];
  /** The handshake completed in this step. */
  opened?: { readonly volumeId: string };
  /** The connection closed in this step, and why; end the transport once `send` is written. */
  closed?: CoordError;
}

const CLIENT_LABEL = Buffer.from('coordvol client');
const SERVER_LABEL = Buffer.from('coordvol server');

export function clientMac(secret: Uint8Array, serverNonce: Uint8Array, clientNonce: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(CLIENT_LABEL).update(serverNonce).update(clientNonce).digest();
}

export function serverMac(secret: Uint8Array, clientNonce: Uint8Array, serverNonce: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(SERVER_LABEL).update(clientNonce).update(serverNonce).digest();
}

function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

export class Connection {
  private stateV: ConnectionState = 'connecting';
  private readonly encoder = new MessageEncoder();
  private readonly decoder = new MessageDecoder({ messageBytesMax: handshakeMessageBytesMax });
  private readonly startedMs: number;
  private lastHeardMs: number;
  private pingSentMs: number | undefined;
  /**
   * Client: when it last pinged. It pings after pingMs of its own silence too, not only of the
   * server's: a client that only receives (a watch's pushes) must still be heard, or the server's
   * idle timeout closes a busy connection.
   */
  private lastPingMs: number;
  /** Client: the server's hello, once it arrived (its nonce is what our auth answered). */
  private hello: HelloMessage | undefined;
  private volumeIdV: string | undefined;
  private closedWhy: CoordError | undefined;
  /** The step being built by the current input. */
  private step: Step = emptyStep();

  constructor(
    private readonly config: ConnectionConfig,
    nowMs: number,
  ) {
    assert(config.nonce.byteLength === NONCE_BYTES, `a nonce is ${NONCE_BYTES} bytes`);
    assert(config.role === 'client' || config.volumeId !== undefined, 'a server knows its volume id');
    assert(config.handshakeTimeoutMs > 0, 'a handshake has a timeout');
    assert(config.role === 'server' || !config.pingMs || (config.pingTimeoutMs ?? 0) > 0, 'pings have a timeout');
    this.startedMs = nowMs;
    this.lastHeardMs = nowMs;
    this.lastPingMs = nowMs;
  }

  get state(): ConnectionState {
    return this.stateV;
  }

  get role(): Role {
    return this.config.role;
  }

  /** The volume, once open. */
  get volumeId(): string | undefined {
    return this.volumeIdV;
  }

  /** Why it closed, once closed. */
  get closedReason(): CoordError | undefined {
    return this.closedWhy;
  }

  /** When the caller should next call tick() (a clock reading), or undefined if never. */
  nextTickMs(): number | undefined {
    switch (this.stateV) {
      case 'connecting':
      case 'handshake':
        return this.startedMs + this.config.handshakeTimeoutMs;
      case 'open':
        if (this.config.role === 'server') return this.config.idleTimeoutMs ? this.lastHeardMs + this.config.idleTimeoutMs : undefined;
        if (!this.config.pingMs) return undefined;
        return this.pingSentMs !== undefined ? this.pingSentMs + (this.config.pingTimeoutMs ?? 0) : Math.min(this.lastHeardMs, this.lastPingMs) + this.config.pingMs;
      case 'closed':
        return undefined;
    }
  }

  /** The transport is up: the server says hello, the client waits for it. */
  connected(nowMs: number): Step {
    this.begin();
    assert(this.stateV === 'connecting' || this.stateV === 'closed', `connected() in state ${this.stateV}`);
    if (this.stateV === 'closed') return this.end();
    this.stateV = 'handshake';
    this.lastHeardMs = nowMs;
    if (this.config.role === 'server') {
      this.emit({ type: 'hello', v: PROTOCOL_VERSION, volumeId: this.config.volumeId as string, nonce: this.config.nonce });
    }
    return this.end();
  }

  /** Bytes from the peer. */
  receive(chunk: Uint8Array, nowMs: number): Step {
    this.begin();
    if (this.stateV === 'closed') return this.end();
    if (this.stateV === 'connecting') return (this.fail(coordError('protocol-error', 'bytes before the transport was up')), this.end());
    this.lastHeardMs = nowMs;
    this.pingSentMs = undefined;
    let messages: Message[];
    try {
      messages = this.decoder.push(chunk);
    } catch (e) {
      this.fail(e as CoordError); // the decoder throws protocol-errors only
      return this.end();
    }
    for (const m of messages) {
      if ((this.stateV as ConnectionState) === 'closed') break; // an earlier message closed it
      this.handle(m);
    }
    return this.end();
  }

  /** A clock reading: handshake timeout, idle timeout, pings. */
  tick(nowMs: number): Step {
    this.begin();
    const due = this.nextTickMs();
    if (due === undefined || nowMs < due) return this.end();
    if (this.stateV === 'connecting' || this.stateV === 'handshake') {
      this.fail(coordError('timeout', `the handshake did not finish within ${this.config.handshakeTimeoutMs} ms`));
    } else if (this.stateV === 'open' && this.config.role === 'server') {
      this.fail(coordError('timeout', `the connection was idle for ${this.config.idleTimeoutMs} ms`));
    } else if (this.stateV === 'open' && this.pingSentMs !== undefined) {
      this.fail(coordError('timeout', `the server did not answer a ping within ${this.config.pingTimeoutMs} ms`));
    } else if (this.stateV === 'open') {
      this.pingSentMs = nowMs;
      this.lastPingMs = nowMs;
      this.emit({ type: 'ping' });
    }
    return this.end();
  }

  /**
   * A request (client) or response (server) to send. Only once open; after a close it is dropped
   * (a response that completes after its connection went). Throws CoordError('too-large' or
   * 'internal') if the message cannot be encoded; nothing is sent then and the connection stays.
   */
  send(msg: AppMessage): Step {
    this.begin();
    if (this.stateV === 'closed') return this.end();
    assert(this.stateV === 'open', `send() in state ${this.stateV}`);
    assert((msg.type === 'request') === (this.config.role === 'client'), `a ${this.config.role} does not send ${msg.type}s`); // responses and pushes: servers
    try {
      this.emit(msg);
    } catch (e) {
      this.step = emptyStep();
      throw e;
    }
    return this.end();
  }

  /** Closes from this side: a goaway with the reason if the peer can hear it, then closed. */
  close(why: CoordError): Step {
    this.begin();
    if (this.stateV !== 'closed') this.fail(why);
    return this.end();
  }

  /** The transport went away (peer closed, reset, connect failed). */
  transportClosed(why?: CoordError): Step {
    this.begin();
    if (this.stateV !== 'closed') {
      const was = this.stateV;
      this.closeWith(why ?? coordError('unavailable', was === 'open' ? 'the connection closed' : `the connection closed during the ${was === 'connecting' ? 'connect' : 'handshake'}`));
    }
    return this.end();
  }

  private handle(m: Message): void {
    if (m.type === 'goaway') return this.closeWith(fromWireError(m.error));
    if (this.stateV === 'handshake') return this.config.role === 'server' ? this.onServerHandshake(m) : this.onClientHandshake(m);
    // Open.
    switch (m.type) {
      case 'ping':
        return this.emit({ type: 'pong' });
      case 'pong':
        return;
      case 'request':
        if (this.config.role === 'server') return void this.step.deliver.push(m);
        break;
      case 'response':
      case 'push':
        if (this.config.role === 'client') return void this.step.deliver.push(m);
        break;
      default:
        break;
    }
    this.fail(coordError('protocol-error', `unexpected ${m.type} message on an open connection`));
  }

  private onServerHandshake(m: Message): void {
    if (m.type !== 'auth') return this.fail(coordError('protocol-error', `expected auth, got a ${m.type} message before the handshake finished`));
    const auth: AuthMessage = m;
    if (auth.v !== PROTOCOL_VERSION) {
      return this.fail(coordError('protocol-error', `protocol version ${auth.v} is not supported (this server speaks ${PROTOCOL_VERSION})`));
    }
    const volumeId = this.config.volumeId as string;
    if (!macEqual(auth.mac, clientMac(this.config.secret, this.config.nonce, auth.clientNonce))) {
      return this.fail(coordError('auth-failed', 'the handshake MAC does not verify: the client does not have this cluster secret'));
    }
    if (auth.expectVolumeId !== undefined && auth.expectVolumeId !== volumeId) {
      return this.fail(coordError('wrong-volume', `this server serves volume ${volumeId}, not ${auth.expectVolumeId}`, { volumeId, expected: auth.expectVolumeId }));
    }
    const welcome: WelcomeMessage = { type: 'welcome', volumeId, mac: serverMac(this.config.secret, auth.clientNonce, this.config.nonce) };
    this.emit(welcome);
    this.open(volumeId);
  }

  private onClientHandshake(m: Message): void {
    if (this.hello === undefined) {
      if (m.type !== 'hello') return this.fail(coordError('protocol-error', `expected hello, got a ${m.type} message`));
      if (m.v !== PROTOCOL_VERSION) {
        return this.fail(coordError('protocol-error', `the server speaks protocol version ${m.v}; this client speaks ${PROTOCOL_VERSION}`));
      }
      const expected = this.config.expectVolumeId;
      if (expected !== undefined && m.volumeId !== expected) {
        return this.fail(coordError('wrong-volume', `the server serves volume ${m.volumeId}, not ${expected}`, { volumeId: m.volumeId, expected }));
      }
      this.hello = m;
      const auth: AuthMessage = {
        type: 'auth',
        v: PROTOCOL_VERSION,
        ...(expected !== undefined ? { expectVolumeId: expected } : {}),
        clientNonce: this.config.nonce,
        mac: clientMac(this.config.secret, m.nonce, this.config.nonce),
      };
      return this.emit(auth);
    }
    if (m.type !== 'welcome') return this.fail(coordError('protocol-error', `expected welcome, got a ${m.type} message`));
    if (m.mac.byteLength !== MAC_BYTES || !macEqual(m.mac, serverMac(this.config.secret, this.config.nonce, this.hello.nonce))) {
      return this.fail(coordError('auth-failed', 'the server could not prove it has the cluster secret'));
    }
    if (m.volumeId !== this.hello.volumeId) {
      return this.fail(coordError('protocol-error', `the server said volume ${this.hello.volumeId} in hello and ${m.volumeId} in welcome`));
    }
    this.open(m.volumeId);
  }

  private open(volumeId: string): void {
    this.stateV = 'open';
    this.volumeIdV = volumeId;
    this.decoder.messageBytesMax = messageBytesMax;
    this.step.opened = { volumeId };
  }

  /** Closes with a goaway the peer can read (once the transport is up). */
  private fail(why: CoordError): void {
    if (this.stateV === 'handshake' || this.stateV === 'open') {
      try {
        this.emit({ type: 'goaway', error: toWireError(why) });
      } catch {
        // A reason that cannot be encoded (details of an odd shape): the close says enough.
        this.emit({ type: 'goaway', error: { code: why.code, message: why.message, details: {} } });
      }
    }
    this.closeWith(why);
  }

  private closeWith(why: CoordError): void {
    this.stateV = 'closed';
    this.closedWhy = why;
    this.step.closed = why;
  }

  private emit(m: Message): void {
    for (const chunk of this.encoder.encode(m)) this.step.send.push(chunk);
  }

  private begin(): void {
    this.step = emptyStep();
  }

  private end(): Step {
    return this.step;
  }
}

function emptyStep(): Step {
  return { send: [], deliver: [] };
}
