import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import {
  Base64Error,
  Base64StreamDecoder,
  decodeGrpcMessage,
  decodeGrpcWebTrailers,
  encodeBase64Chunk,
  encodeGrpcFrame,
  encodeGrpcMessage,
  encodeGrpcWebTrailers,
  formatGrpcContentType,
  formatGrpcTimeout,
  GrpcError,
  GrpcFrameDecoder,
  GrpcFrameError,
  GrpcStatus,
  grpcFrameHeader,
  grpcStatusFromHttp,
  grpcStatusFromName,
  grpcStatusName,
  GrpcTimeoutError,
  grpcTrailersOnlyHeaders,
  GrpcWebResponseDecoder,
  grpcWebTextDecoder,
  grpcWebTextEncoder,
  parseGrpcContentType,
  parseGrpcStatus,
  parseGrpcTimeout,
  replyGrpcStatus,
} from '../src/protocol/grpc/index.ts';

// The gRPC and gRPC-Web codec (src/protocol/grpc) on its own: framing, timeouts, statuses,
// status text, content types, base64 text mode and the trailers frame.

test('status codes: names both ways, unknown codes shown as such, grpc-status parsed', () => {
  assert.equal(GrpcStatus.OK, 0);
  assert.equal(GrpcStatus.UNAUTHENTICATED, 16);
  assert.equal(grpcStatusName(5), 'NOT_FOUND');
  assert.equal(grpcStatusName(GrpcStatus.DEADLINE_EXCEEDED), 'DEADLINE_EXCEEDED');
  assert.equal(grpcStatusName(42), 'UNKNOWN(42)');
  assert.equal(grpcStatusFromName('resource_exhausted'), GrpcStatus.RESOURCE_EXHAUSTED);
  assert.equal(grpcStatusFromName('toString'), undefined);
  assert.equal(parseGrpcStatus('12'), 12);
  assert.equal(parseGrpcStatus(' 0 '), 0);
  assert.equal(parseGrpcStatus('x'), undefined);
  assert.equal(parseGrpcStatus(undefined), undefined);
  const e = new GrpcError(GrpcStatus.NOT_FOUND, 'no such thing');
  assert.equal(e.message, 'NOT_FOUND: no such thing');
  assert.equal(e.statusName, 'NOT_FOUND');
});

test('HTTP status -> gRPC status, as http-grpc-status-mapping.md has it', () => {
  const table: [number, number][] = [
    [400, GrpcStatus.INTERNAL],
    [401, GrpcStatus.UNAUTHENTICATED],
    [403, GrpcStatus.PERMISSION_DENIED],
    [404, GrpcStatus.UNIMPLEMENTED],
    [429, GrpcStatus.UNAVAILABLE],
    [502, GrpcStatus.UNAVAILABLE],
    [503, GrpcStatus.UNAVAILABLE],
    [504, GrpcStatus.UNAVAILABLE],
    [500, GrpcStatus.UNKNOWN],
    [200, GrpcStatus.UNKNOWN],
    [418, GrpcStatus.UNKNOWN],
  ];
  for (const [http, grpc] of table) assert.equal(grpcStatusFromHttp(http), grpc, `HTTP ${http}`);
});

test('grpc-message: percent-encoded outside printable ASCII and for %, decoded leniently', () => {
  assert.equal(encodeGrpcMessage('plain text'), 'plain text');
  assert.equal(encodeGrpcMessage('100% done'), '100%25 done');
  assert.equal(encodeGrpcMessage('line\nbreak'), 'line%0Abreak');
  assert.equal(encodeGrpcMessage('café ☕'), 'caf%C3%A9 %E2%98%95');
  for (const s of ['café ☕', '100%', '\t\r\n', '']) assert.equal(decodeGrpcMessage(encodeGrpcMessage(s)), s);
  // A bad escape is kept as written, never an error.
  assert.equal(decodeGrpcMessage('50%zz off %4'), '50%zz off %4');
  assert.equal(decodeGrpcMessage('%C3%A9%'), 'é%');
  assert.equal(decodeGrpcMessage(undefined), '');
});

