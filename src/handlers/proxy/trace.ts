import { randomFillSync } from 'node:crypto';

// W3C Trace Context (https://www.w3.org/TR/trace-context/). The proxy records no spans of its
// own, so a valid incoming `traceparent` goes upstream unchanged (with its `tracestate`); a
// missing or malformed one is replaced by a new trace, sampled (flags 01) so that the first
// service that records spans sees the whole request. New traceparents are made 128 at a time:
// one randomFillSync for the block's ids (about 6 µs whatever its size up to a few KiB) and one
// string of the block's traceparents written out back to back, of which each request takes a
// slice: one small object pointing into the block's string, and flat. The per-request template of
// two hex substrings it replaces made a chain of string pieces that was copied again when the
// header was encoded. Blocks stay small (7 KB): making a string of 150 KB from a Buffer took over
// a millisecond on Node 24. A header holds its block's string until it is gone.

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/** True for a traceparent we may pass on (version 00 exactly; later versions by their prefix). */
export function validTraceparent(v: string): boolean {
  if (v.length < 55) return false;
  const m = TRACEPARENT.exec(v);
  if (!m) return false;
  const version = m[1];
  if (version === 'ff') return false;
  if (version === '00' && (v.length !== 55 || m[5] !== undefined)) return false;
  return m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN;
}

/** Traceparents per block (above); each takes 24 random bytes (16 trace id, 8 parent id). */
const PER_BLOCK = 128;
/** `00-` + 32 hex digits + `-` + 16 hex digits + `-01`. */
const LENGTH = 55;
const pool = Buffer.allocUnsafe(24 * PER_BLOCK);
const text = Buffer.allocUnsafe(LENGTH * PER_BLOCK);
/** Two ASCII hex digits per byte value. */
const HEX = Buffer.from(Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0')).join(''), 'latin1');
/** The current block's traceparents, back to back, and where the next unused one starts. */
let block = '';
let at = LENGTH * PER_BLOCK;

/** Whether pool[from, from + n) is all zero bytes (an invalid id). */
function zero(from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) if (pool[i] !== 0) return false;
  return true;
}

function writeHex(from: number, n: number, to: number): number {
  for (let i = from; i < from + n; i++) {
    const h = pool[i] * 2;
    text[to++] = HEX[h];
    text[to++] = HEX[h + 1];
  }
  return to;
}

function refill(): void {
  randomFillSync(pool);
  let to = 0;
  for (let i = 0; i < PER_BLOCK; i++) {
    const id = i * 24;
    // An all-zero id is invalid; with 128 or 64 random bits it does not happen, but it costs nothing to rule out.
    while (zero(id, 16)) randomFillSync(pool, id, 16);
    while (zero(id + 16, 8)) randomFillSync(pool, id + 16, 8);
    text[to++] = 0x30; // 0
    text[to++] = 0x30; // 0
    text[to++] = 0x2d; // -
    to = writeHex(id, 16, to);
    text[to++] = 0x2d; // -
    to = writeHex(id + 16, 8, to);
    text[to++] = 0x2d; // -
    text[to++] = 0x30; // 0
    text[to++] = 0x31; // 1
  }
  block = text.toString('latin1');
  at = 0;
}

/** A new traceparent: random trace id and parent id, sampled. */
export function newTraceparent(): string {
  if (at === LENGTH * PER_BLOCK) refill();
  const tp = block.slice(at, at + LENGTH);
  at += LENGTH;
  return tp;
}
