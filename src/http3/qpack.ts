import { H3, Http3Error } from './errors.ts';
import { writePrefixInt } from '../protocol/prefix-integer.ts';
import { HuffmanError, huffmanDecode, huffmanEncode, huffmanLength } from './huffman.ts';
import { STATIC_EXACT, STATIC_NAME, STATIC_TABLE } from './qpack-static.ts';

// QPACK field sections (RFC 9204) with the static table only. This side advertises
// SETTINGS_QPACK_MAX_TABLE_CAPACITY 0 and SETTINGS_QPACK_BLOCKED_STREAMS 0, so a peer may not
// insert anything into a dynamic table, and a field section that references one (a Required
// Insert Count other than 0, a dynamic index, a post-base form) is a connection error,
// QPACK_DECOMPRESSION_FAILED (§2.2.3). Our encoder never uses one either (allowed by §2.1.1:
// an encoder need not), so the encoder and decoder streams carry nothing from us but their
// type byte.
//
// Strings are bytes on the wire; they are read and written as latin1, as node:http reads field
// values, so that any octet round-trips.

/** One field line: lower-case name and value. */
export type FieldLine = readonly [name: string, value: string];

/** Limits on a decoded field section. */
export interface FieldSectionLimits {
  /** Largest section, counted as RFC 9114 §4.2.2 does: name and value octets plus 32 per field. */
  readonly maxSectionSize: number;
  /** Most field lines. */
  readonly maxFields: number;
}

/** A section over the limits: not a protocol error; the request is answered 431 (RFC 9114 §4.2.2). */
export class FieldSectionTooLarge extends Error {}

function failed(message: string): Http3Error {
  return new Http3Error(H3.QPACK_DECOMPRESSION_FAILED, message);
}

/** A reader over one field section's bytes. */
class Cursor {
  at = 0;
  constructor(readonly buf: Uint8Array) {}

  /** An N-bit prefix integer (RFC 7541 §5.1) whose first byte is at `at`. */
  int(prefixBits: number): number {
    const buf = this.buf;
    if (this.at >= buf.length) throw failed('field section ends inside an integer');
    const max = (1 << prefixBits) - 1;
    let value = buf[this.at++] & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.at >= buf.length) throw failed('field section ends inside an integer');
      const b = buf[this.at++];
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return value;
      // Nothing here needs more than 32 bits (lengths are bounded long before).
      if (shift > 28) throw failed('integer too large');
    }
  }

  /** A string literal whose length has an N-bit prefix, the Huffman flag the bit above it. */
  string(prefixBits: number, budget: number): string {
    if (budget < 0) throw new FieldSectionTooLarge();
    const huffman = (this.buf[this.at] & (1 << prefixBits)) !== 0;
    const length = this.int(prefixBits);
    if (this.at + length > this.buf.length) throw failed('field section ends inside a string');
    const raw = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    if (!huffman) {
      if (length > budget) throw new FieldSectionTooLarge();
      return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
    }
    try {
      return huffmanDecode(raw, budget).toString('latin1');
    } catch (err) {
      if (err instanceof HuffmanError) {
        if (err.message.startsWith('Huffman string longer')) throw new FieldSectionTooLarge();
        throw failed(err.message);
      }
      throw err;
    }
  }
}

function staticEntry(index: number): readonly [string, string] {
  const entry = STATIC_TABLE[index];
  if (entry === undefined) throw failed(`static table index ${index} out of range`);
  return entry;
}

/**
 * Decodes a field section (a HEADERS frame's payload). Throws Http3Error for what breaks QPACK
 * (QPACK_DECOMPRESSION_FAILED, a connection error), FieldSectionTooLarge over the limits.
 */
