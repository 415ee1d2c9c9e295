import { CONTINUATION, FRAME_HEADER_SIZE, FLAG_END_HEADERS, FLAG_END_STREAM, HEADERS } from '../../../protocol/h2/frames.ts';
import { HpackEncoder } from '../../../protocol/h2/hpack.ts';
import { checkSentValueChars, codedError, CONNECTION_SPECIFIC, httpDate } from '../../../protocol/http-fields.ts';
import type { H2ServerSession } from './session.ts';

// Response header blocks: HPACK-encoded straight into the session's output slab, split into
// HEADERS and CONTINUATION frames only when larger than the client's SETTINGS_MAX_FRAME_SIZE.

/** A header list to send: a record (node's shape: a value may be a number or a list), or a flat [name, value, ...] list. */
export type OutgoingFields = Readonly<Record<string, FieldValue>> | readonly FieldValue[];

type FieldValue = string | number | readonly string[] | undefined;

/** Static-table indexes of the common statuses (RFC 7541 Appendix A). */
const STATUS_INDEX: Readonly<Record<number, number>> = { 200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14 };

// The fields of the block being encoded, flattened (reused: no list per response). Its first
// flatCount entries are the block's: `flat.length = 0` would give V8's backing store back, and
// every response would grow a new one.
const flat: string[] = [];
let flatCount = 0;
let sawDate = false;
/** Entries kept in `flat` between blocks; a larger head's are let go (they hold its strings). */
const FLAT_KEEP = 64;

function flatten(fields: OutgoingFields): void {
  flatCount = 0;
  sawDate = false;
  if (Array.isArray(fields)) {
    const list = fields as readonly FieldValue[];
    for (let i = 0; i + 1 < list.length; i += 2) add(String(list[i]), list[i + 1]);
    return;
  }
  const record = fields as Readonly<Record<string, FieldValue>>;
  const status = record[':status'];
  if (status !== undefined) {
    flat[flatCount++] = ':status';
    flat[flatCount++] = String(status);
  }
  for (const key in record) if (key !== ':status') add(key, record[key]);
}

function add(name: string, v: FieldValue): void {
  if (v === undefined || v === null) return;
  if (typeof v === 'object') for (const one of v) push(name, String(one));
  else push(name, typeof v === 'string' ? v : String(v));
}

function push(rawName: string, value: string): void {
  const name = rawName.charCodeAt(0) === 0x3a ? rawName : rawName.toLowerCase();
  if (name === 'date') sawDate = true;
  checkSentValueChars(name, value);
  if (CONNECTION_SPECIFIC.has(name) || (name === 'te' && value !== 'trailers')) {
    throw codedError('ERR_HTTP2_INVALID_CONNECTION_HEADERS', `HTTP/1 Connection specific headers are forbidden: "${name}"`, TypeError);
  }
  flat[flatCount++] = name;
  flat[flatCount++] = value;
}

/** The status of a head about to be sent (0 when it has none). */
export function statusOf(fields: OutgoingFields): number {
  if (Array.isArray(fields)) {
    const list = fields as readonly FieldValue[];
    for (let i = 0; i + 1 < list.length; i += 2) if (list[i] === ':status') return Number(list[i + 1]);
    return 0;
  }
  const status = (fields as Readonly<Record<string, FieldValue>>)[':status'];
  return status === undefined ? 0 : Number(status);
}

/** Encodes a head (`sendDate`: with a Date field unless it has one) as HEADERS and CONTINUATION frames. */
export function encodeFields(session: H2ServerSession, id: number, fields: OutgoingFields, endStream: boolean, sendDate = false): void {
  flatten(fields);
  if (sendDate && !sawDate) {
    flat[flatCount++] = 'date';
    flat[flatCount++] = httpDate();
  }
  const count = flatCount;
  if (flat.length > FLAT_KEEP && count < flat.length) flat.length = Math.max(count, FLAT_KEEP);
  let bound = HpackEncoder.BLOCK_START_BOUND;
  for (let i = 0; i < count; i += 2) bound += HpackEncoder.bound(flat[i], flat[i + 1]);
  const out = session.out;
  const encoder = session.encoder;
  const slab = out.reserve(FRAME_HEADER_SIZE + bound);
  const headerAt = out.pos;
  const blockStart = headerAt + FRAME_HEADER_SIZE;
  let p = encoder.begin(slab, blockStart);
  for (let i = 0; i < count; i += 2) {
    const name = flat[i];
    const value = flat[i + 1];
    if (name === ':status') {
      const index = STATUS_INDEX[value as unknown as number];
      if (index !== undefined) {
        p = HpackEncoder.indexed(slab, p, index);
        continue;
      }
    }
    p = encoder.write(slab, p, name, value);
  }
  const length = p - blockStart;
  const flags = endStream ? FLAG_END_STREAM : 0;
  const maxFrame = session.peerMaxFrameSize;
  if (length <= maxFrame) {
    out.header(length, HEADERS, flags | FLAG_END_HEADERS, id);
    out.pos = p;
    return;
  }
  // Larger than one frame: the block is taken out of the slab and sent in pieces.
  const block = Buffer.from(slab.subarray(blockStart, p));
  out.pos = headerAt;
  let at = 0;
  let type = HEADERS;
  let frameFlags = flags;
  while (at < block.length) {
    const n = Math.min(maxFrame, block.length - at);
    const last = at + n === block.length;
    out.frame(type, frameFlags | (last ? FLAG_END_HEADERS : 0), id, block, at, at + n);
    at += n;
    type = CONTINUATION;
    frameFlags = 0;
  }
}
