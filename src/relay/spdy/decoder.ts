// The incremental SPDY/3.1 frame decoder (the frames and the encoder: frames.ts), pure: no I/O, no
// zlib (header blocks stay compressed; the session inflates them in frame order).
//
// Guarantees
// - The decoder accepts input cut anywhere: a frame over many chunks, many frames in one chunk. It
//   keeps a list of chunks and an offset instead of concatenating its input; it copies only a control
//   frame (or a frame header) that straddles chunks.
// - DATA payloads are never copied: a payload is returned as it arrives, in one piece per input chunk
//   it lies in (each a subarray of that chunk), the last piece with the frame's FIN. A relay passes
//   bytes on without waiting for the rest of a frame (spdystream's frames are 32 KiB; TLS hands them
//   over in records of at most 16 KiB).
// - A frame is judged as soon as its 8-byte header is in: a wrong version, a length above the limits
//   (`maxDataBytes`, `maxControlBytes`), a bad fixed length (RST_STREAM, PING, GOAWAY, WINDOW_UPDATE,
//   SETTINGS) or stream id 0 where a stream is required throws a PortForwardError of kind `protocol`,
//   before its body is buffered. Unknown control frame types are skipped, as the spec asks.
//
// Caveats
// - After the decoder threw, its state is undefined: the session that owns it must end.
// - CREDENTIAL (type 10, SPDY/3 only) is treated as unknown and skipped.
import { PortForwardError } from '../errors';
import {
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  Frame,
  FrameType,
  MAX_FRAME_LENGTH,
  SPDY_VERSION,
  typeName,
} from './frames';

export interface FrameDecoderOptions {
  /** Largest DATA payload accepted; default (and at most) 16 MiB - 1, the length field's limit. */
  maxDataBytes?: number;
  /** Largest control frame body accepted; default 1 MiB. */
  maxControlBytes?: number;
}

/** Fixed body lengths of control frames; -1: variable. */
const FIXED_LENGTH: Record<number, number> = {
  [FrameType.RST_STREAM]: 8,
  [FrameType.PING]: 4,
  [FrameType.GOAWAY]: 8,
  [FrameType.WINDOW_UPDATE]: 8,
};
/** Smallest body of variable-length control frames. */
const MIN_LENGTH: Record<number, number> = {
  [FrameType.SYN_STREAM]: 10,
  [FrameType.SYN_REPLY]: 4,
  [FrameType.HEADERS]: 4,
  [FrameType.SETTINGS]: 4,
};

interface PendingHeader {
  control: boolean;
  /** Control: the frame type; data: the stream id. */
  word: number;
  flags: number;
  /** The body's length; of a DATA frame being returned in pieces, what is still to come. */
  length: number;
}