export function decodeFieldSection(payload: Uint8Array, limits: FieldSectionLimits): FieldLine[] {
  const c = new Cursor(payload);
  const requiredInsertCount = c.int(8);
  if (requiredInsertCount !== 0) throw failed('field section references the dynamic table, whose capacity is 0');
  // Sign bit and Delta Base: meaningless without a dynamic table.
  c.int(7);
  const fields: FieldLine[] = [];
  let size = 0;
  const left = () => limits.maxSectionSize - size;
  while (c.at < payload.length) {
    if (fields.length >= limits.maxFields) throw new FieldSectionTooLarge();
    const b = payload[c.at];
    let name: string;
    let value: string;
    if (b & 0x80) {
      // Indexed field line (§4.5.2): T bit 0x40.
      if ((b & 0x40) === 0) throw failed('indexed field line into the dynamic table');
      [name, value] = staticEntry(c.int(6));
    } else if (b & 0x40) {
      // Literal with name reference (§4.5.4): N 0x20, T 0x10.
      if ((b & 0x10) === 0) throw failed('name reference into the dynamic table');
      name = staticEntry(c.int(4))[0];
      if (c.at >= payload.length) throw failed('field section ends before a value');
      value = c.string(7, left() - name.length - 32);
    } else if (b & 0x20) {
      // Literal with literal name (§4.5.6): N 0x10, H 0x08, 3-bit length.
      name = c.string(3, left() - 32);
      if (c.at >= payload.length) throw failed('field section ends before a value');
      value = c.string(7, left() - name.length - 32);
    } else {
      // 0001xxxx indexed post-base, 0000xxxx literal with post-base name reference.
      throw failed('post-base reference into the dynamic table');
    }
    size += name.length + value.length + 32;
    if (size > limits.maxSectionSize) throw new FieldSectionTooLarge();
    fields.push([name, value]);
  }
  return fields;
}


/** Room a string may take encoded: the longer of its two forms, plus the length's bytes. */
function stringRoom(bytes: Buffer): number {
  return bytes.length + 6;
}

/** Writes a string with an N-bit length prefix, Huffman-coded when that is shorter. */
function writeString(out: Uint8Array, at: number, prefixBits: number, flags: number, bytes: Buffer): number {
  const coded = huffmanLength(bytes);
  if (coded < bytes.length) {
    at = writePrefixInt(out, at, prefixBits, flags | (1 << prefixBits), coded);
    return huffmanEncode(bytes, out, at);
  }
  at = writePrefixInt(out, at, prefixBits, flags, bytes.length);
  out.set(bytes, at);
  return at + bytes.length;
}

/**
 * Encodes a field section with the static table only: an exact entry as an indexed line, a
 * known name as a literal with a name reference, anything else as a literal name. Names must be
 * lower case already.
 */
export function encodeFieldSection(fields: readonly FieldLine[]): Buffer {
  let room = 2;
  const encoded: { exact: number; nameIndex: number; name: Buffer | undefined; value: Buffer | undefined }[] = [];
  for (const [name, value] of fields) {
    const exact = STATIC_EXACT.get(`${name}\0${value}`);
    if (exact !== undefined) {
      encoded.push({ exact, nameIndex: -1, name: undefined, value: undefined });
      room += 3;
      continue;
    }
    const nameIndex = STATIC_NAME.get(name) ?? -1;
    const v = Buffer.from(value, 'latin1');
    const n = nameIndex === -1 ? Buffer.from(name, 'latin1') : undefined;
    encoded.push({ exact: -1, nameIndex, name: n, value: v });
    room += 3 + stringRoom(v) + (n ? stringRoom(n) : 0);
  }
  const out = Buffer.allocUnsafe(room);
  // Required Insert Count 0, Delta Base 0.
  out[0] = 0;
  out[1] = 0;
  let at = 2;
  for (const e of encoded) {
    if (e.exact !== -1) at = writePrefixInt(out, at, 6, 0xc0, e.exact);
    else if (e.nameIndex !== -1) {
      // 01 N=0 T=1: literal with a static name reference.
      at = writePrefixInt(out, at, 4, 0x50, e.nameIndex);
      at = writeString(out, at, 7, 0, e.value as Buffer);
    } else {
      // 001 N=0: literal name (3-bit length prefix, H at 0x08).
      at = writeString(out, at, 3, 0x20, e.name as Buffer);
      at = writeString(out, at, 7, 0, e.value as Buffer);
    }
  }
  return out.subarray(0, at);
}
