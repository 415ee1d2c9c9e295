import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { serve, type Yard } from '../src/index.ts';

// WebSocket over HTTP/2 (RFC 8441): an extended CONNECT on an h2c connection reaches the same
// upgrade handlers as an HTTP/1.1 upgrade: ws-echo on the listener itself, and the proxy to an
// HTTP/1.1 WebSocket upstream (a `ws` server). The client is node:http2 writing WebSocket frames
// by hand (masked, as a client must), so nothing here is an HTTP/1.1 upgrade.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A masked client text frame (payload under 126 bytes). */
function clientText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** Reads one unmasked server text frame (payload under 126 bytes). */
async function serverText(stream: ClientHttp2Stream): Promise<string> {
  let buf = Buffer.alloc(0);
  for await (const chunk of stream) {
    buf = Buffer.concat([buf, chunk as Buffer]);
    if (buf.length >= 2 && buf.length >= 2 + (buf[1] & 0x7f)) {
      assert.equal(buf[0] & 0x0f, 1, 'a text frame');
      return buf.subarray(2, 2 + (buf[1] & 0x7f)).toString();
    }
  }
  throw new Error('stream ended before a frame');
}

async function session(port: number): Promise<ClientHttp2Session> {
  const s = h2connect(`http://127.0.0.1:${port}`);
  closers.push(() => s.destroy());
  await once(s, 'remoteSettings');
  return s;
}

function extendedConnect(s: ClientHttp2Session, path: string, extra: Record<string, string> = {}): ClientHttp2Stream {
  return s.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': path, ':authority': 'localhost', 'sec-websocket-version': '13', ...extra });
}

test('the listener says it takes extended CONNECT, and ws-echo answers a WebSocket opened on an HTTP/2 stream', async () => {
  const yard: Yard = await serve(
    { listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ match: { path: '/ws' }, handler: { type: 'ws-echo' } }] }] },
    { logLevel: 'silent' },
  );
  closers.push(() => yard.stop(100));
  const s = await session(yard.address('web').port);
  assert.equal(s.remoteSettings.enableConnectProtocol, true);
  const stream = extendedConnect(s, '/ws');
  const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
  assert.equal(headers[':status'], 200);
  assert.equal(headers['sec-websocket-accept'], undefined, 'RFC 8441 has no accept value');
  stream.write(clientText('over h2'));
  assert.equal(await serverText(stream), 'over h2');
  // Two WebSockets side by side on one connection, and plain requests still served beside them.
  const second = extendedConnect(s, '/ws');
  await once(second, 'response');
  second.write(clientText('second'));
  assert.equal(await serverText(second), 'second');
  stream.close();
  second.close();
});

test('the proxy carries a WebSocket from an HTTP/2 stream to an HTTP/1.1 WebSocket upstream; refusals keep their status', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const seen: string[] = [];
  wss.on('connection', (ws, req) => {
    seen.push(String(req.headers['x-forwarded-proto']));
    ws.on('message', (m) => ws.send(`upstream:${m.toString()}`));
  });
  closers.push(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  const yard: Yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          http2: { h2c: true },
          routes: [
            { match: { path: '/ws' }, handler: { type: 'proxy', upstream: 'ws' } },
            { match: { path: '/plain' }, handler: { type: 'respond', body: 'no websocket here' } },
          ],
        },
      ],
      upstreams: { ws: { targets: [`http://127.0.0.1:${(wss.address() as { port: number }).port}`] } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => yard.stop(100));
  const s = await session(yard.address('web').port);
  const stream = extendedConnect(s, '/ws');
  const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
  assert.equal(headers[':status'], 200);
  stream.write(clientText('hi'));
  assert.equal(await serverText(stream), 'upstream:hi');
  assert.deepEqual(seen, ['http']);
  stream.close();

  // A route without WebSocket is not upgraded: the answer is the route's own, with its status.
  const plain = extendedConnect(s, '/plain');
  const [plainHeaders] = (await once(plain, 'response')) as [Record<string, unknown>];
  assert.notEqual(plainHeaders[':status'], 200);
  plain.close();
  const missing = extendedConnect(s, '/nowhere');
  const [missingHeaders] = (await once(missing, 'response')) as [Record<string, unknown>];
  assert.equal(missingHeaders[':status'], 404);
  missing.close();
});
