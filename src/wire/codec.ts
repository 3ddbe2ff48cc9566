// Messages to frames and back, with msgpackr. Each direction of a connection has its own encoder
// and decoder: with `useRecords` and `sequential`, an object shape is described once, inline,
// the first time it is sent, and later messages refer to it by a slot id. That only works if the
// decoder sees every message the encoder produced, in order, exactly once — so a connection
// never drops an encoded message (an encoding that is not sent resets the encoder; see encode),
// and a decoder that failed is never used again.
import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr';
import { assert } from '../common/assert.js';
import { coordError, isCoordError, type CoordError } from '../common/errors.js';
import { frameBytesMax, messageBytesMax } from '../common/limits.js';
import { FRAME_HEADER_BYTES, FrameDecoder, frameReserved, type FrameDecoderLimits } from './frame.js';
import { parseMessage, type Message } from './messages.js';

// A fresh options object per instance: msgpackr's constructors store their structure table in
// the options object they are given, so a shared one would share (and corrupt) the table.
function newPackr(): Packr {
  return new Packr({ useRecords: true, sequential: true });
}

export interface EncoderLimits {
  readonly frameBytesMax?: number;
  readonly messageBytesMax?: number;
}

/** One direction's encoder: a message in, the framed chunks to write out. */
export class MessageEncoder {
  private packr = newPackr();
  private readonly frameMax: number;
  private readonly messageMax: number;

  constructor(limits: EncoderLimits = {}) {
    this.frameMax = limits.frameBytesMax ?? frameBytesMax;
    this.messageMax = limits.messageBytesMax ?? messageBytesMax;
  }

  /**
   * The chunks to write, in order. Throws CoordError('too-large') for a message over the cap and
   * 'internal' for a value msgpack cannot encode; either way nothing is to be sent, and the
   * encoder starts afresh, since the failed encoding may have described shapes the decoder will
   * never see. (A fresh sequential encoder describes every shape again before using it, and the
   * decoder takes a new description over an old one in the same slot.)
   */
  encode(msg: Message): Uint8Array[] {
    let buf: Uint8Array;
    try {
      buf = this.packr.pack(msg, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
    } catch (e) {
      this.packr = newPackr();
      throw coordError('internal', `cannot encode a ${msg.type} message: ${e instanceof Error ? e.message : String(e)}`);
    }
    const payloadBytes = buf.byteLength - FRAME_HEADER_BYTES;
    if (payloadBytes > this.messageMax) {
      this.packr = newPackr();
      throw coordError('too-large', `the ${msg.type} is ${payloadBytes} bytes encoded, over the ${this.messageMax}-byte message limit`, { bytes: payloadBytes, max: this.messageMax });
    }
    return frameReserved(buf, this.frameMax);
  }
}

/** One direction's decoder: chunks in, checked messages out. */
export class MessageDecoder {
  private readonly frames: FrameDecoder;
  private readonly unpackr = new Unpackr({ useRecords: true, sequential: true, mapsAsObjects: true, structuredClone: false });
  private failure: CoordError | undefined;

  constructor(limits: FrameDecoderLimits = {}) {
    this.frames = new FrameDecoder(limits);
  }

  /** The reassembled-message cap: small until the handshake is done, then messageBytesMax. */
  set messageBytesMax(n: number) {
    assert(n > 0 && n <= messageBytesMax, 'message cap within messageBytesMax');
    this.frames.messageMax = n;
  }

  get bufferedBytes(): number {
    return this.frames.bufferedBytes;
  }

  /**
   * The messages a chunk completes. Throws CoordError('protocol-error') for anything that is not
   * a well-formed message — bad framing, bad msgpack, a value of the wrong shape — and on every
   * call after the first failure. Never throws anything else.
   */
  push(chunk: Uint8Array): Message[] {
    if (this.failure) throw this.failure;
    try {
      const out: Message[] = [];
      for (const payload of this.frames.push(chunk)) out.push(parseMessage(this.unpack(payload)));
      return out;
    } catch (e) {
      this.failure = isCoordError(e) ? e : coordError('protocol-error', `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
      if (this.failure.code !== 'protocol-error') this.failure = coordError('protocol-error', this.failure.message);
      throw this.failure;
    }
  }

  private unpack(payload: Uint8Array): unknown {
    try {
      return this.unpackr.unpack(payload);
    } catch (e) {
      // msgpackr throws plain Errors (and RangeError on absurd nesting): all are bad input here.
      throw coordError('protocol-error', `bad msgpack: ${e instanceof Error ? e.message.slice(0, 200) : String(e)}`);
    }
  }
}
