import { HuffmanError } from '../../http3/huffman.ts';
import { FORBIDDEN_IN_RECEIVED_VALUE } from '../http-fields.ts';
import { LiteralCache } from './literal-cache.ts';
import { writePrefixInt } from '../prefix-integer.ts';

// HPACK (RFC 7541) for both ends of HTTP/2 (the upstream client and the listener's engine): a
// decoder for what the peer sends (static and dynamic tables, Huffman strings) with a bound on the
// decoded header list, and an encoder that indexes the fields that repeat from message to message
// (a gRPC call's :path, :authority, content-type, te, user-agent; a response's content-type),
// so that a field seen before costs one or two bytes.

/** A header block that cannot be decoded: the connection's compression state is lost (COMPRESSION_ERROR). */
export class HpackError extends Error {}

export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

const STATIC_NAME_INDEX = new Map<string, number>();
for (let i = STATIC_TABLE.length - 1; i >= 0; i--) STATIC_NAME_INDEX.set(STATIC_TABLE[i][0], i + 1);

/** HPACK's per-entry overhead in the table size (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;

/** A field as the tables hold it; `flaw` (dynamic entries only) says what HTTP/2 forbids in it. */
type Entry = readonly [name: string, value: string, flaw?: number];
/** Flaws of a field (RFC 9113 §8.2.1), kept with a dynamic entry so that its later references need no check. */
const BAD_NAME = 1;
const BAD_VALUE = 2;

/**
 * BAD_NAME for a name HTTP/2 forbids: empty, or with characters in 0x00-0x20, 'A'-'Z' or
 * 0x7f-0xff, or a colon anywhere but first (where it starts a pseudo-header).
 */
function nameFlaw(name: string): number {
  const n = name.length;
  if (n === 0) return BAD_NAME;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || (c === 0x3a && i > 0)) return BAD_NAME;
  }
  return 0;
}

/**
 * Decodes header blocks into a flat [name, value, ...] list, keeping the dynamic table between
 * blocks. Its size is bounded by the SETTINGS_HEADER_TABLE_SIZE we advertised (the default 4096).
 */
export class HpackDecoder {
  /** Newest first; at most tableLimit / 32 entries. */
  private readonly entries: Entry[] = [];
  private size = 0;
  /** The size the target chose with a table size update, at most tableLimit. */
  private maxSize: number;
  /** Set by decode(): the last block's list was larger than maxListSize (its fields were dropped). */
  oversize = false;
  /**
   * Set by decode(): what the last block holds that HTTP/2 forbids in any field (RFC 9113 §8.2.1:
   * an uppercase or invalid name, NUL, CR or LF in a value), null when nothing. The block is
   * malformed; its fields are still returned. Only literals are checked: the static table is
   * known good and a dynamic entry carries the flaw it was added with.
   */
  invalid: string | null = null;
  /** The literals this connection sent lately (literal-cache.ts), made at the first literal. */
  private literals: LiteralCache | null = null;

  constructor(
    private readonly tableLimit: number,
    /** Bound on a decoded list (names, values and 32 bytes per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts). */
    private readonly maxListSize: number,
    /** A literal name or value longer than this is a COMPRESSION_ERROR (nghttp2's 64 KiB; the server engine's). */
    private readonly maxFieldSize = Infinity,
  ) {
    this.maxSize = tableLimit;
  }

