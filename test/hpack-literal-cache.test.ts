import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HuffmanError, huffmanEncode, huffmanLength } from '../src/http3/huffman.ts';
import { HpackDecoder, HpackError } from '../src/protocol/h2/hpack.ts';
import { LiteralCache } from '../src/protocol/h2/literal-cache.ts';

function coded(s: string): Buffer {
  const raw = Buffer.from(s, 'latin1');
  const out = Buffer.alloc(huffmanLength(raw));
  huffmanEncode(raw, out, 0);
  return out;
}

/** A literal field without indexing with a new name (RFC 7541 §6.2.2), both strings Huffman-coded or both raw. */
function literalField(name: string, value: string, huffman = true): Buffer {
  const n = huffman ? coded(name) : Buffer.from(name, 'latin1');
  const v = huffman ? coded(value) : Buffer.from(value, 'latin1');
  assert.ok(n.length < 127 && v.length < 127);
  const flag = huffman ? 0x80 : 0x00;
  return Buffer.concat([Buffer.from([0x00, flag | n.length]), n, Buffer.from([flag | v.length]), v]);
}

test('literal cache: a string decodes to itself on a miss and on a hit, inside a larger buffer too; Huffman and raw bytes that are the same are not confused', () => {
  const cache = new LiteralCache();
  const a = coded('/bench.Echo/Unary');
  const first = cache.decode(a, 0, a.length, true, 1000);
  assert.equal(first, '/bench.Echo/Unary');
  const framed = Buffer.concat([Buffer.from([1, 2, 3]), a, Buffer.from([9])]);
  assert.equal(cache.decode(framed, 3, 3 + a.length, true, 1000), first);
  // The same bytes read raw are another string.
  assert.equal(cache.decode(a, 0, a.length, false, 1000), a.toString('latin1'));
  assert.equal(cache.decode(a, 0, a.length, true, 1000), '/bench.Echo/Unary');
  // Many more strings than slots, twice over: every one still decodes to itself (a collision
  // replaces a slot, never answers with another string).
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 10 * LiteralCache.SLOTS; i++) {
      const s = `/svc.S${i}/M${i % 7}`;
      const b = coded(s);
      assert.equal(cache.decode(b, 0, b.length, true, 1000), s);
      const r = Buffer.from(s, 'latin1');
      assert.equal(cache.decode(r, 0, r.length, false, 1000), s);
    }
  }
  // Past the cached length: decoded every time, still right.
  const long = 'x'.repeat(200);
  const lb = coded(long);
  assert.ok(lb.length > LiteralCache.MAX_CODED);
  assert.equal(cache.decode(lb, 0, lb.length, true, 1000), long);
});

test('literal cache: bounded: it holds at most SLOTS strings, each of at most MAX_CODED coded bytes', () => {
  const cache = new LiteralCache();
  for (let i = 0; i < 50 * LiteralCache.SLOTS; i++) {
    const b = coded(`value-${i}-${'y'.repeat(i % 90)}`);
    cache.decode(b, 0, b.length, true, 1000);
  }
  const slots = (cache as unknown as { coded: (Buffer | undefined)[]; decoded: string[] });
  assert.equal(slots.coded.length, LiteralCache.SLOTS);
  assert.equal(slots.decoded.length, LiteralCache.SLOTS);
  for (const b of slots.coded) assert.ok(b === undefined || b.length <= LiteralCache.MAX_CODED);
});

test('literal cache: a string seen before is still refused when longer than this decode allows; bad padding is still an error', () => {
  const cache = new LiteralCache();
  const b = coded('content-type-value');
  assert.equal(cache.decode(b, 0, b.length, true, 1000), 'content-type-value');
  assert.throws(() => cache.decode(b, 0, b.length, true, 5), HuffmanError);
  const bad = Buffer.from(b);
  bad[bad.length - 1] &= 0xfe; // the padding's last bit no longer a one
  assert.throws(() => cache.decode(bad, 0, bad.length, true, 1000), HuffmanError);
  // The good string is still known and still right.
  assert.equal(cache.decode(b, 0, b.length, true, 1000), 'content-type-value');
});

