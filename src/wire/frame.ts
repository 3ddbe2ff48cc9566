// Frames (DESIGN §7): a 4-byte big-endian payload length, one flags byte, the payload. Bit 0 of
// the flags is `more`: the message goes on in the next frame. A frame's payload is at most
// frameBytesMax; a message larger than that spans frames, and a reassembled message is capped
// too. The decoder is an incremental state machine over arbitrary chunks (nats.js's parser):
// no sockets, no timers; it is fed bytes and hands back whole messages.
import { assert } from '../common/assert.js';
import { coordError, type CoordError } from '../common/errors.js';
import { frameBytesMax, messageBytesMax } from '../common/limits.js';

export const FRAME_HEADER_BYTES = 5;
export const FLAG_MORE = 0x01;
const FLAGS_KNOWN = FLAG_MORE;

/**
 * Frames a message whose payload starts after FRAME_HEADER_BYTES reserved bytes of `buf` (the
 * encoder reserves them, so a one-frame message is written without a copy). Returns the chunks
 * to write, in order.
 */
export function frameReserved(buf: Uint8Array, frameBytes = frameBytesMax): Uint8Array[] {
  assert(buf.byteLength >= FRAME_HEADER_BYTES, 'the frame header space is reserved');
  const payloadBytes = buf.byteLength - FRAME_HEADER_BYTES;
  assert(payloadBytes > 0, 'a message has a payload');
  assert(payloadBytes <= messageBytesMax, `a message of ${payloadBytes} bytes is over the cap; the encoder checks first`);
  if (payloadBytes <= frameBytes) {
    writeHeader(buf, 0, payloadBytes, 0);
    return [buf];
  }
  const out: Uint8Array[] = [];
  for (let at = FRAME_HEADER_BYTES; at < buf.byteLength; at += frameBytes) {
    const n = Math.min(frameBytes, buf.byteLength - at);
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    writeHeader(header, 0, n, at + n < buf.byteLength ? FLAG_MORE : 0);
    out.push(header, buf.subarray(at, at + n));
  }
  return out;
}

/** Frames a payload (tests and tools; the encoder uses frameReserved). */
export function encodeFrames(payload: Uint8Array, frameBytes = frameBytesMax): Uint8Array[] {
  const buf = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  buf.set(payload, FRAME_HEADER_BYTES);
  return frameReserved(buf, frameBytes);
}

function writeHeader(buf: Uint8Array, at: number, length: number, flags: number): void {
  assert(length > 0 && length <= frameBytesMax, `frame length ${length} in (0, frameBytesMax]`);
  buf[at] = (length >>> 24) & 0xff;
  buf[at + 1] = (length >>> 16) & 0xff;
  buf[at + 2] = (length >>> 8) & 0xff;
  buf[at + 3] = length & 0xff;
  buf[at + 4] = flags;
}

export interface FrameDecoderLimits {
  /** A frame's payload cap (default frameBytesMax). */
  readonly frameBytesMax?: number;
  /** A reassembled message's cap (default messageBytesMax); lowered before a handshake is done. */
  readonly messageBytesMax?: number;
}

/**
 * Reassembles messages from chunks. States: reading a header (5 bytes, possibly across chunks),
 * then its payload into a buffer of the frame's length (allocated once the caps are checked).
 * Once it fails it stays failed: a stream that lost framing cannot resync.
 */
export class FrameDecoder {
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The frame being read (undefined while reading a header), how much of it is filled. */
  private frame: Buffer | undefined;
  private frameFilled = 0;
  private frameMore = false;
  /** Earlier frames of the message being assembled, and their total bytes. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private failure: CoordError | undefined;
  private readonly frameMax: number;
  /** The reassembled message cap; a connection raises it once its handshake is done. */
  messageMax: number;

  constructor(limits: FrameDecoderLimits = {}) {
    this.frameMax = limits.frameBytesMax ?? frameBytesMax;
    this.messageMax = limits.messageBytesMax ?? messageBytesMax;
    assert(this.frameMax > 0 && this.frameMax <= frameBytesMax, 'frame cap within frameBytesMax');
    assert(this.messageMax > 0 && this.messageMax <= messageBytesMax, 'message cap within messageBytesMax');
  }

  /** Bytes of an unfinished message held (for statedump and tests). */
  get bufferedBytes(): number {
    return this.partsBytes + this.frameFilled + this.headerFilled;
  }

  /**
   * Feeds a chunk; returns the messages it completes, each in a buffer of its own (a value kept
   * from one does not pin the socket's chunk, and the caller may reuse the chunk). Throws
   * CoordError('protocol-error') on a bad frame, and on every call after.
   */
  push(chunk: Uint8Array): Buffer[] {
    if (this.failure) throw this.failure;
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.byteLength) {
      const frame = this.frame;
      if (frame === undefined) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFilled, chunk.byteLength - at);
        this.header.set(chunk.subarray(at, at + n), this.headerFilled);
        this.headerFilled += n;
        at += n;
        if (this.headerFilled === FRAME_HEADER_BYTES) this.startFrame();
        continue;
      }
      const n = Math.min(frame.byteLength - this.frameFilled, chunk.byteLength - at);
      frame.set(chunk.subarray(at, at + n), this.frameFilled);
      this.frameFilled += n;
      at += n;
      if (this.frameFilled < frame.byteLength) continue;
      this.frame = undefined;
      this.frameFilled = 0;
      if (this.frameMore) {
        this.parts.push(frame);
        this.partsBytes += frame.byteLength;
      } else {
        out.push(this.takeMessage(frame));
      }
    }
    return out;
  }

  private startFrame(): void {
    this.headerFilled = 0;
    const h = this.header;
    const length = (((h[0] as number) << 24) >>> 0) + ((h[1] as number) << 16) + ((h[2] as number) << 8) + (h[3] as number);
    const flags = h[4] as number;
    if ((flags & ~FLAGS_KNOWN) !== 0) throw this.fail(`bad frame flags 0x${flags.toString(16).padStart(2, '0')}`);
    if (length === 0) throw this.fail('empty frame');
    if (length > this.frameMax) throw this.fail(`frame of ${length} bytes, over the ${this.frameMax}-byte frame limit`);
    if (this.partsBytes + length > this.messageMax) {
      throw this.fail(`message of at least ${this.partsBytes + length} bytes, over the ${this.messageMax}-byte message limit`);
    }
    this.frame = Buffer.allocUnsafeSlow(length);
    this.frameMore = (flags & FLAG_MORE) !== 0;
  }

  private takeMessage(last: Buffer): Buffer {
    if (this.parts.length === 0) return last;
    const msg = Buffer.concat([...this.parts, last], this.partsBytes + last.byteLength);
    this.parts = [];
    this.partsBytes = 0;
    return msg;
  }

  private fail(why: string): CoordError {
    this.failure = coordError('protocol-error', why);
    this.parts = [];
    this.partsBytes = 0;
    this.frame = undefined;
    return this.failure;
  }
}
