import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeVarint, readVarint } from '../src/http3/varint.ts';
import { huffmanDecode, huffmanEncode, huffmanLength, HuffmanError } from '../src/http3/huffman.ts';
import { decodeFieldSection, encodeFieldSection, FieldSectionTooLarge, type FieldLine } from '../src/http3/qpack.ts';
import { STATIC_TABLE } from '../src/http3/qpack-static.ts';
import { encodeFrame, encodeSettings, FrameReader, FRAME, parseSettings, type FrameSink } from '../src/http3/frames.ts';
import { H3, Http3Error } from '../src/http3/errors.ts';

const LIMITS = { maxSectionSize: 16_384, maxFields: 100 };

test('varints: RFC 9000 §A.1 examples decode, and values round-trip at each length', () => {
  assert.deepEqual(readVarint(Buffer.from('9d7f3e7d', 'hex'), 0), { value: 494_878_333, length: 4 });
  assert.deepEqual(readVarint(Buffer.from('7bbd', 'hex'), 0), { value: 15_293, length: 2 });
  assert.deepEqual(readVarint(Buffer.from('25', 'hex'), 0), { value: 37, length: 1 });
  assert.deepEqual(readVarint(Buffer.from('4025', 'hex'), 0), { value: 37, length: 2 });
  assert.equal(readVarint(Buffer.from('9d7f3e', 'hex'), 0), undefined, 'a cut varint is incomplete, not a value');
  for (const v of [0, 63, 64, 16_383, 16_384, 2 ** 30 - 1, 2 ** 30, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
    const enc = encodeVarint(v);
    assert.deepEqual(readVarint(enc, 0), { value: v, length: enc.length }, `value ${v}`);
  }
});

test('Huffman: RFC 7541 Appendix C strings encode and decode exactly', () => {
  const cases: [string, string][] = [
    ['www.example.com', 'f1e3c2e5f23a6ba0ab90f4ff'],
    ['no-cache', 'a8eb10649cbf'],
    ['custom-key', '25a849e95ba97d7f'],
    ['custom-value', '25a849e95bb8e8b4bf'],
    ['302', '6402'],
    ['private', 'aec3771a4b'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07abe941054d444a8200595040b8166e082a62d1bff'],
    ['https://www.example.com', '9d29ad171863c78f0b97c8e9ae82ae43d3'],
  ];
  for (const [text, hex] of cases) {
    const input = Buffer.from(text, 'latin1');
    const out = Buffer.alloc(huffmanLength(input));
    assert.equal(huffmanEncode(input, out, 0), out.length);
    assert.equal(out.toString('hex'), hex, `encode ${text}`);
    assert.equal(huffmanDecode(Buffer.from(hex, 'hex'), 1000).toString('latin1'), text, `decode ${text}`);
  }
  // Every octet round-trips.
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const coded = Buffer.alloc(huffmanLength(all));
  huffmanEncode(all, coded, 0);
  assert.deepEqual(huffmanDecode(coded, 10_000), all);
});

test('Huffman: bad padding, EOS and over-long output are refused', () => {
  // 'a' is 00011 (5 bits); padding of zeros instead of ones.
  assert.throws(() => huffmanDecode(Buffer.from([0b00011000]), 10), HuffmanError);
  // Eight bits of padding (a whole byte of ones after a full symbol).
  assert.throws(() => huffmanDecode(Buffer.from([0b00011111, 0xff]), 10), HuffmanError);
  // EOS: 30 ones.
  assert.throws(() => huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff]), 10), HuffmanError);
  assert.throws(() => huffmanDecode(Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex'), 5), /longer than 5/);
});

test('QPACK: RFC 9204 Appendix B.1 literal with a static name reference decodes', () => {
  const fields = decodeFieldSection(Buffer.from('0000510b2f696e6465782e68746d6c', 'hex'), LIMITS);
  assert.deepEqual(fields, [[':path', '/index.html']]);
});

test('QPACK: static-table round trips (indexed, name reference, literal name, Huffman or not)', () => {
  const fields: FieldLine[] = [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', 'example.com:8443'],
    [':path', '/a/b?c=d'],
    ['accept', '*/*'],
    ['content-type', 'application/x-custom'],
    ['x-weird', '\u00ff\u0001 binary-ish'],
    ['x-empty', ''],
    ['user-agent', 'x'.repeat(300)],
  ];
  const enc = encodeFieldSection(fields);
  assert.equal(enc[0], 0, 'Required Insert Count 0');
  // ':method GET' is static index 17: an indexed line 0xc0 | 17.
  assert.equal(enc[2], 0xc0 | 17);
  assert.deepEqual(decodeFieldSection(enc, LIMITS), fields);
  // Every static entry as an exact match.
  const all = STATIC_TABLE.map(([n, v]) => [n, v] as FieldLine);
  assert.deepEqual(decodeFieldSection(encodeFieldSection(all), { maxSectionSize: 1e6, maxFields: 1000 }), all);
});

test('QPACK: dynamic table references are QPACK_DECOMPRESSION_FAILED', () => {
  const isFailed = (err: unknown) => err instanceof Http3Error && err.code === H3.QPACK_DECOMPRESSION_FAILED && err.scope === 'connection';
  // Required Insert Count 2.
  assert.throws(() => decodeFieldSection(Buffer.from('0200', 'hex'), LIMITS), isFailed);
  // Indexed line with T=0 (dynamic), index 0.
  assert.throws(() => decodeFieldSection(Buffer.from('000080', 'hex'), LIMITS), isFailed);
  // Literal with a dynamic name reference (01 N=0 T=0).
  assert.throws(() => decodeFieldSection(Buffer.from('0000400161', 'hex'), LIMITS), isFailed);
  // Post-base forms.
  assert.throws(() => decodeFieldSection(Buffer.from('000010', 'hex'), LIMITS), isFailed);
  assert.throws(() => decodeFieldSection(Buffer.from('000000', 'hex'), LIMITS), isFailed);
  // Static index past the table, and a section cut inside a string.
  assert.throws(() => decodeFieldSection(Buffer.from('0000ff24', 'hex'), LIMITS), isFailed);
  assert.throws(() => decodeFieldSection(Buffer.from('0000510b2f69', 'hex'), LIMITS), isFailed);
});

test('QPACK: sections over the size or count limit are refused as too large', () => {
  const big: FieldLine[] = [['x-big', 'v'.repeat(2000)]];
  assert.throws(() => decodeFieldSection(encodeFieldSection(big), { maxSectionSize: 1000, maxFields: 10 }), FieldSectionTooLarge);
  const many: FieldLine[] = Array.from({ length: 20 }, (_, i) => [`x-${i}`, 'v'] as FieldLine);
  assert.throws(() => decodeFieldSection(encodeFieldSection(many), { maxSectionSize: 1e6, maxFields: 10 }), FieldSectionTooLarge);
  assert.equal(decodeFieldSection(encodeFieldSection(many), { maxSectionSize: 1e6, maxFields: 20 }).length, 20);
});

/** A sink recording what a FrameReader hands on. */
function recorder(): FrameSink & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    frame: (type, payload) => events.push(`frame ${type} ${payload.toString('hex')}`),
    data: (chunk) => events.push(`data ${chunk.toString()}`),
    oversized: (type, length) => events.push(`oversized ${type} ${length}`),
  };
}

