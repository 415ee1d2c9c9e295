import { huffmanDecode } from '../../http3/huffman.ts';

// The literal strings one HPACK decoder (one connection) has decoded lately, by their bytes on the
// wire. nghttp2 (and so h2load, curl, grpc-js, Envoy) never puts :path or content-length in the
// dynamic table, so a client calling one gRPC method sends its path as the same Huffman literal on
// every call: decoding it walked the code bit by bit and made a Buffer and a string each time.
// Hashing and comparing the coded bytes costs less and allocates nothing on a hit.
//
// One cache per decoder, never shared: with a cache shared by every connection, how fast a block
// decodes would tell one client which strings other clients sent (a timing oracle). Here a
// connection can only find its own strings. Bounded: SLOTS direct-mapped slots of strings coded in
// at most MAX_CODED bytes; a newer string takes its slot's place.

/** Coded strings longer than this are decoded every time (ids, tokens: unlikely to come again). */
const MAX_CODED = 64;
/** A power of two. */
const SLOTS = 16;

export class LiteralCache {
  static readonly SLOTS = SLOTS;
  static readonly MAX_CODED = MAX_CODED;

  /** The coded bytes of each slot's string (Huffman-coded or raw, as `huffman` says). */
  private readonly coded: (Buffer | undefined)[] = new Array<Buffer | undefined>(SLOTS).fill(undefined);
  private readonly huffman = new Uint8Array(SLOTS);
  private readonly decoded: string[] = new Array<string>(SLOTS).fill('');

  /**
   * The string buf[start, end) holds: Huffman-coded when `huffman`, else latin1. Throws
   * HuffmanError as huffmanDecode does, for the same input (a cached string longer than `maxOut`
   * is decoded again, and refused).
   */
  decode(buf: Buffer, start: number, end: number, huffman: boolean, maxOut: number): string {
    const length = end - start;
    if (length > MAX_CODED) return decodeString(buf, start, end, huffman, maxOut);
    // FNV-1a over the coded bytes and the coding.
    let h = huffman ? 0x050c5d1f : 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
    const slot = (h ^ (h >>> 16)) & (SLOTS - 1);
    const known = this.coded[slot];
    if (known !== undefined && known.length === length && this.huffman[slot] === (huffman ? 1 : 0) && sameBytes(known, buf, start)) {
      const value = this.decoded[slot];
      if (value.length <= maxOut) return value;
    }
    const value = decodeString(buf, start, end, huffman, maxOut);
    this.coded[slot] = Buffer.from(buf.subarray(start, end));
    this.huffman[slot] = huffman ? 1 : 0;
    this.decoded[slot] = value;
    return value;
  }
}

function decodeString(buf: Buffer, start: number, end: number, huffman: boolean, maxOut: number): string {
  return huffman ? huffmanDecode(buf.subarray(start, end), maxOut).toString('latin1') : buf.toString('latin1', start, end);
}

function sameBytes(known: Buffer, buf: Buffer, start: number): boolean {
  for (let i = 0; i < known.length; i++) if (known[i] !== buf[start + i]) return false;
  return true;
}