export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  /** Bytes already consumed of chunks[0]. */
  private offset = 0;
  private buffered = 0;
  private pending: PendingHeader | undefined;
  private readonly maxDataBytes: number;
  private readonly maxControlBytes: number;
  private readonly scratch = Buffer.allocUnsafe(8);

  constructor(options: FrameDecoderOptions = {}) {
    this.maxDataBytes = Math.min(options.maxDataBytes ?? MAX_FRAME_LENGTH, MAX_FRAME_LENGTH);
    this.maxControlBytes = Math.min(options.maxControlBytes ?? 1024 * 1024, MAX_FRAME_LENGTH);
  }

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete frame, or undefined until more input arrives; throws on a protocol error. */
  next(): Frame | undefined {
    for (;;) {
      if (!this.pending) {
        if (this.buffered < 8) return undefined;
        this.pending = this.parseHeader(this.take(8));
      }
      const p = this.pending;
      if (!p.control) return this.dataPiece(p);
      if (this.buffered < p.length) return undefined;
      this.pending = undefined;
      const frame = this.parseControl(p.word, p.flags, this.take(p.length));
      if (frame) return frame;
    }
  }

  /**
   * What has arrived of a DATA payload, from the first buffered chunk: a subarray, never a copy. The
   * last piece carries the frame's FIN; a frame's pieces come in order, with nothing between them.
   */
  private dataPiece(p: PendingHeader): Frame | undefined {
    const fin = (p.flags & FLAG_FIN) !== 0;
    if (p.length === 0) {
      this.pending = undefined;
      return { type: 'data', streamId: p.word, fin, data: EMPTY };
    }
    if (this.buffered === 0) return undefined;
    const n = Math.min(p.length, this.chunks[0].length - this.offset);
    const data = this.take(n);
    p.length -= n;
    if (p.length > 0) return { type: 'data', streamId: p.word, fin: false, data };
    this.pending = undefined;
    return { type: 'data', streamId: p.word, fin, data };
  }

  private parseHeader(h: Buffer): PendingHeader {
    const w0 = h.readUInt32BE(0);
    const w1 = h.readUInt32BE(4);
    const flags = w1 >>> 24;
    const length = w1 & 0xffffff;
    if ((w0 & 0x80000000) === 0) {
      const streamId = w0 & 0x7fffffff;
      if (streamId === 0) throw protocolError('a DATA frame on stream 0');
      if (length > this.maxDataBytes) {
        throw protocolError(`a ${length}-byte DATA frame (limit ${this.maxDataBytes})`);
      }
      return { control: false, word: streamId, flags, length };
    }
    const version = (w0 >>> 16) & 0x7fff;
    const type = w0 & 0xffff;
    if (version !== SPDY_VERSION) throw protocolError(`a version ${version} control frame (3 expected)`);
    if (length > this.maxControlBytes) {
      throw protocolError(`a ${length}-byte control frame of type ${type} (limit ${this.maxControlBytes})`);
    }
    const fixed = FIXED_LENGTH[type];
    if (fixed !== undefined && length !== fixed) {
      throw protocolError(`a ${length}-byte ${typeName(type)} frame (${fixed} expected)`);
    }
    const min = MIN_LENGTH[type];
    if (min !== undefined && length < min) {
      throw protocolError(`a ${length}-byte ${typeName(type)} frame (at least ${min} expected)`);
    }
    if (type === FrameType.SETTINGS && (length - 4) % 8 !== 0) {
      throw protocolError(`a ${length}-byte SETTINGS frame (4 + 8n expected)`);
    }
    return { control: true, word: type, flags, length };
  }

  private parseControl(type: number, flags: number, body: Buffer): Frame | undefined {
    const fin = (flags & FLAG_FIN) !== 0;
    switch (type) {
      case FrameType.SYN_STREAM:
        return {
          type: 'synStream',
          streamId: streamId(body, 0, 'SYN_STREAM'),
          associatedId: body.readUInt32BE(4) & 0x7fffffff,
          priority: body[8] >>> 5,
          fin,
          unidirectional: (flags & FLAG_UNIDIRECTIONAL) !== 0,
          headerBlock: body.subarray(10),
        };
      case FrameType.SYN_REPLY:
        return {
          type: 'synReply',
          streamId: streamId(body, 0, 'SYN_REPLY'),
          fin,
          headerBlock: body.subarray(4),
        };
      case FrameType.HEADERS:
        return {
          type: 'headers',
          streamId: streamId(body, 0, 'HEADERS'),
          fin,
          headerBlock: body.subarray(4),
        };
      case FrameType.RST_STREAM:
        return { type: 'rstStream', streamId: streamId(body, 0, 'RST_STREAM'), status: body.readUInt32BE(4) };
      case FrameType.SETTINGS: {
        const count = body.readUInt32BE(0);
        if (count * 8 + 4 !== body.length) {
          throw protocolError(`a SETTINGS frame announcing ${count} entries in ${body.length} bytes`);
        }
        const entries = [];
        for (let i = 0; i < count; i++) {
          const w = body.readUInt32BE(4 + 8 * i);
          entries.push({ flags: w >>> 24, id: w & 0xffffff, value: body.readUInt32BE(8 + 8 * i) });
        }
        return { type: 'settings', clear: (flags & 1) !== 0, entries };
      }
      case FrameType.PING:
        return { type: 'ping', id: body.readUInt32BE(0) };
      case FrameType.GOAWAY:
        return {
          type: 'goaway',
          lastGoodStreamId: body.readUInt32BE(0) & 0x7fffffff,
          status: body.readUInt32BE(4),
        };
      case FrameType.WINDOW_UPDATE:
        return {
          type: 'windowUpdate',
          streamId: body.readUInt32BE(0) & 0x7fffffff,
          delta: body.readUInt32BE(4) & 0x7fffffff,
        };
      default:
        return { type: 'unknown', frameType: type, flags, length: body.length };
    }
  }

  /** Removes `n` buffered bytes: a subarray when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[0];
    const avail = first.length - this.offset;
    let out: Buffer;
    if (avail >= n) {
      out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    } else {
      out = n === 8 ? this.scratch : Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0];
        const m = Math.min(c.length - this.offset, n - filled);
        c.copy(out, filled, this.offset, this.offset + m);
        filled += m;
        this.offset += m;
        if (this.offset === c.length) {
          this.chunks.shift();
          this.offset = 0;
        }
      }
    }
    this.buffered -= n;
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

function streamId(body: Buffer, at: number, what: string): number {
  const id = body.readUInt32BE(at) & 0x7fffffff;
  if (id === 0) throw protocolError(`a ${what} frame on stream 0`);
  return id;
}

function protocolError(what: string): PortForwardError {
  return new PortForwardError('protocol', `SPDY protocol error: the peer sent ${what}`);
}
