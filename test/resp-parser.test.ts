import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, RespParser } from '../src/handlers/resp/frame.ts';

// The resp handler's command parser over bytes cut anywhere: every command comes out whole and
// in order however the stream is split into reads, since a cut command is kept across reads
// with its arguments as offsets (not copies) into a buffer that moves.

const LIMITS = { maxBulkSize: 1024 * 1024, maxArgs: 10_000, maxInlineSize: 64 * 1024 };

function multibulk(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A deterministic byte pattern of n bytes (so a shifted offset shows as wrong bytes). */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

const commands: (string | Buffer)[][] = [
  ['SET', 'key:000000000001', pattern(100, 1)],
  ['GET', 'key:000000000001'],
  ['MSET', ...Array.from({ length: 200 }, (_, i) => (i % 2 ? pattern(7 + i, i) : `k${i}`))],
  ['SET', 'big', pattern(200_000, 3)],
  ['PING'],
  ['ECHO', Buffer.alloc(0)],
  ['HSET', 'h', 'f', pattern(40, 9)],
];
const inline = Buffer.from('SET "quoted key" \'a b\'\r\n');
const inlineArgs = ['SET', 'quoted key', 'a b'];
const stream = Buffer.concat([...commands.slice(0, 3).map(multibulk), inline, ...commands.slice(3).map(multibulk)]);
const expected = [...commands.slice(0, 3), inlineArgs, ...commands.slice(3)].map((c) => c.map((a) => (typeof a === 'string' ? Buffer.from(a, 'latin1') : a)));

/** Feeds `stream` in reads of the given sizes (cycled) and returns every command's arguments, copied. */
function feed(sizes: number[]): Buffer[][] {
  const p = new RespParser(LIMITS);
  const got: Buffer[][] = [];
  let at = 0;
  for (let k = 0; at < stream.length && k < 10_000_000; k++) {
    const n = Math.min(sizes[k % sizes.length], stream.length - at);
    // A copy per read, as a socket hands out a fresh buffer each time.
    p.append(Buffer.from(stream.subarray(at, at + n)));
    at += n;
    p.parse((args) => {
      got.push(args.array().map((b) => Buffer.from(b)));
      return true;
    });
  }
  assert.equal(p.buffered, 0);
  return got;
}

test('every command comes out whole however the stream is cut into reads', () => {
  const cuts: number[][] = [[1], [2], [3], [7], [13], [64], [1000], [4096], [65536], [stream.length], [1, 5000, 2, 17, 100_000, 3]];
  for (const sizes of cuts) {
    const got = feed(sizes);
    assert.equal(got.length, expected.length, `reads of ${sizes.join(',')}`);
    for (let i = 0; i < expected.length; i++) {
      assert.equal(got[i].length, expected[i].length, `command ${i}, reads of ${sizes.join(',')}`);
      for (let j = 0; j < expected[i].length; j++) {
        assert.ok(got[i][j].equals(expected[i][j]), `command ${i} argument ${j}, reads of ${sizes.join(',')}`);
      }
    }
  }
});

test('a command the callback stops before is parsed again by the next call', () => {
  const p = new RespParser(LIMITS);
  p.append(Buffer.concat([multibulk(['GET', 'a']), multibulk(['GET', 'b'])]));
  const seen: string[] = [];
  p.parse((args) => {
    seen.push(args.latin1(1));
    return false;
  });
  assert.deepEqual(seen, ['a']);
  p.parse((args) => {
    seen.push(args.latin1(1));
    return true;
  });
  assert.deepEqual(seen, ['a', 'b']);
});

test('a bulk longer than maxBulkSize is refused from its header alone', () => {
  const p = new RespParser(LIMITS);
  p.append(Buffer.from('*2\r\n$3\r\nSET\r\n$999999999999\r\n'));
  assert.throws(() => p.parse(() => true), ProtocolError);
});
