import type { IncomingHttpHeaders } from 'node:http2';
import { checkSentValueChars, CONNECTION_SPECIFIC, FORBIDDEN_IN_RECEIVED_VALUE, isLowerCaseToken } from '../protocol/http-fields.ts';
import type { FieldLine } from './qpack.ts';

// What an HTTP/3 message's field section may hold (RFC 9114 §4.2, §4.3), and its conversion to
// and from the header objects handlers use. A section that breaks these rules is malformed
// (§4.1.2): a stream error H3_MESSAGE_ERROR, never handed on.


/** Request pseudo-headers (§4.3.1). `:protocol` (extended CONNECT) is not among them: we do not offer SETTINGS_ENABLE_CONNECT_PROTOCOL. */
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path']);

/** A request's fields as handlers see them: node:http2's shape (pseudo-headers included). */
export interface RequestHead {
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
}

/** The request head, or why it is malformed. */
export function requestHead(fields: readonly FieldLine[]): RequestHead | { malformed: string } {
  const headers = Object.create(null) as IncomingHttpHeaders;
  const rawHeaders: string[] = [];
  let regular = false;
  for (const [name, value] of fields) {
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regular) return { malformed: `pseudo-header ${name} after a regular field` };
      if (!REQUEST_PSEUDO.has(name)) return { malformed: `pseudo-header ${name} is not a request's` };
      if (headers[name] !== undefined) return { malformed: `pseudo-header ${name} repeated` };
      headers[name] = value;
      rawHeaders.push(name, value);
      continue;
    }
    regular = true;
    if (!isLowerCaseToken(name)) return { malformed: `field name "${name}" is not a lower-case token` };
    if (CONNECTION_SPECIFIC.has(name)) return { malformed: `connection-specific field ${name}` };
    if (name === 'te' && value !== 'trailers') return { malformed: 'TE other than "trailers"' };
    if (value !== '' && FORBIDDEN_IN_RECEIVED_VALUE.test(value)) return { malformed: `bad value of ${name}` };
    rawHeaders.push(name, value);
    const had = headers[name];
    if (had === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(had)) had.push(value);
    else if (name === 'cookie') headers[name] = `${had}; ${value}`;
    else if (name === 'content-length') {
      if (had !== value) return { malformed: 'Content-Length values differ' };
    } else headers[name] = `${had}, ${value}`;
  }
  const method = headers[':method'];
  if (method === undefined || method === '') return { malformed: 'no :method' };
  if (method === 'CONNECT') {
    if (headers[':scheme'] !== undefined || headers[':path'] !== undefined || headers[':authority'] === undefined) return { malformed: 'CONNECT takes :authority only' };
  } else {
    if (headers[':scheme'] === undefined || headers[':scheme'] === '') return { malformed: 'no :scheme' };
    if (headers[':path'] === undefined || headers[':path'] === '') return { malformed: 'no :path' };
  }
  const length = headers['content-length'];
  if (length !== undefined && !/^[0-9]{1,15}$/.test(length)) return { malformed: 'bad Content-Length' };
  return { headers, rawHeaders };
}

/** A response's status and fields as field lines: names lower case, connection-specific ones left out. */
export function responseFields(status: number, fields: Readonly<Record<string, number | string | readonly string[] | undefined>> | null, date: string | undefined): FieldLine[] {
  const out: FieldLine[] = [[':status', String(status)]];
  if (fields) appendFields(out, fields);
  if (date !== undefined && (fields === null || fields.date === undefined)) out.push(['date', date]);
  return out;
}

/**
 * Field lines of a header object (a response's fields, trailers, interim responses): lower-case
 * names, lists as repeated lines; pseudo-headers and fields no response may carry are left out.
 * Throws InvalidFieldError for a value with a character no field may hold, as HTTP/1.1 and
 * HTTP/2 responses do.
 */
export function appendFields(out: FieldLine[], fields: Readonly<Record<string, number | string | readonly string[] | undefined>>): FieldLine[] {
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined) continue;
    const name = key.toLowerCase();
    if (name.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(name) || name === 'http2-settings' || (name === 'te' && value !== 'trailers')) continue;
    if (Array.isArray(value)) for (const v of value as readonly string[]) pushField(out, name, String(v));
    else pushField(out, name, String(value));
  }
  return out;
}

function pushField(out: FieldLine[], name: string, value: string): void {
  checkSentValueChars(name, value);
  out.push([name, value]);
}
