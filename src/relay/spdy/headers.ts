// SPDY/3 header blocks: the name/value encoding and its zlib compression with the SPDY/3 dictionary
// (draft-mbelshe-httpbis-spdy-00, 2.6.10). Written here because no maintained npm package speaks
// SPDY/3.1 to moby/spdystream.
//
// Guarantees
// - One context per direction per session: a `HeaderCompressor` for what we send, a
//   `HeaderDecompressor` for what we receive; each block is complete on its own (sync-flushed).
// - Compression is synchronous, so a SYN_STREAM is written in the tick it is asked for and blocks follow
//   frame order. It writes a zlib stream of *stored* deflate blocks announcing the SPDY dictionary
//   (FDICT + its Adler-32): valid deflate that every inflater, Go's included, reads. Header blocks are
//   a few dozen bytes here; compressing them would save nothing worth a zlib context.
// - Decompression runs on one node:zlib Inflate stream fed in frame order, so blocks are inflated in
//   the order they arrived; each block's headers (or its error) come back in that order.
// - A bad block (wrong dictionary, corrupt data, truncated pairs, a block inflating beyond `maxBytes`)
//   is a PortForwardError of kind `protocol`. The context is unusable afterwards, and so is the
//   session: SPDY header compression cannot resynchronise.
//
// Caveats
// - Node has no synchronous API over a persistent zlib context (`inflateSync` starts a new one each
//   call, and the zlib objects' `_processChunk` closes the handle), so inflating is asynchronous: a
//   frame's effects (FIN, reply) are applied at once, its headers arrive a moment later.
import * as zlib from 'node:zlib';
import { PortForwardError } from '../errors';

/** Header names are lower case; a value with several parts joins them with NUL (SPDY/3 2.6.10). */
export type SpdyHeaders = Record<string, string | string[]>;

// The SPDY/3 compression dictionary: 4-byte big-endian length-prefixed words, then one run of text.
// prettier-ignore
const DICTIONARY_WORDS = [
  'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding',
  'accept-language', 'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection',
  'content-base', 'content-encoding', 'content-language', 'content-length', 'content-location',
  'content-md5', 'content-range', 'content-type', 'date', 'etag', 'expect', 'expires', 'from', 'host',
  'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified',
  'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
  'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via',
  'warning', 'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url',
  'public', 'set-cookie', 'keep-alive', 'origin',
];
const DICTIONARY_TAIL =
  '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
  '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request' +
  '401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented' +
  '503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ' +
  'Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,' +
  'application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=' +
  'gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

function buildDictionary(): Buffer {
  const parts: Buffer[] = [];
  for (const word of DICTIONARY_WORDS) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(word.length);
    parts.push(len, Buffer.from(word, 'latin1'));
  }
  parts.push(Buffer.from(DICTIONARY_TAIL, 'latin1'));
  return Buffer.concat(parts);
}

/** The SPDY/3 header dictionary (1423 bytes). */
export const SPDY3_DICTIONARY: Buffer = buildDictionary();

/** Largest inflated header block accepted by default. */
export const DEFAULT_MAX_HEADER_BYTES = 256 * 1024;

/** Encodes a header block (uncompressed form); names are lower-cased, duplicates merged. */
export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const pairs = new Map<string, string[]>();
  for (const [rawName, value] of Object.entries(headers)) {
    const name = rawName.toLowerCase();
    if (name.length === 0) throw new RangeError('a SPDY header name may not be empty');
    const values = Array.isArray(value) ? value : [value];
    pairs.set(name, [...(pairs.get(name) ?? []), ...values]);
  }
  const parts: Buffer[] = [u32(pairs.size)];
  for (const [name, values] of pairs) {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(values.join('\0'), 'utf8');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Decodes an uncompressed header block; throws a `protocol` PortForwardError when malformed. */
export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  let at = 0;
  const need = (n: number, what: string): void => {
    if (at + n > block.length) throw badBlock(`truncated ${what}`);
  };
  need(4, 'pair count');
  const count = block.readUInt32BE(at);
  at += 4;
  // Each pair takes at least 8 bytes: a count beyond that is a lie, not a reason to allocate.
  if (count > (block.length - 4) / 8) throw badBlock(`${count} pairs in ${block.length} bytes`);
  const headers: SpdyHeaders = {};
  for (let i = 0; i < count; i++) {
    need(4, 'name length');
    const nameLen = block.readUInt32BE(at);
    at += 4;
    if (nameLen === 0) throw badBlock('an empty header name');
    need(nameLen, 'name');
    const name = block.toString('utf8', at, at + nameLen).toLowerCase();
    at += nameLen;
    need(4, 'value length');
    const valueLen = block.readUInt32BE(at);
    at += 4;
    need(valueLen, 'value');
    const values = block.toString('utf8', at, at + valueLen).split('\0');
    at += valueLen;
    if (Object.prototype.hasOwnProperty.call(headers, name)) throw badBlock(`header ${name} twice`);
    headers[name] = values.length === 1 ? values[0] : values;
  }
  if (at !== block.length) throw badBlock(`${block.length - at} bytes after the last pair`);
  return headers;
}