test('frames: parsed the same whatever the chunking; unknown and reserved types skipped', () => {
  const headers = encodeFieldSection([[':status', '200']]);
  const wire = Buffer.concat([
    encodeFrame(FRAME.HEADERS, headers),
    // A reserved (grease) type 0x21 + 0x1f * 3 and an unknown one, with payloads.
    encodeFrame(0x21 + 0x1f * 3, Buffer.from('grease')),
    encodeFrame(0x4242, Buffer.alloc(300, 1)),
    encodeFrame(FRAME.DATA, Buffer.from('hello')),
    encodeFrame(FRAME.DATA, Buffer.alloc(0)),
    encodeFrame(FRAME.DATA, Buffer.from(' world')),
  ]);
  const whole = recorder();
  new FrameReader(whole, 1024).push(wire);
  assert.deepEqual(whole.events, [`frame 1 ${headers.toString('hex')}`, 'data hello', 'data  world']);
  for (const size of [1, 2, 3, 7]) {
    const r = recorder();
    const reader = new FrameReader(r, 1024);
    for (let i = 0; i < wire.length; i += size) reader.push(wire.subarray(i, i + size));
    assert.equal(r.events.filter((e) => e.startsWith('frame')).join(), whole.events[0], `chunks of ${size}`);
    assert.equal(r.events.filter((e) => e.startsWith('data')).map((e) => e.slice(5)).join(''), 'hello world');
    assert.ok(reader.atBoundary);
  }
});

