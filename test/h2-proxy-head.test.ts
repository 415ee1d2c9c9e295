import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as h2connect, type IncomingHttpHeaders } from 'node:http2';
import { serve } from '../src/index.ts';

// The proxy hands the listener's HTTP/2 response the upstream's head as a flat list
// (writeHeadList): a name the upstream repeats is one field of several values, fields the route's
// middleware set before (CORS) are replaced by the upstream's of the same name and kept
// otherwise, and a compressing route (which wraps writeHead) still gets its head.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function upstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  return (server.address() as { port: number }).port;
}

async function gateway(port: number, middleware: Record<string, unknown>): Promise<number> {
  const yard = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ match: { path: '/*' }, middleware, handler: { type: 'proxy', upstream: 'u' } }] }],
      upstreams: { u: { targets: [`http://127.0.0.1:${port}`], health: false } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => yard.stop(100));
  return yard.address('web').port;
}

function get(port: number, headers: Record<string, string>): Promise<{ head: IncomingHttpHeaders; body: string }> {
  const session = h2connect(`http://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    session.on('error', reject);
    const req = session.request({ ':path': '/x', ...headers });
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      session.close();
      resolve({ head, body: Buffer.concat(chunks).toString() });
    });
    req.on('error', reject);
    req.end();
  });
}

test('h2 proxy head: repeated upstream fields arrive as one field of several values; a field set before by middleware is replaced by the upstream\'s, others kept', async () => {
  const port = await upstream((req, res) => {
    res.writeHead(201, [
      'Set-Cookie', 'a=1',
      'X-Multi', 'one',
      'Set-Cookie', 'b=2',
      'Access-Control-Allow-Origin', 'https://from-upstream.example',
      'X-Multi', 'two',
      'Content-Type', 'text/plain',
    ]);
    res.end('hello');
  });
  const gw = await gateway(port, { cors: { origins: ['https://app.example'] } });
  const { head, body } = await get(gw, { origin: 'https://app.example' });
  assert.equal(body, 'hello');
  assert.equal(head[':status'], 201);
  assert.deepEqual(head['set-cookie'], ['a=1', 'b=2']);
  assert.equal(head['x-multi'], 'one, two');
  assert.equal(head['content-type'], 'text/plain');
  // CORS set this before the handler ran; the upstream's field of that name replaced it.
  assert.equal(head['access-control-allow-origin'], 'https://from-upstream.example');
  // CORS's own other field stays.
  assert.equal(head.vary, 'Origin');
});

test('h2 proxy head: on a compressing route (writeHead wrapped) the head still arrives, compressed', async () => {
  const text = 'compress me '.repeat(200);
  const port = await upstream((req, res) => {
    res.writeHead(200, ['Content-Type', 'text/plain', 'X-Multi', 'one', 'X-Multi', 'two']);
    res.end(text);
  });
  const gw = await gateway(port, { compress: true });
  const session = h2connect(`http://127.0.0.1:${gw}`);
  closers.push(() => session.close());
  const { head, raw } = await new Promise<{ head: IncomingHttpHeaders; raw: Buffer }>((resolve, reject) => {
    const req = session.request({ ':path': '/x', 'accept-encoding': 'gzip' });
    const chunks: Buffer[] = [];
    let h: IncomingHttpHeaders = {};
    req.on('response', (x) => (h = x));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ head: h, raw: Buffer.concat(chunks) }));
    req.on('error', reject);
    req.end();
  });
  assert.equal(head[':status'], 200);
  assert.equal(head['content-encoding'], 'gzip');
  assert.equal(head['x-multi'], 'one, two');
  const { gunzipSync } = await import('node:zlib');
  assert.equal(gunzipSync(raw).toString(), text);
});