/** The first value of header `name` (SPDY names are lower case). */
export function headerValue(headers: SpdyHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Adler-32 (RFC 1950): the zlib stream names its preset dictionary by it. */
export function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < buf.length;) {
    const end = Math.min(i + 3800, buf.length); // sums stay below 2^53 before the modulo
    for (; i < end; i++) {
      a += buf[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return (b * 65536 + a) >>> 0;
}

/** CMF 0x78 (deflate, 32 KiB window), FLG with FDICT and a valid check, DICTID. */
function zlibHeader(): Buffer {
  const cmf = 0x78;
  let flg = 0x20; // FDICT, FLEVEL 0
  flg += 31 - ((cmf * 256 + flg) % 31);
  const h = Buffer.alloc(6);
  h[0] = cmf;
  h[1] = flg;
  h.writeUInt32BE(adler32(SPDY3_DICTIONARY), 2);
  return h;
}

const SYNC_FLUSH_MARKER = Buffer.from([0, 0, 0, 0xff, 0xff]);

/** The sending direction's context: compress(headers) returns the bytes for one frame. */
export class HeaderCompressor {
  private started = false;

  compress(headers: SpdyHeaders): Buffer {
    const raw = encodeHeaderBlock(headers);
    const parts: Buffer[] = [];
    if (!this.started) {
      this.started = true;
      parts.push(zlibHeader());
    }
    // Stored blocks (BFINAL 0, BTYPE 00) of at most 65535 bytes; we stay byte-aligned throughout.
    for (let at = 0; at < raw.length; at += 65535) {
      const piece = raw.subarray(at, at + 65535);
      const h = Buffer.alloc(5);
      h.writeUInt16LE(piece.length, 1);
      h.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(h, piece);
    }
    // Then the empty stored block Z_SYNC_FLUSH writes. Not optional: Go's flate hands out a stored
    // block's bytes only when it reaches the next block, so without it spdystream's framer reads past
    // the frame and fails ("compressed payload size was incorrect").
    parts.push(SYNC_FLUSH_MARKER);
    return Buffer.concat(parts);
  }

  close(): void {
    // nothing held
  }
}

/** The receiving direction's context: decompress(block) resolves with one frame's headers, in order. */
export class HeaderDecompressor {
  private readonly z: zlib.Inflate;
  private broken: PortForwardError | undefined;
  private out: Buffer[] = [];
  private outBytes = 0;
  private readonly pending: { resolve(h: SpdyHeaders): void; reject(e: Error): void }[] = [];

  constructor(private readonly maxBytes = DEFAULT_MAX_HEADER_BYTES) {
    this.z = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
    this.z.on('data', (c: Buffer) => {
      this.outBytes += c.length;
      if (this.outBytes <= this.maxBytes) this.out.push(c);
      else this.fail(badBlock(`a block inflating beyond ${this.maxBytes} bytes`));
    });
    this.z.on('error', (err) =>
      this.fail(
        new PortForwardError('protocol', `SPDY protocol error: bad header block: ${err.message}`, {
          cause: err,
        }),
      ),
    );
  }

  decompress(compressed: Buffer): Promise<SpdyHeaders> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      // Blocks are written in frame order and flushes complete in order: the output up to a flush's
      // callback is that block's.
      this.z.write(Buffer.from(compressed)); // a copy: the frame may be a view of a reused socket buffer
      this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => this.blockDone());
    });
  }

  close(): void {
    this.fail(badBlock('the header context is closed'));
  }

  private blockDone(): void {
    if (this.broken) return;
    const raw = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out);
    this.out = [];
    this.outBytes = 0;
    const p = this.pending.shift();
    try {
      p?.resolve(decodeHeaderBlock(raw));
    } catch (err) {
      p?.reject(err as Error);
    }
  }

  private fail(err: PortForwardError): void {
    if (this.broken) return;
    this.broken = err;
    this.z.destroy();
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

function badBlock(what: string): PortForwardError {
  return new PortForwardError('protocol', `SPDY protocol error: bad header block: ${what}`);
}