test('grpc-timeout: every unit parses; malformed values are errors; format rounds up and fits 8 digits', () => {
  assert.equal(parseGrpcTimeout('1H'), 3_600_000);
  assert.equal(parseGrpcTimeout('2M'), 120_000);
  assert.equal(parseGrpcTimeout('3S'), 3000);
  assert.equal(parseGrpcTimeout('250m'), 250);
  assert.equal(parseGrpcTimeout('1500u'), 1.5);
  assert.equal(parseGrpcTimeout('2000000n'), 2);
  assert.equal(parseGrpcTimeout('99999999S'), 99_999_999_000);
  for (const bad of ['', '10', 'S', '1s', '1h', '-1S', '1.5S', '123456789m', '1 S', '1SS', '0x10m']) {
    assert.throws(() => parseGrpcTimeout(bad), GrpcTimeoutError, bad);
  }
  assert.equal(formatGrpcTimeout(250), '250m');
  assert.equal(formatGrpcTimeout(0), '0m');
  assert.equal(formatGrpcTimeout(0.5), '500u');
  assert.equal(formatGrpcTimeout(0.0000015), '2n');
  assert.equal(formatGrpcTimeout(1.25), '1250u');
  assert.equal(formatGrpcTimeout(86_400_000), '24H');
  assert.equal(formatGrpcTimeout(1000), '1S');
  assert.equal(formatGrpcTimeout(1001), '1001m');
  assert.equal(formatGrpcTimeout(0.1), '100u');
  assert.equal(formatGrpcTimeout(200_000_000), '200000S');
  assert.equal(formatGrpcTimeout(123_456_789_123), '2057614M');
  assert.equal(formatGrpcTimeout(99_999_999 * 3_600_000), '99999999H');
  for (const ms of [0.5, 1, 999, 1000, 123_456_789, 7 * 86_400_000]) assert.ok(parseGrpcTimeout(formatGrpcTimeout(ms)) >= ms, String(ms));
  assert.throws(() => formatGrpcTimeout(-1), RangeError);
  assert.throws(() => formatGrpcTimeout(Number.POSITIVE_INFINITY), RangeError);
});

test('framing: header layout; one chunk of many frames; frames split at every byte', () => {
  assert.deepEqual([...grpcFrameHeader(258, 1)], [1, 0, 0, 1, 2]);
  const a = Buffer.from('hello');
  const b = Buffer.alloc(0);
  const c = Buffer.alloc(70_000, 7);
  const wire = Buffer.concat([encodeGrpcFrame(a), encodeGrpcFrame(b), encodeGrpcFrame(c, 1)]);
  const whole = new GrpcFrameDecoder({ maxMessageSize: 100_000 }).push(wire);
  assert.equal(whole.length, 3);
  assert.deepEqual(whole[0].payload, a);
  assert.equal(whole[1].payload.length, 0);
  assert.equal(whole[2].compressed, true);
  assert.deepEqual(whole[2].payload, c);

  const d = new GrpcFrameDecoder({ maxMessageSize: 100_000 });
  const got: Buffer[] = [];
  for (let i = 0; i < wire.length; i++) {
    for (const f of d.push(wire.subarray(i, i + 1))) got.push(f.payload);
    if (i === 2) assert.equal(d.buffered, 3);
  }
  d.end();
  assert.deepEqual(got, [a, b, c]);
});

test('framing: a held partial frame is copied, so a reused chunk buffer does not corrupt it', () => {
  const d = new GrpcFrameDecoder({ maxMessageSize: 100 });
  const wire = encodeGrpcFrame(Buffer.from('abcdef'));
  const scratch = Buffer.alloc(8);
  wire.copy(scratch, 0, 0, 8);
  assert.deepEqual(d.push(scratch.subarray(0, 8)), []);
  scratch.fill(0x7a);
  wire.copy(scratch, 0, 8);
  const [f] = d.push(scratch.subarray(0, wire.length - 8));
  assert.equal(f.payload.toString(), 'abcdef');
});

