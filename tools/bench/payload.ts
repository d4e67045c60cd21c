// The bytes the relay benchmark moves, and how they are checked. The target servers and the load
// client derive the same 4 MiB block from a seed the benchmark hands both (AES-256-CTR keystream), so
// either end can check what it received byte for byte without the other sending a digest first.
//
// Why byte comparison by default: without SHA extensions (common on cloud vCPUs) sha256 runs at
// 130-300 MiB/s in Node, slower than the relays being measured, so hashing would be what the
// throughput and echo figures measure. A memcmp against the expected bytes runs at GB/s and is
// stricter than a digest. BENCH_VERIFY=sha256 compares sha256 digests instead.
import * as crypto from 'node:crypto';

export const BLOCK_BYTES = 4 * 1024 * 1024;

export type Verify = 'bytes' | 'sha256';

export function seededBlock(seedHex: string): Buffer {
  const key = Buffer.from(seedHex, 'hex');
  if (key.length !== 32)
    throw new Error(`the payload seed must be 32 bytes of hex, not ${seedHex.length / 2}`);
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(BLOCK_BYTES));
}

/** Whether `chunk` equals the endless repetition of `block` from stream offset `offset` on. */
export function matchesBlock(block: Buffer, offset: number, chunk: Buffer): boolean {
  for (let pos = 0; pos < chunk.length;) {
    const o = (offset + pos) % block.length;
    const n = Math.min(chunk.length - pos, block.length - o);
    if (block.compare(chunk, pos, pos + n, o, o + n) !== 0) return false;
    pos += n;
  }
  return true;
}

/** sha256 of the first `bytes` of the endless repetition of `block`. */
export function blockStreamSha256(block: Buffer, bytes: number): string {
  const hash = crypto.createHash('sha256');
  for (let left = bytes; left > 0; left -= block.length)
    hash.update(block.subarray(0, Math.min(left, block.length)));
  return hash.digest('hex');
}

/** The push header: the byte count that follows and how the sink checks it. */
export const PUSH_HEADER_BYTES = 9;

export function pushHeader(bytes: number, verify: Verify): Buffer {
  const h = Buffer.alloc(PUSH_HEADER_BYTES);
  h.writeBigUInt64BE(BigInt(bytes), 0);
  h[8] = verify === 'sha256' ? 1 : 0;
  return h;
}

export function parsePushHeader(h: Buffer): { bytes: number; verify: Verify } {
  return { bytes: Number(h.readBigUInt64BE(0)), verify: h[8] === 1 ? 'sha256' : 'bytes' };
}