  /**
   * The fields of the block in block[start, end). A list larger than maxListSize is still decoded to its end (the dynamic
   * table must follow every block) but its fields are not kept: the result is empty and
   * `oversize` is set, so only that stream fails.
   */
  decode(block: Buffer, start = 0, end = block.length): string[] {
    const out: string[] = [];
    let listSize = 0;
    let pos = start;
    blockEnd = end;
    let fieldsSeen = false;
    this.oversize = false;
    this.invalid = null;
    while (pos < end) {
      const b = block[pos];
      let name: string;
      let value: string;
      let flaw = 0;
      if (b & 0x80) {
        pos = readInt(block, pos, 7);
        const e = this.entry(intValue);
        name = e[0];
        value = e[1];
        flaw = e[2] ?? 0;
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update: only at the start of a block.
        if (fieldsSeen) throw new HpackError('a table size update after a field');
        pos = readInt(block, pos, 5);
        if (intValue > this.tableLimit) throw new HpackError(`a table size of ${intValue}, above the ${this.tableLimit} we allow`);
        this.maxSize = intValue;
        this.evict(0);
        continue;
      } else {
        // 01xxxxxx: with incremental indexing (6-bit index); 0000xxxx / 0001xxxx: without / never indexed (4-bit).
        const indexing = (b & 0xc0) === 0x40;
        pos = readInt(block, pos, indexing ? 6 : 4);
        stringTooLong = false;
        const literals = (this.literals ??= new LiteralCache());
        if (intValue === 0) {
          pos = readString(block, pos, this.maxListSize, this.maxFieldSize, literals);
          name = stringValue;
          flaw = nameFlaw(name);
        } else {
          const e = this.entry(intValue);
          name = e[0];
          flaw = (e[2] ?? 0) & BAD_NAME;
        }
        pos = readString(block, pos, this.maxListSize, this.maxFieldSize, literals);
        value = stringValue;
        if (FORBIDDEN_IN_RECEIVED_VALUE.test(value)) flaw |= BAD_VALUE;
        if (stringTooLong) {
          // Longer than the whole list may be: not decoded. As a table entry it would be larger
          // than the table, which empties the table (RFC 7541 §4.4) whatever its bytes are.
          this.oversize = true;
          out.length = 0;
          if (indexing) {
            this.entries.length = 0;
            this.size = 0;
          }
          fieldsSeen = true;
          continue;
        }
        if (indexing) this.add(name, value, flaw);
      }
      fieldsSeen = true;
      if (flaw !== 0 && this.invalid === null) this.invalid = flaw & BAD_NAME ? `the field name ${JSON.stringify(name)}` : `a CR, LF or NUL in the value of ${JSON.stringify(name)}, or white space at its ends`;
      if (this.oversize) continue;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > this.maxListSize) {
        this.oversize = true;
        out.length = 0;
        continue;
      }
      out.push(name, value);
    }
    return out;
  }

  private entry(index: number): Entry {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const e = this.entries[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`index ${index} outside the tables`);
    return e;
  }

  private add(name: string, value: string, flaw: number): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxSize) {
      // An entry larger than the table empties it (RFC 7541 §4.4).
      this.entries.length = 0;
      this.size = 0;
      return;
    }
    this.evict(size);
    this.entries.unshift(flaw === 0 ? [name, value] : [name, value, flaw]);
    this.size += size;
  }

  /** Drops the oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.entries.length > 0) {
      const [n, v] = this.entries.pop()!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
  }
}

// readInt and readString return the offset after what they read and leave the value here: no
// tuple allocated per field.
let intValue = 0;
let stringValue = '';
/** readString met a string longer than the list limit (left undecoded). */
let stringTooLong = false;
/** Where the block being decoded ends in its buffer: nothing is read past it. */
let blockEnd = 0;

function readInt(buf: Buffer, pos: number, prefix: number): number {
  const max = (1 << prefix) - 1;
  let value = buf[pos] & max;
  pos++;
  if (value === max) {
    let shift = 0;
    for (;;) {
      if (pos >= blockEnd) throw new HpackError('a truncated integer');
      const b = buf[pos++];
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
      if (shift > 28) throw new HpackError('an integer too large');
    }
  }
  intValue = value;
  return pos;
}

function readString(buf: Buffer, pos: number, max: number, hardMax: number, literals: LiteralCache): number {
  if (pos >= blockEnd) throw new HpackError('a truncated string');
  const huffman = (buf[pos] & 0x80) !== 0;
  const start = readInt(buf, pos, 7);
  const length = intValue;
  const end = start + length;
  if (end > blockEnd) throw new HpackError('a truncated string');
  if (length > hardMax) throw new HpackError(`a string of ${length} bytes, above the ${hardMax} a field may have`);
  if (length > max) {
    stringTooLong = true;
    stringValue = '';
    return end;
  }
  try {
    stringValue = literals.decode(buf, start, end, huffman, max);
  } catch (err) {
    if (err instanceof HuffmanError) throw new HpackError(err.message);
    throw err;
  }
  return end;
}


function writeString(out: Buffer, pos: number, s: string): number {
  pos = writePrefixInt(out, pos, 7, 0x00, s.length);
  return pos + out.write(s, pos, 'latin1');
}