test('framing: a length over the limit is RESOURCE_EXHAUSTED at its header, before any payload; earlier frames kept', () => {
  const d = new GrpcFrameDecoder({ maxMessageSize: 16 });
  const good = encodeGrpcFrame(Buffer.from('ok'));
  // Only the header of a 4 GiB message: refused at once, nothing buffered for it.
  const err = (() => {
    try {
      d.push(Buffer.concat([good, grpcFrameHeader(0xffff_ffff)]));
    } catch (e) {
      return e as GrpcFrameError;
    }
    return undefined;
  })();
  assert.ok(err instanceof GrpcFrameError);
  assert.equal(err.code, 'SWITCHYARD_GRPC_MESSAGE_TOO_LARGE');
  assert.equal(err.status, GrpcStatus.RESOURCE_EXHAUSTED);
  assert.equal(err.frames.length, 1);
  assert.equal(err.frames[0].payload.toString(), 'ok');
  // Spent: the same error again.
  assert.throws(() => d.push(Buffer.from([0])), (e: unknown) => e === err);
  // Exactly at the limit is fine.
  const at = new GrpcFrameDecoder({ maxMessageSize: 16 });
  assert.equal(at.push(encodeGrpcFrame(Buffer.alloc(16)))[0].payload.length, 16);
});

test('framing: bad flags and a truncated stream are INTERNAL errors; trailer frames only when allowed', () => {
  assert.throws(() => new GrpcFrameDecoder({ maxMessageSize: 10 }).push(Buffer.from([2, 0, 0, 0, 0])), (e: GrpcFrameError) => e.code === 'SWITCHYARD_GRPC_BAD_FLAGS' && e.status === GrpcStatus.INTERNAL);
  assert.throws(() => new GrpcFrameDecoder({ maxMessageSize: 10 }).push(Buffer.from([0x80, 0, 0, 0, 0])), (e: GrpcFrameError) => e.code === 'SWITCHYARD_GRPC_BAD_FLAGS');
  const web = new GrpcFrameDecoder({ maxMessageSize: 10, allowTrailers: true }).push(Buffer.from([0x80, 0, 0, 0, 0]));
  assert.equal(web[0].trailers, true);
  const t = new GrpcFrameDecoder({ maxMessageSize: 10 });
  t.push(Buffer.from([0, 0, 0, 0, 5, 1, 2]));
  assert.throws(() => t.end(), (e: GrpcFrameError) => e.code === 'SWITCHYARD_GRPC_TRUNCATED' && /2 of 5 message bytes/.test(e.message));
  const h = new GrpcFrameDecoder({ maxMessageSize: 10 });
  h.push(Buffer.from([0, 0]));
  assert.throws(() => h.end(), /2 of 5 header bytes/);
  const ok = new GrpcFrameDecoder({ maxMessageSize: 10 });
  ok.push(encodeGrpcFrame(Buffer.from('x')));
  ok.end();
});

test('content types: the three families and their formats; look-alikes are not gRPC', () => {
  assert.deepEqual(parseGrpcContentType('application/grpc'), { protocol: 'grpc', format: 'proto' });
  assert.deepEqual(parseGrpcContentType('application/grpc+proto'), { protocol: 'grpc', format: 'proto' });
  assert.deepEqual(parseGrpcContentType('Application/GRPC-Web+JSON; charset=utf-8'), { protocol: 'grpc-web', format: 'json' });
  assert.deepEqual(parseGrpcContentType('application/grpc-web-text'), { protocol: 'grpc-web-text', format: 'proto' });
  assert.deepEqual(parseGrpcContentType(['application/grpc-web-text+proto']), { protocol: 'grpc-web-text', format: 'proto' });
  for (const no of [undefined, '', 'application/json', 'application/grpcx', 'application/grpc-webby', 'text/grpc']) assert.equal(parseGrpcContentType(no), undefined, String(no));
  assert.equal(formatGrpcContentType({ protocol: 'grpc-web-text', format: 'proto' }), 'application/grpc-web-text+proto');
});

