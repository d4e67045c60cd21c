// SPDY/3.1 frames (draft-mbelshe-httpbis-spdy-00 section 2, plus 3.1's session WINDOW_UPDATE): the
// frame types and an encoder, pure (no I/O, no zlib: header blocks stay compressed here and the session
// deflates and inflates them in frame order). The incremental decoder is decoder.ts.
//
// Guarantees
// - `encodeDataHeader` returns the 8-byte header alone, so the payload is written without a copy.
// - Encoders refuse stream ids outside 1..2^31-1 (0 where the frame allows it) with a RangeError.

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

export function typeName(type: number): string {
  const name = Object.entries(FrameType).find(([, v]) => v === type)?.[0];
  return name ?? `type-${type}`;
}
