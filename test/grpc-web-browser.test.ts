import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Browser } from 'playwright-core';
import { serve, type Yard } from '../src/index.ts';
import { browserSkipReason, launchChromium } from './helpers/browser.ts';

// A gRPC-Web call from a real browser: a page on one listener calls, cross-origin, a route on
// another listener that proxies to a grpc-js server. The page speaks gRPC-Web text mode with
// fetch() (what grpc-web's JavaScript client sends: application/grpc-web-text, base64 frames,
// x-grpc-web), so the browser makes a CORS preflight that the cors middleware answers, and the
// proxy turns the call into gRPC over HTTP/2 and the answer back into gRPC-Web, the status in
// the trailers frame at the end of the body and in the exposed headers.

const skip = browserSkipReason();
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>gRPC-Web test</title>
<script>
// One gRPC-Web text-mode call: a 5-byte framed JSON message, base64 in, base64 frames out.
async function call(url, message) {
  const payload = new TextEncoder().encode(JSON.stringify(message));
  const frame = new Uint8Array(5 + payload.length);
  new DataView(frame.buffer).setUint32(1, payload.length);
  frame.set(payload, 5);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web-text', accept: 'application/grpc-web-text', 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1' },
    body: btoa(String.fromCharCode(...frame)),
  });
  const text = await res.text();
  // Each chunk is base64 of its own: decode group by group, padding included.
  const bytes = [];
  for (const part of text.match(/[A-Za-z0-9+/]+={0,2}/g) || []) for (const c of atob(part)) bytes.push(c.charCodeAt(0));
  const all = new Uint8Array(bytes);
  const view = new DataView(all.buffer);
  const messages = [];
  let trailers = '';
  for (let i = 0; i + 5 <= all.length; ) {
    const flags = all[i];
    const len = view.getUint32(i + 1);
    const body = new TextDecoder().decode(all.subarray(i + 5, i + 5 + len));
    if (flags & 0x80) trailers = body;
    else messages.push(JSON.parse(body));
    i += 5 + len;
  }
  return { status: res.status, contentType: res.headers.get('content-type'), grpcStatusHeader: res.headers.get('grpc-status'), messages, trailers };
}
</script>`;

test('Chromium calls a gRPC service through the proxy with gRPC-Web, cross-origin with CORS', { skip }, async () => {
  const serialize = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
  const deserialize = (b: Buffer): unknown => JSON.parse(b.toString());
  const server = new grpc.Server();
  server.addService(
    {
      Unary: { path: '/test.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: serialize, requestDeserialize: deserialize, responseSerialize: serialize, responseDeserialize: deserialize },
    } as unknown as grpc.ServiceDefinition,
    {
      Unary: (call: grpc.ServerUnaryCall<{ name: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (call.request.name === 'nobody') return cb({ code: grpc.status.NOT_FOUND, details: 'no such person' });
        cb(null, { greeting: `hello ${call.request.name}` });
      },
    },
  );
  const grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  closers.push(() => server.forceShutdown());

  // Two listeners: the page's origin and the API's, which allows the page's origin (known
  // before the start: a port picked free first).
  const pagePort = await freePort();
  const pageOrigin = `http://127.0.0.1:${pagePort}`;
  const y2: Yard = await serve(
    {
      listeners: [
        { name: 'page', protocol: 'http', address: `127.0.0.1:${pagePort}`, routes: [{ match: { path: '/' }, handler: { type: 'respond', body: PAGE, contentType: 'text/html; charset=utf-8' } }] },
        { name: 'api', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/test.Echo/*' }, middleware: { cors: { origins: [pageOrigin], allowHeaders: ['content-type', 'x-grpc-web', 'x-user-agent', 'grpc-timeout'], exposeHeaders: ['grpc-status', 'grpc-message'] } }, handler: { type: 'proxy', upstream: 'echo' } }] },
      ],
      upstreams: { echo: { targets: [`h2c://127.0.0.1:${grpcPort}`] } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => y2.stop(100));
  const api = `http://127.0.0.1:${y2.address('api').port}/test.Echo/Unary`;

  const browser: Browser = await launchChromium();
  closers.push(() => browser.close());
  const page = await browser.newPage();
  await page.goto(pageOrigin + '/');
  type Result = { status: number; contentType: string; grpcStatusHeader: string | null; messages: unknown[]; trailers: string };
  const ok = (await page.evaluate(([url]) => (globalThis as unknown as { call(u: string, m: unknown): Promise<unknown> }).call(url, { name: 'chromium' }), [api])) as Result;
  assert.equal(ok.status, 200);
  assert.equal(ok.contentType, 'application/grpc-web-text+proto');
  assert.deepEqual(ok.messages, [{ greeting: 'hello chromium' }]);
  assert.match(ok.trailers, /grpc-status: ?0/);

  const missing = (await page.evaluate(([url]) => (globalThis as unknown as { call(u: string, m: unknown): Promise<unknown> }).call(url, { name: 'nobody' }), [api])) as Result;
  assert.deepEqual(missing.messages, []);
  // A trailers-only answer: the status is in the headers, which CORS lets the page read.
  assert.equal(missing.grpcStatusHeader ?? /grpc-status: ?(\d+)/.exec(missing.trailers)?.[1], String(grpc.status.NOT_FOUND));

  // A page from an origin the API does not allow cannot read the answer at all.
  const other = await serve({ listeners: [{ name: 'page', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/' }, handler: { type: 'respond', body: PAGE, contentType: 'text/html; charset=utf-8' } }] }] }, { logLevel: 'silent' });
  closers.push(() => other.stop(100));
  await page.goto(`http://127.0.0.1:${other.address('page').port}/`);
  const refused = await page.evaluate(([url]) => (globalThis as unknown as { call(u: string, m: unknown): Promise<unknown> }).call(url, { name: 'x' }).then(() => 'read', (e: Error) => `refused: ${e.message}`), [api]);
  assert.match(String(refused), /^refused/);
});