test('base64 text mode: chunks split anywhere, padding in the middle of the stream, whitespace ignored', () => {
  const frames = [encodeGrpcFrame(Buffer.from('a')), encodeGrpcFrame(Buffer.from('bc')), encodeGrpcWebTrailers({ 'grpc-status': 0 })];
  // Each frame encoded on its own, as a server streaming them does: padding mid-stream.
  const text = frames.map((f) => encodeBase64Chunk(f).toString()).join('');
  assert.match(text, /=[A-Za-z0-9+/]/);
  const expected = Buffer.concat(frames);
  for (let size = 1; size <= 9; size++) {
    const d = new Base64StreamDecoder();
    const parts: Buffer[] = [];
    for (let i = 0; i < text.length; i += size) parts.push(d.push(Buffer.from(text.slice(i, i + size))));
    parts.push(d.end());
    assert.deepEqual(Buffer.concat(parts), expected, `chunks of ${size}`);
  }
  const ws = new Base64StreamDecoder();
  assert.equal(Buffer.concat([ws.push('QU\r\nJD'), ws.push(' RA'), ws.end()]).toString(), 'ABCD');
  // Unpadded last group is accepted at the end; a lone character or junk is not.
  const unpadded = new Base64StreamDecoder();
  assert.equal(Buffer.concat([unpadded.push('QUI'), unpadded.end()]).toString(), 'AB');
  const lone = new Base64StreamDecoder();
  lone.push('QUJDR');
  assert.throws(() => lone.end(), Base64Error);
  assert.throws(() => new Base64StreamDecoder().push('QU*D'), Base64Error);
  assert.throws(() => new Base64StreamDecoder().push('Q===QUJD'), Base64Error);
  assert.throws(() => new Base64StreamDecoder().push('QQ=AQUJD'), Base64Error);
});

test('gRPC-Web trailers frame: flag 0x80, an HTTP/1 header block; decoded back; injection refused', () => {
  const frame = encodeGrpcWebTrailers({ 'grpc-status': 0, 'Grpc-Message': 'all%20good', 'x-multi': ['a', 'b'], skipped: undefined });
  assert.equal(frame[0], 0x80);
  assert.equal(frame.readUInt32BE(1), frame.length - 5);
  assert.equal(frame.subarray(5).toString(), 'grpc-status: 0\r\ngrpc-message: all%20good\r\nx-multi: a\r\nx-multi: b\r\n');
  assert.deepEqual(decodeGrpcWebTrailers(frame.subarray(5)), { 'grpc-status': '0', 'grpc-message': 'all%20good', 'x-multi': 'a, b' });
  assert.deepEqual(decodeGrpcWebTrailers(Buffer.from('Grpc-Status:5\ngrpc-message: gone\nnonsense\n')), { 'grpc-status': '5', 'grpc-message': 'gone' });
  assert.throws(() => encodeGrpcWebTrailers({ 'grpc-message': 'x\r\ngrpc-status: 0' }), TypeError);
  assert.throws(() => encodeGrpcWebTrailers({ 'bad name': '1' }), TypeError);
});

