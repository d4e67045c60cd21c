import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as zlib from 'node:zlib';
import { PortForwardError } from '../errors';
import {
  decodeHeaderBlock,
  encodeHeaderBlock,
  HeaderCompressor,
  HeaderDecompressor,
  SPDY3_DICTIONARY,
  SpdyHeaders,
} from './headers';

async function assertRejects(p: Promise<unknown>, text: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof PortForwardError, `a PortForwardError, not ${String(err)}`);
    assert.equal(err.kind, 'protocol');
    assert.match(err.message, text);
    return true;
  });
}

export function assertProtocolError(fn: () => unknown, text: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PortForwardError, `a PortForwardError, not ${String(err)}`);
    assert.equal(err.kind, 'protocol');
    assert.match(err.message, text);
    return true;
  });
}

describe('SPDY header blocks', function () {
  it('has the 1423-byte SPDY/3 dictionary (the same bytes as Go spdy headerDictionary)', function () {
    assert.equal(SPDY3_DICTIONARY.length, 1423);
    assert.equal(
      crypto.createHash('sha256').update(SPDY3_DICTIONARY).digest('hex'),
      '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02',
    );
  });

  it('encodes and decodes name/value pairs, lower-casing names and joining values with NUL', function () {
    const block = encodeHeaderBlock({ StreamType: 'data', port: '8080', multi: ['a', 'b'] });
    assert.deepEqual(decodeHeaderBlock(block), { streamtype: 'data', port: '8080', multi: ['a', 'b'] });
    assert.deepEqual(decodeHeaderBlock(encodeHeaderBlock({})), {});
  });

  it('round-trips many blocks in order on one shared context per direction', async function () {
    const c = new HeaderCompressor();
    const d = new HeaderDecompressor();
    const blocks = [];
    for (let i = 0; i < 50; i++)
      blocks.push(c.compress({ streamtype: i % 2 ? 'data' : 'error', port: '5432', requestid: String(i) }));
    const got = await Promise.all(blocks.map((b) => d.decompress(b)));
    got.forEach((h, i) =>
      assert.deepEqual(h, { streamtype: i % 2 ? 'data' : 'error', port: '5432', requestid: String(i) }),
    );
    // The only zlib header is on the first block: one stream per direction.
    assert.equal(blocks[0].length - blocks[2].length, 6);
  });

  it('inflates blocks that zlib really compressed (as Go spdy writes them), in order', async function () {
    const z = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 });
    const blocks: Buffer[] = [];
    for (const h of [{ a: '1' }, { a: '2', b: 'x'.repeat(3000) }, {}] as SpdyHeaders[]) {
      z.write(encodeHeaderBlock(h));
      const out: Buffer[] = [];
      const onData = (c: Buffer): number => out.push(c);
      z.on('data', onData);
      await new Promise<void>((r) => z.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
      z.off('data', onData);
      blocks.push(Buffer.concat(out));
    }
    assert.ok(blocks[1].length < 200, 'really compressed');
    const d = new HeaderDecompressor();
    assert.deepEqual(await Promise.all(blocks.map((b) => d.decompress(b))), [
      { a: '1' },
      { a: '2', b: 'x'.repeat(3000) },
      {},
    ]);
  });

  it('ends every block with the empty stored block of Z_SYNC_FLUSH (Go flate needs it to stop)', function () {
    const c = new HeaderCompressor();
    for (const h of [{ a: 'b' }, { big: 'y'.repeat(70_000) }, {}] as SpdyHeaders[]) {
      assert.deepEqual([...c.compress(h).subarray(-5)], [0, 0, 0, 0xff, 0xff]);
    }
  });

  it('each block is flushed: a fresh inflater with the dictionary reads the first one alone', function () {
    const block = new HeaderCompressor().compress({ a: 'b' });
    const raw = zlib.inflateSync(block, {
      dictionary: SPDY3_DICTIONARY,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    assert.deepEqual(decodeHeaderBlock(raw), { a: 'b' });
  });

  it('raises a protocol error for a block compressed with another dictionary', async function () {
    const block = zlib.deflateSync(encodeHeaderBlock({ a: 'b' }), { dictionary: Buffer.from('other') });
    await assertRejects(new HeaderDecompressor().decompress(block), /bad header block/);
  });

  it('raises a protocol error for garbage, and keeps failing afterwards', async function () {
    const d = new HeaderDecompressor();
    await assertRejects(d.decompress(Buffer.from('definitely not zlib')), /bad header block/);
    await assertRejects(d.decompress(new HeaderCompressor().compress({ a: 'b' })), /bad header block/);
  });

  it('raises a protocol error for truncated or lying pair lists', function () {
    const block = encodeHeaderBlock({ port: '80' });
    assertProtocolError(() => decodeHeaderBlock(block.subarray(0, block.length - 1)), /truncated value/);
    const lying = Buffer.from([0, 0, 0x10, 0, 0, 0, 0, 1]);
    assertProtocolError(() => decodeHeaderBlock(lying), /pairs in 8 bytes/);
    assertProtocolError(
      () => decodeHeaderBlock(Buffer.concat([block, Buffer.from([1])])),
      /after the last pair/,
    );
  });

  it('refuses a block that inflates beyond the limit', async function () {
    const block = new HeaderCompressor().compress({ big: 'x'.repeat(100_000) });
    await assertRejects(new HeaderDecompressor(10_000).decompress(block), /beyond 10000 bytes/);
  });
});