test('hpack decoder: repeated Huffman and raw literals decode the same on every block; a bad Huffman string is a COMPRESSION error after a hit too', () => {
  const dec = new HpackDecoder(4096, 64 * 1024);
  const block = Buffer.concat([
    literalField('x-path', '/helloworld.Greeter/SayHello'),
    literalField('x-raw', 'plain value', false),
    // content-length, name from the static table (28), value Huffman-coded, not indexed.
    Buffer.from([0x0f, 0x0d, 0x80 | coded('105').length]),
    coded('105'),
  ]);
  const want = ['x-path', '/helloworld.Greeter/SayHello', 'x-raw', 'plain value', 'content-length', '105'];
  for (let i = 0; i < 5; i++) assert.deepEqual(dec.decode(block), want);
  const other = literalField('x-path', '/helloworld.Greeter/SayHelloStream');
  assert.deepEqual(dec.decode(other), ['x-path', '/helloworld.Greeter/SayHelloStream']);
  assert.deepEqual(dec.decode(block), want);
  const bad = Buffer.from(other);
  bad[bad.length - 1] &= 0xfe;
  assert.throws(() => dec.decode(bad), HpackError);
});

test('hpack decoder: each decoder has its own literal cache (one connection cannot find what another sent)', () => {
  const a = new HpackDecoder(4096, 64 * 1024);
  const b = new HpackDecoder(4096, 64 * 1024);
  assert.deepEqual(a.decode(literalField('x-secret', 'token-abc')), ['x-secret', 'token-abc']);
  assert.deepEqual(b.decode(literalField('x-other', 'value')), ['x-other', 'value']);
  const cacheOf = (d: HpackDecoder): LiteralCache | null => (d as unknown as { literals: LiteralCache | null }).literals;
  const codedIn = (d: HpackDecoder): Buffer[] => (cacheOf(d) as unknown as { coded: (Buffer | undefined)[] }).coded.filter((x): x is Buffer => x !== undefined);
  assert.ok(cacheOf(a) !== null && cacheOf(b) !== null);
  assert.notEqual(cacheOf(a), cacheOf(b));
  // A's strings are in A's cache and nowhere in B's.
  const secret = coded('token-abc');
  assert.ok(codedIn(a).some((x) => x.equals(secret)));
  assert.ok(!codedIn(b).some((x) => x.equals(secret)));
  // A decoder that never met a literal has no cache.
  const c = new HpackDecoder(4096, 64 * 1024);
  assert.deepEqual(c.decode(Buffer.from([0x82])), [':method', 'GET']);
  assert.equal(cacheOf(c), null);
});

test('hpack decoder: a block given as a range of a larger buffer is decoded within it; a string or integer running past its end is a truncation, whatever follows in the buffer', () => {
  const dec = new HpackDecoder(4096, 64 * 1024);
  const field = literalField('x-path', '/helloworld.Greeter/SayHello');
  const framed = Buffer.concat([Buffer.from([0xff, 0xff]), field, Buffer.from([0x82, 0x84])]);
  assert.deepEqual(dec.decode(framed, 2, 2 + field.length), ['x-path', '/helloworld.Greeter/SayHello']);
  // One byte short: the value's last byte is outside the range though in the buffer.
  assert.throws(() => new HpackDecoder(4096, 64 * 1024).decode(framed, 2, 2 + field.length - 1), HpackError);
  // An integer continued past the range's end (0x7f then continuation bytes outside it).
  const int = Buffer.from([0xff, 0x80, 0x80, 0x01]);
  assert.throws(() => new HpackDecoder(4096, 64 * 1024).decode(int, 0, 2), HpackError);
});
