// SPDY/3.1 frames (draft-mbelshe-httpbis-spdy-00 section 2, plus 3.1's session WINDOW_UPDATE): an
// encoder and an incremental decoder, pure (no I/O, no zlib: header blocks stay compressed here and the
// session inflates them in frame order).
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
// - `encodeDataHeader` returns the 8-byte header alone, so the payload is written without a copy.
//
// Caveats
// - After the decoder threw, its state is undefined: the session that owns it must end.
// - CREDENTIAL (type 10, SPDY/3 only) is treated as unknown and skipped.
import { PortForwardError } from '../errors';

export const SPDY_VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

/** RST_STREAM status codes. */
export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  INVALID_CREDENTIALS: 10,
  FRAME_TOO_LARGE: 11,
} as const;

/** GOAWAY status codes. */
export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

export const MAX_STREAM_ID = 0x7fffffff;
/** The 24-bit length field's limit. */
export const MAX_FRAME_LENGTH = 0xffffff;

export type Frame =
  | { type: 'data'; streamId: number; fin: boolean; data: Buffer }
  | {
      type: 'synStream';
      streamId: number;
      associatedId: number;
      priority: number;
      fin: boolean;
      unidirectional: boolean;
      headerBlock: Buffer;
    }
  | { type: 'synReply'; streamId: number; fin: boolean; headerBlock: Buffer }
  | { type: 'rstStream'; streamId: number; status: number }
  | { type: 'settings'; clear: boolean; entries: { id: number; flags: number; value: number }[] }
  | { type: 'ping'; id: number }
  | { type: 'goaway'; lastGoodStreamId: number; status: number }
  | { type: 'headers'; streamId: number; fin: boolean; headerBlock: Buffer }
  | { type: 'windowUpdate'; streamId: number; delta: number }
  | { type: 'unknown'; frameType: number; flags: number; length: number };

export interface FrameDecoderOptions {
  /** Largest DATA payload accepted; default (and at most) 16 MiB - 1, the length field's limit. */
  maxDataBytes?: number;
  /** Largest control frame body accepted; default 1 MiB. */
  maxControlBytes?: number;
}

// ---------------------------------------------------------------------------------------------- encode

function controlFrame(type: number, flags: number, body: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(8 + body.length);
  frame.writeUInt32BE((0x8000 | SPDY_VERSION) * 0x10000 + type, 0);
  frame.writeUInt32BE(flags * 0x1000000 + body.length, 4);
  body.copy(frame, 8);
  return frame;
}

function checkStreamId(id: number, allowZero = false): void {
  if (!Number.isInteger(id) || id < (allowZero ? 0 : 1) || id > MAX_STREAM_ID) {
    throw new RangeError(`stream id ${id} is not in ${allowZero ? 0 : 1}-${MAX_STREAM_ID}`);
  }
}

/** The 8-byte header of a DATA frame carrying `length` bytes; write the payload after it as it is. */
export function encodeDataHeader(streamId: number, length: number, fin: boolean): Buffer {
  checkStreamId(streamId);
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_LENGTH) {
    throw new RangeError(`DATA length ${length} is not in 0-${MAX_FRAME_LENGTH}`);
  }
  const header = Buffer.allocUnsafe(8);
  header.writeUInt32BE(streamId, 0);
  header.writeUInt32BE((fin ? FLAG_FIN : 0) * 0x1000000 + length, 4);
  return header;
}

export function encodeSynStream(
  streamId: number,
  headerBlock: Buffer,
  opts: { fin?: boolean; unidirectional?: boolean; priority?: number; associatedId?: number } = {},
): Buffer {
  checkStreamId(streamId);
  const body = Buffer.allocUnsafe(10 + headerBlock.length);
  body.writeUInt32BE(streamId, 0);
  body.writeUInt32BE(opts.associatedId ?? 0, 4);
  body[8] = ((opts.priority ?? 0) & 0x7) << 5;
  body[9] = 0; // slot
  headerBlock.copy(body, 10);
  const flags = (opts.fin ? FLAG_FIN : 0) | (opts.unidirectional ? FLAG_UNIDIRECTIONAL : 0);
  return controlFrame(FrameType.SYN_STREAM, flags, body);
}

export function encodeSynReply(streamId: number, headerBlock: Buffer, fin = false): Buffer {
  checkStreamId(streamId);
  return controlFrame(FrameType.SYN_REPLY, fin ? FLAG_FIN : 0, Buffer.concat([u32(streamId), headerBlock]));
}

export function encodeHeaders(streamId: number, headerBlock: Buffer, fin = false): Buffer {
  checkStreamId(streamId);
  return controlFrame(FrameType.HEADERS, fin ? FLAG_FIN : 0, Buffer.concat([u32(streamId), headerBlock]));
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  checkStreamId(streamId);
  return controlFrame(FrameType.RST_STREAM, 0, Buffer.concat([u32(streamId), u32(status)]));
}

export function encodePing(id: number): Buffer {
  return controlFrame(FrameType.PING, 0, u32(id >>> 0));
}

export function encodeGoAway(lastGoodStreamId: number, status: number = GoAwayStatus.OK): Buffer {
  checkStreamId(lastGoodStreamId, true);
  return controlFrame(FrameType.GOAWAY, 0, Buffer.concat([u32(lastGoodStreamId), u32(status)]));
}

export function encodeSettings(
  entries: { id: number; value: number; flags?: number }[],
  clear = false,
): Buffer {
  const body = Buffer.allocUnsafe(4 + 8 * entries.length);
  body.writeUInt32BE(entries.length, 0);
  entries.forEach((e, i) => {
    body.writeUInt32BE((e.flags ?? 0) * 0x1000000 + (e.id & 0xffffff), 4 + 8 * i);
    body.writeUInt32BE(e.value >>> 0, 8 + 8 * i);
  });
  return controlFrame(FrameType.SETTINGS, clear ? 1 : 0, body);
}

export function encodeWindowUpdate(streamId: number, delta: number): Buffer {
  checkStreamId(streamId, true);
  return controlFrame(FrameType.WINDOW_UPDATE, 0, Buffer.concat([u32(streamId), u32(delta)]));
}

/** Any control frame, for tests that need frames a well-behaved encoder never makes. */
export function encodeRawControl(type: number, flags: number, body: Buffer, version = SPDY_VERSION): Buffer {
  const frame = Buffer.allocUnsafe(8 + body.length);
  frame.writeUInt32BE((0x8000 | version) * 0x10000 + type, 0);
  frame.writeUInt32BE(flags * 0x1000000 + body.length, 4);
  body.copy(frame, 8);
  return frame;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

// ---------------------------------------------------------------------------------------------- decode

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

export function typeName(type: number): string {
  const name = Object.entries(FrameType).find(([, v]) => v === type)?.[0];
  return name ?? `type-${type}`;
}

function protocolError(what: string): PortForwardError {
  return new PortForwardError('protocol', `SPDY protocol error: the peer sent ${what}`);
}
