import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, type Yard } from '../src/index.ts';
import { Flag, FrameType, H2Client, headersFrame, requestBlock, statusOf } from './helpers/h2-frames.ts';

// The HTTP/2 check phase remembers the last :authority it found valid (request-target.ts), so
// that a connection's streams, which name the same authority over and over, are not matched
// against the Host grammar each time. What it lets through must be exactly what the grammar
// does: a bad authority is refused (400) whatever good one came before it, on the same
// connection and on another, and a good one after a bad one is served.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function yard(): Promise<number> {
  const y: Yard = await serve(
    { listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ handler: { type: 'respond', body: 'ok\n' } }] }] },
    { logLevel: 'silent' },
  );
  closers.push(() => y.stop(100));
  return y.address('web').port;
}

async function client(port: number): Promise<H2Client> {
  const c = await H2Client.connect(port);
  closers.push(() => c.destroy());
  assert.ok(await c.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK)), 'server SETTINGS');
  return c;
}

async function statusFor(c: H2Client, streamId: number, authority: string): Promise<number | undefined> {
  c.write(headersFrame(streamId, requestBlock(authority, '/'), { endStream: true }));
  const head = await c.response(streamId);
  assert.ok(head, `a response on stream ${streamId}`);
  return statusOf(head);
}

test('a bad :authority is refused after a good one, and a good one served after a bad one', async () => {
  const port = await yard();
  const c = await client(port);
  // Each authority below passes nghttp2's own check (RFC 3986 characters) and only the second
  // and fourth fail the Host grammar (a percent sign not followed by two hex digits).
  assert.equal(await statusFor(c, 1, `127.0.0.1:${port}`), 200);
  assert.equal(await statusFor(c, 3, 'bad%zzhost'), 400);
  assert.equal(await statusFor(c, 5, `127.0.0.1:${port}`), 200);
  assert.equal(await statusFor(c, 7, 'bad%zzhost'), 400);
  assert.equal(await statusFor(c, 9, 'good%41host'), 200);
  // Another connection, after those: the remembered authority is no one connection's.
  const other = await client(port);
  assert.equal(await statusFor(other, 1, 'bad%zzhost'), 400);
  assert.equal(await statusFor(other, 3, 'good%41host'), 200);
});
