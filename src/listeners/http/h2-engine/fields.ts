import { CONNECTION_SPECIFIC } from '../../../protocol/http-fields.ts';

// What makes a request's header list malformed (RFC 9113 §8.1.1, §8.2.2, §8.3): the engine resets
// such a stream (PROTOCOL_ERROR) before anyone sees it, as nghttp2 did. Field names and values
// themselves are checked by the HPACK decoder (uppercase, invalid characters).

/** A decoded header list: [name, value, name, value, ...]. */
export type FieldList = string[];

const SEEN_METHOD = 1;
const SEEN_SCHEME = 2;
const SEEN_PATH = 4;
const SEEN_AUTHORITY = 8;
const SEEN_PROTOCOL = 16;

/** Why the request's list is malformed, or null. */
export function checkRequestFields(fields: FieldList, connectProtocol: boolean): string | null {
  let seen = 0;
  let regular = false;
  let method = '';
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return 'a pseudo-header field after a regular one';
      let bit: number;
      switch (name) {
        case ':method':
          bit = SEEN_METHOD;
          method = value;
          break;
        case ':scheme':
          bit = SEEN_SCHEME;
          break;
        case ':path':
          if (value === '') return 'an empty :path';
          bit = SEEN_PATH;
          break;
        case ':authority':
          bit = SEEN_AUTHORITY;
          break;
        case ':protocol':
          if (!connectProtocol) return ':protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL';
          bit = SEEN_PROTOCOL;
          break;
        default:
          return `the pseudo-header field ${name}`;
      }
      if (seen & bit) return `${name} twice`;
      seen |= bit;
      continue;
    }
    regular = true;
    if (CONNECTION_SPECIFIC.has(name)) return `the connection-specific field ${name}`;
    if (name === 'te' && value !== 'trailers') return 'te other than "trailers"';
  }
  if (!(seen & SEEN_METHOD)) return 'no :method';
  if (method === 'CONNECT') {
    if (seen & SEEN_PROTOCOL) {
      // Extended CONNECT (RFC 8441 §4): all of :scheme, :path and :authority.
      if ((seen & (SEEN_SCHEME | SEEN_PATH | SEEN_AUTHORITY)) !== (SEEN_SCHEME | SEEN_PATH | SEEN_AUTHORITY)) return 'an extended CONNECT without :scheme, :path or :authority';
      return null;
    }
    if (seen & (SEEN_SCHEME | SEEN_PATH)) return 'CONNECT with :scheme or :path';
    if (!(seen & SEEN_AUTHORITY)) return 'CONNECT without :authority';
    return null;
  }
  if (seen & SEEN_PROTOCOL) return ':protocol on a request other than CONNECT';
  if ((seen & (SEEN_SCHEME | SEEN_PATH)) !== (SEEN_SCHEME | SEEN_PATH)) return 'no :scheme or :path';
  return null;
}

/** Why a trailer list is malformed (pseudo-header fields, connection-specific fields), or null. */
export function checkTrailerFields(fields: FieldList): string | null {
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    if (name.charCodeAt(0) === 0x3a) return 'a pseudo-header field in trailers';
    if (CONNECTION_SPECIFIC.has(name)) return `the connection-specific field ${name}`;
  }
  return null;
}

/** The content-length of a request's list: -1 when absent, -2 when invalid (malformed). */
export function contentLengthOf(fields: FieldList): number {
  let length = -1;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] !== 'content-length') continue;
    const v = fields[i + 1];
    if (!/^\d{1,15}$/.test(v)) return -2;
    const n = Number(v);
    if (length !== -1 && length !== n) return -2;
    length = n;
  }
  return length;
}
