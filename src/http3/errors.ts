// Error codes of HTTP/3 (RFC 9114 §8.1) and QPACK (RFC 9204 §6), and the error this code throws
// when a peer breaks the protocol: whether it ends the whole connection or one stream is the
// RFC's call for each case, and travels with the error.

export const H3 = {
  NO_ERROR: 0x100,
  GENERAL_PROTOCOL_ERROR: 0x101,
  INTERNAL_ERROR: 0x102,
  STREAM_CREATION_ERROR: 0x103,
  CLOSED_CRITICAL_STREAM: 0x104,
  FRAME_UNEXPECTED: 0x105,
  FRAME_ERROR: 0x106,
  EXCESSIVE_LOAD: 0x107,
  ID_ERROR: 0x108,
  SETTINGS_ERROR: 0x109,
  MISSING_SETTINGS: 0x10a,
  REQUEST_REJECTED: 0x10b,
  REQUEST_CANCELLED: 0x10c,
  REQUEST_INCOMPLETE: 0x10d,
  MESSAGE_ERROR: 0x10e,
  CONNECT_ERROR: 0x10f,
  VERSION_FALLBACK: 0x110,
  QPACK_DECOMPRESSION_FAILED: 0x200,
  QPACK_ENCODER_STREAM_ERROR: 0x201,
  QPACK_DECODER_STREAM_ERROR: 0x202,
} as const;

const NAMES = new Map<number, string>(Object.entries(H3).map(([name, code]) => [code, name.startsWith('QPACK') ? name : `H3_${name}`]));

/** The RFC's name of an error code (`H3_FRAME_ERROR`), or its hex form. */
export function errorName(code: number): string {
  return NAMES.get(code) ?? `0x${code.toString(16)}`;
}

/** A peer broke the protocol: `scope` says whether the connection or only the stream ends, with `code`. */
export class Http3Error extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly scope: 'connection' | 'stream' = 'connection',
  ) {
    super(`${errorName(code)}: ${message}`);
  }
}
