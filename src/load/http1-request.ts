import type { LoadOptions } from './options.ts';

// The request every HTTP/1.1 connection sends, serialised once: the engine writes these same
// bytes again and again (and, pipelining, k copies in one write), never building a request.

const FORBIDDEN = new Set(['host', 'content-length', 'transfer-encoding']);

/** The request bytes: head and body. */
export function buildHttp1Request(o: LoadOptions): Buffer {
  const t = o.target;
  const hostHeader = o.headers.find(([n]) => n.toLowerCase() === 'host');
  let head = `${o.method} ${t.path} HTTP/1.1\r\nHost: ${hostHeader ? hostHeader[1] : t.authority}\r\n`;
  for (const [name, value] of o.headers) {
    if (!FORBIDDEN.has(name.toLowerCase())) head += `${name}: ${value}\r\n`;
  }
  if (!o.headers.some(([n]) => n.toLowerCase() === 'user-agent')) head += 'User-Agent: switchyard-bench\r\n';
  if (o.body.length > 0 || o.method === 'POST' || o.method === 'PUT' || o.method === 'PATCH') head += `Content-Length: ${o.body.length}\r\n`;
  head += '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), o.body]);
}

/** Batches of 1..depth copies, built ahead when they fit in this many bytes in all. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * `batches[k]` is k copies of the request (k = 1..depth), so k requests go out in one write;
 * undefined past k = 1 when that would take too much memory (the engine then corks and writes
 * the single request k times).
 */
export function buildBatches(request: Buffer, depth: number): (Buffer | undefined)[] {
  const batches: (Buffer | undefined)[] = [undefined, request];
  if ((request.length * depth * (depth + 1)) / 2 > MAX_BATCH_BYTES) return batches;
  for (let k = 2; k <= depth; k++) batches.push(Buffer.concat(Array.from({ length: k }, () => request)));
  return batches;
}