test('gRPC-Web response decoder: binary and text bodies give the messages and the trailers; data after them is an error', () => {
  const body = Buffer.concat([encodeGrpcFrame(Buffer.from('one')), encodeGrpcFrame(Buffer.from('two')), encodeGrpcWebTrailers({ 'grpc-status': 0 })]);
  for (const text of [false, true]) {
    const d = new GrpcWebResponseDecoder({ text });
    const wire = text ? Buffer.from(body.toString('base64')) : body;
    const messages: string[] = [];
    let trailers: Record<string, string> | undefined;
    for (let i = 0; i < wire.length; i += 3) {
      const parts = d.push(wire.subarray(i, i + 3));
      messages.push(...parts.messages.map((m) => m.payload.toString()));
      trailers ??= parts.trailers;
    }
    d.end();
    assert.deepEqual(messages, ['one', 'two']);
    assert.deepEqual(trailers, { 'grpc-status': '0' });
    assert.equal(d.done, true);
    assert.throws(() => d.push(text ? Buffer.from(encodeGrpcFrame(Buffer.from('x')).toString('base64')) : encodeGrpcFrame(Buffer.from('x'))), (e: GrpcFrameError) => e.code === 'SWITCHYARD_GRPC_AFTER_TRAILERS');
  }
  const big = new GrpcWebResponseDecoder({ text: false, maxMessageSize: 4 });
  assert.throws(() => big.push(encodeGrpcFrame(Buffer.alloc(5))), (e: GrpcFrameError) => e.status === GrpcStatus.RESOURCE_EXHAUSTED);
});

test('gRPC-Web text Transforms: encode per chunk, decode back across any split', async () => {
  const frames = [encodeGrpcFrame(Buffer.from('hello')), encodeGrpcFrame(Buffer.alloc(1000, 1)), encodeGrpcWebTrailers({ 'grpc-status': 0 })];
  const encoded = await buffer(Readable.from(frames).pipe(grpcWebTextEncoder()));
  assert.match(encoded.toString(), /^[A-Za-z0-9+/=]+$/);
  const pieces: Buffer[] = [];
  for (let i = 0; i < encoded.length; i += 7) pieces.push(encoded.subarray(i, i + 7));
  const decoded = await buffer(Readable.from(pieces).pipe(grpcWebTextDecoder()));
  assert.deepEqual(decoded, Buffer.concat(frames));
  await assert.rejects(buffer(Readable.from([Buffer.from('QU!D')]).pipe(grpcWebTextDecoder())), Base64Error);
});

test('trailers-only reply and status trailers through a response-shaped object', () => {
  const calls: unknown[][] = [];
  const fake = (headersSent: boolean) => ({
    headersSent,
    writeHead: (...a: unknown[]) => calls.push(['writeHead', ...a]),
    addTrailers: (t: unknown) => calls.push(['addTrailers', t]),
    end: () => calls.push(['end']),
  });
  replyGrpcStatus(fake(false), GrpcStatus.UNIMPLEMENTED, 'no method "x"', { contentType: 'application/grpc+proto' });
  assert.deepEqual(calls.splice(0), [['writeHead', 200, { 'content-type': 'application/grpc+proto', 'grpc-status': '12', 'grpc-message': 'no method "x"', 'content-length': 0 }], ['end']]);
  // With an HTTP/2 stream: one respond() that ends the stream, headers set before kept.
  replyGrpcStatus(
    { ...fake(false), getHeaders: () => ({ 'x-request-id': 'r1' }), stream: { respond: (h: unknown, o: unknown) => calls.push(['respond', h, o]) } },
    GrpcStatus.NOT_FOUND,
  );
  assert.deepEqual(calls.splice(0), [['respond', { 'x-request-id': 'r1', 'content-type': 'application/grpc', 'grpc-status': '5', ':status': 200 }, { endStream: true }]]);
  replyGrpcStatus(fake(true), GrpcStatus.OK);
  assert.deepEqual(calls.splice(0), [['addTrailers', { 'grpc-status': '0' }], ['end']]);
  assert.deepEqual(grpcTrailersOnlyHeaders(GrpcStatus.INTERNAL, 'bad\n'), { 'content-type': 'application/grpc', 'grpc-status': '13', 'grpc-message': 'bad%0A' });
});
