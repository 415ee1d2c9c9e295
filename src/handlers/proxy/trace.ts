import { randomFillSync } from 'node:crypto';

// W3C Trace Context (https://www.w3.org/TR/trace-context/). The proxy records no spans of its
// own, so a valid incoming `traceparent` goes upstream unchanged (with its `tracestate`); a
// missing or malformed one is replaced by a new trace, sampled (flags 01) so that the first
// service that records spans sees the whole request. Ids come from a block of random bytes
// refilled 2730 requests at a time and turned into hex once per block: one randomFillSync and one
// hex encoding per block instead of per request (a randomFillSync costs about 6 µs whatever its
// size up to a few KiB; a hexSlice about 0.15 µs even for 8 bytes, so the two per request the
// ids took before cost ~0.3 µs, against ~0.08 µs for two substrings of the block's hex, measured
// on Node 20 and 24). A header holds its substrings' block (131 KB) until it is gone: a few blocks
// at most.

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

interface HexBuffer extends Buffer {
  /** Node's own encoder behind toString('hex'), without its argument checks and range slicing. */
  hexSlice(start: number, end: number): string;
}

/** Random bytes per block: 24 per traceparent (16 trace id, 8 parent id). */
const BLOCK = 24 * 2730;
const pool = Buffer.allocUnsafe(BLOCK) as HexBuffer;
/** The current block in hex, and the next unused position in it (48 hex digits per traceparent). */
let hex = '';
let at = 2 * BLOCK;

/** A new traceparent: random trace id and parent id, sampled. */
export function newTraceparent(): string {
  if (at === 2 * BLOCK) {
    randomFillSync(pool);
    hex = pool.hexSlice(0, BLOCK);
    at = 0;
  }
  const trace = hex.slice(at, at + 32);
  const span = hex.slice(at + 32, at + 48);
  at += 48;
  // An all-zero id is invalid; with 128 random bits it does not happen, but it costs nothing to rule out.
  if (trace === ZERO_TRACE || span === ZERO_SPAN) return newTraceparent();
  return `00-${trace}-${span}-01`;
}
