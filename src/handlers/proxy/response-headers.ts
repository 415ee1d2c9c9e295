import { ServerResponse } from 'node:http';
import type { HttpResponse } from '../types.ts';
import { connectionNamed } from './connection-header.ts';
import { H2Response } from '../../listeners/http/h2-exchange.ts';

// Phase "downstream response headers": the upstream's raw header list (undici hands it over as
// [name, value, ...] Buffers, unparsed; the HTTP/2 pools as strings) becomes the flat string list res.writeHead() takes as it
// is. Hop-by-hop headers are removed (Connection and what it names, Keep-Alive, Proxy-*, TE,
// Trailer, Transfer-Encoding, Upgrade: Node frames the body for the client itself) and our hop
// is added to Via. One pass, strings made once (a head from one read decoded in one call), no
// header object.

interface Latin1Buffer extends Buffer {
  /** Node's own fast decoder behind toString('latin1'), without its argument checks. */
  latin1Slice(start: number, end: number): string;
}

/** A header name or value as undici gives it (a Buffer from HTTP/1.1) or as node:http2 does (a string). */
type RawField = Buffer | string;

const latin1Of = (Buffer.prototype as Latin1Buffer).latin1Slice as (this: Uint8Array, start: number, end: number) => string;
const latin1 = (b: RawField): string => (typeof b === 'string' ? b : (b as Latin1Buffer).latin1Slice(0, b.length));
const firstByte = (b: RawField): number => (typeof b === 'string' ? b.charCodeAt(0) : b[0]);

/** Lengths of the header names this phase removes or rewrites (plus anything starting with p, for Proxy-*). */
const SPECIAL = new Uint8Array(18);
/** The widest head decoded whole (a head lies within one read, at most 64 KiB). */
const MAX_SPAN = 64 * 1024;
for (const n of ['te', 'via', 'trailer', 'upgrade', 'connection', 'keep-alive', 'transfer-encoding']) SPECIAL[n.length] = 1;

/**
 * The whole head as one string when every field of `raw` is a view into one ArrayBuffer (how
 * undici hands over a head that came in one read): one decode instead of one per name and per
 * value, each of which costs a native call (~0.1 µs on Node 24). Undefined otherwise (strings
 * from HTTP/2, a head split over reads, fields undici joined).
 */
function oneDecode(raw: readonly RawField[]): { text: string; start: number } | undefined {
  const first = raw[0];
  if (typeof first === 'string') return undefined;
  const ab = first.buffer;
  const start = first.byteOffset;
  let end = start;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (typeof b === 'string' || b.buffer !== ab || b.byteOffset < end) return undefined;
    end = b.byteOffset + b.length;
  }
  // Views of one head lie within a read; anything wider is not worth decoding whole.
  if (end - start > MAX_SPAN) return undefined;
  return { text: latin1Of.call(new Uint8Array(ab, start, end - start), 0, end - start), start };
}

/** Field `i` of `raw` as a string: cut from the one decoded head when there is one. */
function field(raw: readonly RawField[], i: number, all: { text: string; start: number } | undefined): string {
  const b = raw[i];
  if (all === undefined || typeof b === 'string') return latin1(b);
  const at = b.byteOffset - all.start;
  return all.text.slice(at, at + b.length);
}

/** The response's headers for the client; `via` is our Via entry (false: none added, the upstream's passes). */
export function responseHeaders(raw: readonly RawField[], via: string | false): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  let upstreamVia: string | undefined;
  const all = raw.length >= 4 ? oneDecode(raw) : undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const nb = raw[i];
    const name = field(raw, i, all);
    if ((nb.length >= SPECIAL.length || SPECIAL[nb.length] === 0) && (firstByte(nb) | 0x20) !== 0x70) {
      out.push(name, field(raw, i + 1, all));
      continue;
    }
    const lower = name.toLowerCase();
    switch (lower) {
      case 'connection':
        connection = connection === undefined ? field(raw, i + 1, all) : `${connection}, ${field(raw, i + 1, all)}`;
        continue;
      case 'te':
      case 'trailer':
      case 'upgrade':
      case 'keep-alive':
      case 'transfer-encoding':
        continue;
      case 'via':
        upstreamVia = upstreamVia === undefined ? field(raw, i + 1, all) : `${upstreamVia}, ${field(raw, i + 1, all)}`;
        continue;
      default:
        if (lower.startsWith('proxy-')) continue;
        out.push(name, field(raw, i + 1, all));
    }
  }
  if (via !== false) out.push('via', upstreamVia === undefined ? via : `${upstreamVia}, ${via}`);
  else if (upstreamVia !== undefined) out.push('via', upstreamVia);
  if (connection === undefined) return out;
  const names = connectionNamed(connection);
  if (!names) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!names.has(out[i].toLowerCase())) kept.push(out[i], out[i + 1]);
  return kept;
}

/**
 * Writes the head of the response to the client. HTTP/1.1 takes the flat list as it is; an
 * HTTP/2 response takes an object, where repeated names become one list (Set-Cookie stays one
 * field per cookie) and names are lower case, as HTTP/2 requires.
 */
export function writeResponseHead(res: HttpResponse, status: number, flat: string[]): void {
  if (res instanceof ServerResponse) {
    res.writeHead(status, flat);
    return;
  }
  // The listener's HTTP/2 response takes the list as it is, unless middleware has wrapped its
  // writeHead() (compression does): then the wrapper gets the record it expects.
  if ((res as unknown) instanceof H2Response && !Object.hasOwn(res, 'writeHead')) {
    (res as unknown as H2Response).writeHeadList(status, flat);
    return;
  }
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i].toLowerCase();
    const had = headers[name];
    if (had === undefined) headers[name] = flat[i + 1];
    else if (Array.isArray(had)) had.push(flat[i + 1]);
    else headers[name] = [had, flat[i + 1]];
  }
  res.writeHead(status, headers);
}
