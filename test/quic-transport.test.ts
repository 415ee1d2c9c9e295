import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectQuic, listenQuic, isQuicError, QuicStreamError, type QuicConnection, type QuicServer, type QuicStream } from '../src/quic/index.ts';
import { makeLeaf, makeTestCa } from './helpers/tls-fixtures.ts';

// The QUIC transport (src/quic) on its own, as HTTP/3 uses it: 0-RTT resumption, connection
// migration, stream resets with application codes both ways, server-opened streams, drain.

const dir = mkdtempSync(join(tmpdir(), 'sy-quic-transport-'));
let cert: string;
let key: string;
let ca: string;
const servers: QuicServer[] = [];

before(async () => {
  const caFiles = await makeTestCa(dir);
  const leaf = await makeLeaf(dir, caFiles, 'leaf', ['localhost', '127.0.0.1']);
  cert = readFileSync(leaf.cert, 'utf8');
  key = readFileSync(leaf.key, 'utf8');
  ca = readFileSync(caFiles.cert, 'utf8');
});

after(async () => {
  for (const s of servers) await s.close();
});

async function server(options: { earlyData?: boolean; onConnection: (c: QuicConnection) => void }): Promise<number> {
  const s = await listenQuic({ host: '127.0.0.1', port: 0, alpn: ['test'], certificate: () => ({ cert, key }), ...options });
  servers.push(s);
  return s.address().port;
}

function collect(stream: QuicStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    stream.on('data', (d: Buffer) => (out += d.toString()));
    stream.on('end', () => resolve(out));
    stream.on('error', reject);
  });
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('0-RTT: a resumed client sends on a stream before the handshake completes; the server sees it as early data', async () => {
  const early: boolean[] = [];
  const port = await server({
    earlyData: true,
    onConnection(conn) {
      conn.on('stream', (s) => {
        early.push(s.earlyData);
        s.on('error', () => {});
        s.pipe(s);
      });
    },
  });
  const first = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca });
  const s1 = first.openBidi();
  const reply1 = collect(s1);
  s1.end('first');
  assert.equal(await reply1, 'first');
  await until('a session ticket', () => first.session() !== undefined);
  const session = first.session()!;
  await first.close();

  const second = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca, session, earlyData: true });
  assert.equal(second.established, false, 'resolved before the handshake completed');
  const s2 = second.openBidi();
  const reply2 = collect(s2);
  s2.end('early');
  assert.equal(await reply2, 'early');
  assert.equal(second.resumed, true);
  assert.deepEqual(early, [false, true]);
  await second.close();
});

test('migration: the client moves to a new local port mid-stream and the server follows', async () => {
  let serverSide: QuicConnection | undefined;
  const port = await server({
    onConnection(conn) {
      serverSide = conn;
      conn.on('stream', (s) => {
        s.on('error', () => {});
        s.pipe(s);
      });
    },
  });
  const c = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca });
  const s = c.openBidi();
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString()));
  s.write('before ');
  await until('the first echo', () => got === 'before ');
  const oldPort = c.localPort;
  await c.migrate();
  assert.notEqual(c.localPort, oldPort);
  s.write('after');
  await until('the echo on the new path', () => got === 'before after');
  await until('the server to see the new address', () => serverSide?.remotePort === c.localPort);
  await c.close();
});

test('stream resets carry application error codes both ways', async () => {
  const serverErrors: unknown[] = [];
  const port = await server({
    onConnection(conn) {
      conn.on('stream', (s) => {
        s.on('error', (err) => serverErrors.push(err));
        if (s.id === 0) s.once('data', () => s.reset(0x10c));
        else s.resume();
      });
    },
  });
  const c = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca });
  const s = c.openBidi();
  s.write('x');
  const err = await new Promise<unknown>((resolve) => s.on('error', resolve));
  assert.ok(err instanceof QuicStreamError && err.code === 'QUIC_STREAM_RESET' && err.streamCode === 0x10c, String(err));
  // And from the client: the server's stream ends with our code.
  const s2 = c.openBidi();
  s2.on('error', () => {});
  s2.write('y');
  await new Promise((r) => setTimeout(r, 50));
  s2.reset(0x42);
  await until('the server to see the reset', () => serverErrors.some((e) => e instanceof QuicStreamError && e.streamCode === 0x42));
  await c.close();
});

test('server-opened uni and bidi streams reach the client; drain closes an idle connection and refuses new ones', async () => {
  let serverSide: QuicConnection | undefined;
  let endpoint: QuicServer | undefined;
  const port = await server({
    onConnection(conn) {
      serverSide = conn;
      const uni = conn.openUni();
      uni.end('pushed');
      const bidi = conn.openBidi();
      bidi.end('asked');
      bidi.resume();
    },
  });
  endpoint = servers.at(-1);
  const c = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca });
  const got = new Map<string, string>();
  c.on('stream', (s) => {
    // Our side of the server's bidi stream is done at once: the drain waits for open streams.
    if (s.kind === 'bidi') s.end();
    void collect(s).then((text) => got.set(`${s.kind}/${s.initiator}`, text));
  });
  await until('both server streams', () => got.size === 2);
  assert.equal(got.get('uni/peer'), 'pushed');
  assert.equal(got.get('bidi/peer'), 'asked');
  assert.equal(serverSide?.alpn, 'test');
  endpoint!.stopAccepting();
  const info = await c.closed;
  assert.equal(info.by, 'peer');
  const refused = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca, limits: { handshakeTimeoutMs: 500 } }).catch((e: unknown) => e);
  assert.ok(isQuicError(refused) && refused.code === 'QUIC_HANDSHAKE_TIMEOUT', String(refused));
});

test('a stream listener that throws loses its stream, not the process', async () => {
  let calls = 0;
  const port = await server({
    onConnection(conn) {
      conn.on('stream', (s) => {
        calls++;
        if (calls === 1) throw new Error('handler bug');
        s.on('error', () => {});
        s.pipe(s);
      });
    },
  });
  const c = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca });
  const first = c.openBidi();
  first.write('x');
  const err = await new Promise<unknown>((resolve) => first.on('error', resolve));
  assert.ok(err instanceof QuicStreamError && err.code === 'QUIC_STREAM_RESET', String(err));
  const second = c.openBidi();
  const reply = collect(second);
  second.end('still served');
  assert.equal(await reply, 'still served');
  await c.close();
});

test('STOP_SENDING ends only our sending side: the reply still arrives whole, writes after it are dropped quietly', async () => {
  const port = await server({
    onConnection(conn) {
      conn.on('stream', (s) => {
        s.on('error', () => {});
        s.once('data', () => {
          // Answer before the request is all sent, and tell the client to stop sending.
          s.stopSending(0x100);
          s.end('answer');
        });
      });
    },
  });
  const c = await connectQuic({ host: '127.0.0.1', port, alpn: ['test'], ca });
  const s = c.openBidi();
  const errors: unknown[] = [];
  s.on('error', (err) => errors.push(err));
  const stopped = new Promise<number>((resolve) => s.once('stopped', resolve));
  const reply = collect(s);
  const chunk = Buffer.alloc(64 * 1024, 1);
  // 3 MiB, more than the stream's window: most of it is written after STOP_SENDING.
  for (let i = 0; i < 48; i++) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  s.end();
  assert.equal(await reply, 'answer');
  assert.equal(await stopped, 0x100);
  await new Promise((r) => s.once('close', r));
  assert.deepEqual(errors, []);
  await c.close();
});