test('frames: HTTP/2-only types, oversized frames and bad SETTINGS are refused', () => {
  assert.throws(() => new FrameReader(recorder(), 1024).push(encodeFrame(0x02, Buffer.alloc(1))), (e: unknown) => e instanceof Http3Error && e.code === H3.FRAME_UNEXPECTED);
  const r = recorder();
  const reader = new FrameReader(r, 100);
  reader.push(encodeFrame(FRAME.HEADERS, Buffer.alloc(500)));
  assert.deepEqual(r.events, ['oversized 1 500']);
  assert.ok(reader.atBoundary, 'the oversized payload was skipped');
  assert.throws(() => new FrameReader(recorder(), 100).push(encodeFrame(FRAME.GOAWAY, Buffer.alloc(20))), (e: unknown) => e instanceof Http3Error && e.code === H3.FRAME_ERROR);
  const settings = encodeSettings(new Map([[0x01, 0], [0x06, 16384], [0x7, 0]]));
  const got: Map<number, number>[] = [];
  new FrameReader({ frame: (_t, p) => got.push(parseSettings(p)), data: () => {}, oversized: () => {} }, 100).push(settings);
  assert.deepEqual([...got[0]], [[1, 0], [6, 16384], [7, 0]]);
  assert.throws(() => parseSettings(Buffer.from('0101' + '0102', 'hex')), (e: unknown) => e instanceof Http3Error && e.code === H3.SETTINGS_ERROR);
  assert.throws(() => parseSettings(Buffer.from('0201', 'hex')), (e: unknown) => e instanceof Http3Error && e.code === H3.SETTINGS_ERROR);
});

test('request heads: what RFC 9114 §4.2/§4.3 makes malformed is refused, a good one kept whole', async () => {
  const { requestHead } = await import('../src/http3/fields.ts');
  const base: FieldLine[] = [[':method', 'GET'], [':scheme', 'https'], [':authority', 'a.test'], [':path', '/x']];
  const good = requestHead([...base, ['cookie', 'a=1'], ['cookie', 'b=2'], ['accept', 'text/html'], ['accept', 'text/plain']]);
  assert.ok(!('malformed' in good));
  assert.equal(good.headers.cookie, 'a=1; b=2');
  assert.equal(good.headers.accept, 'text/html, text/plain');
  assert.equal(good.headers[':path'], '/x');
  const bad: [string, FieldLine[]][] = [
    ['pseudo after regular', [[':method', 'GET'], ['accept', '*/*'], [':scheme', 'https'], [':path', '/']]],
    ['unknown pseudo', [...base, [':protocol', 'websocket']]],
    ['repeated pseudo', [...base, [':path', '/y']]],
    ['upper case', [...base, ['Accept', '*/*']]],
    ['connection-specific', [...base, ['connection', 'close']]],
    ['transfer-encoding', [...base, ['transfer-encoding', 'chunked']]],
    ['te other than trailers', [...base, ['te', 'gzip']]],
    ['no :path', base.filter(([n]) => n !== ':path')],
    ['no :method', base.filter(([n]) => n !== ':method')],
    ['content-length values differ', [...base, ['content-length', '1'], ['content-length', '2']]],
    ['bad content-length', [...base, ['content-length', '-1']]],
    ['CR in a value', [...base, ['x-a', 'a\rb']]],
  ];
  for (const [why, fields] of bad) assert.ok('malformed' in requestHead(fields), why);
});