/** Fields whose values differ on most requests: literals never indexed, they would only churn the table. */
const UNIQUE = new Set(['traceparent', 'tracestate', 'x-request-id', 'authorization', 'proxy-authorization', 'cookie', 'grpc-timeout', 'content-length']);

/** Fields never put in the target's table (RFC 7541 §7.1.3): credentials. */
const NEVER_INDEXED = new Set(['authorization', 'proxy-authorization', 'cookie']);

/**
 * Encodes request fields, keeping a mirror of the target's dynamic table: a field seen before is
 * an index, a new one a literal with incremental indexing (except UNIQUE ones and large ones).
 */
export class HpackEncoder {
  /** name -> value -> the insertion number of its newest copy in the table (no key string built per lookup). */
  private readonly index = new Map<string, Map<string, number>>();
  /** The table's entries, oldest first from `head`. */
  private readonly queue: { name: string; value: string; size: number; abs: number }[] = [];
  private head = 0;
  private inserted = 0;
  private size = 0;
  private maxSize = 4096;
  /** A table size update owed at the start of the next block (the target lowered its table). */
  private pendingSizeUpdate = -1;

  /** The target's SETTINGS_HEADER_TABLE_SIZE (we use at most 4096 of it). */
  setTableSize(size: number): void {
    const next = Math.min(size, 4096);
    if (next === this.maxSize) return;
    this.maxSize = next;
    this.pendingSizeUpdate = next;
    this.evict(0);
  }

  /** Bytes `write` may take for a field at most. */
  static bound(name: string, value: string): number {
    return 1 + 5 + name.length + 5 + value.length;
  }

  /** Bytes the start of a block may take (a table size update). */
  static readonly BLOCK_START_BOUND = 6;

  /** Called at the start of every block: writes a table size update when one is owed. */
  begin(out: Buffer, pos: number): number {
    if (this.pendingSizeUpdate < 0) return pos;
    pos = writePrefixInt(out, pos, 5, 0x20, this.pendingSizeUpdate);
    this.pendingSizeUpdate = -1;
    return pos;
  }

  /** An indexed field of the static table (e.g. `:method: POST` is 3). */
  static indexed(out: Buffer, pos: number, index: number): number {
    return writePrefixInt(out, pos, 7, 0x80, index);
  }

  write(out: Buffer, pos: number, name: string, value: string): number {
    if (UNIQUE.has(name)) return this.literal(out, pos, name, value, NEVER_INDEXED.has(name) ? 0x10 : 0x00);
    let values = this.index.get(name);
    const abs = values?.get(value);
    if (abs !== undefined) return writePrefixInt(out, pos, 7, 0x80, STATIC_TABLE.length + 1 + this.inserted - abs);
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxSize / 4) return this.literal(out, pos, name, value, 0x00);
    // Literal with incremental indexing (01), the name from the static table where it is there.
    const nameIndex = STATIC_NAME_INDEX.get(name);
    if (nameIndex !== undefined) pos = writePrefixInt(out, pos, 6, 0x40, nameIndex);
    else {
      out[pos++] = 0x40;
      pos = writeString(out, pos, name);
    }
    pos = writeString(out, pos, value);
    this.evict(size);
    this.inserted++;
    this.queue.push({ name, value, size, abs: this.inserted });
    // Eviction may have dropped this name's map: looked up again.
    values = this.index.get(name);
    if (values === undefined) this.index.set(name, (values = new Map()));
    values.set(value, this.inserted);
    this.size += size;
    return pos;
  }

  /** A literal not indexed (`flags` 0x00) or never indexed (0x10), the name from the static table where it is there. */
  private literal(out: Buffer, pos: number, name: string, value: string, flags: number): number {
    const index = STATIC_NAME_INDEX.get(name);
    if (index !== undefined) pos = writePrefixInt(out, pos, 4, flags, index);
    else {
      out[pos++] = flags;
      pos = writeString(out, pos, name);
    }
    return writeString(out, pos, value);
  }

  /** Drops the oldest entries until `room` more bytes fit, as the target's table does. */
  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.head < this.queue.length) {
      const old = this.queue[this.head++];
      this.size -= old.size;
      const values = this.index.get(old.name)!;
      if (values.get(old.value) === old.abs) {
        values.delete(old.value);
        if (values.size === 0) this.index.delete(old.name);
      }
    }
    if (this.head > 1024) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
