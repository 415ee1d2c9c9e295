import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { serve, type Yard } from '../src/index.ts';
import { connectQuic, isQuicError, type QuicClientConnection, type QuicStream } from '../src/quic/index.ts';
import { runCli } from './helpers/daemon.ts';

// The quic listener with real sockets: the project's QUIC client and `switchyard connect
// quic://` against echo on a yard, certificates from the local CA, ALPN, limits, idle timeout,
// stateless retry, garbage datagrams, and config errors naming the field.

const dir = mkdtempSync(join(tmpdir(), 'sy-quic-'));
const dataDir = join(dir, 'data');
const root = join(dataDir, 'pki', 'local', 'root.crt');
const yards: Yard[] = [];
const clients: QuicClientConnection[] = [];
let y: Yard;
let port: number;
let ca: string;

async function yard(listeners: unknown[]): Promise<Yard> {
  const made = await serve({ listeners }, { logLevel: 'silent', dataDir, baseDir: dir });
  yards.push(made);
  return made;
}

async function client(p: number, options: Partial<Parameters<typeof connectQuic>[0]> = {}): Promise<QuicClientConnection> {
  const c = await connectQuic({ host: '127.0.0.1', port: p, alpn: ['echo'], ca, ...options });
  clients.push(c);
  return c;
}

/** Writes `data` on a new stream, ends it, and collects what comes back until the stream ends. */
function echo(stream: QuicStream, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
    stream.end(data);
  });
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a rejection');
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

before(async () => {
  y = await yard([{ name: 'q', protocol: 'quic', address: '127.0.0.1:0', tls: { issuer: 'internal' }, handler: { type: 'echo' } }]);
  port = y.address('q').port;
  ca = readFileSync(root, 'utf8');
});

after(async () => {
  for (const c of clients) await Promise.race([c.close(), new Promise((r) => setTimeout(r, 500))]);
  for (const made of yards) await made.stop(100);
});

test('the listener reports its real UDP port and a quic:// url', () => {
  assert.notEqual(port, 0);
  const summary = y.listeners().find((l) => l.name === 'q')!;
  assert.equal(summary.protocol, 'quic');
  assert.equal(summary.url, `quic://127.0.0.1:${port}`);
});

test('echo on 40 concurrent streams of one connection, with the internal CA trusted', async () => {
  const c = await client(port);
  assert.equal(c.alpn, 'echo');
  const payloads = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 3000));
  const replies = await Promise.all(payloads.map((p) => echo(c.openBidi(), p)));
  replies.forEach((r, i) => assert.ok(r.equals(payloads[i]), `stream ${i}: ${r.length} bytes back of ${payloads[i].length}`));
  const text = await y.metrics.text();
  assert.match(text, /switchyard_quic_streams_total\{listener="q",kind="bidi",initiator="peer"\} ([4-9]\d|\d{3,})/);
  assert.match(text, /switchyard_total_connections\{listener="q"\} [1-9]/);
  const received = Number(/switchyard_total_bytes_received\{listener="q"\} (\d+)/.exec(text)?.[1]);
  assert.ok(received >= payloads.reduce((n, p) => n + p.length, 0), `bytes received ${received}`);
});

test('a client that never reads: echo stops reading once its replies back up; memory stays bounded; others are served', { timeout: 60_000 }, async () => {
  const receivedNow = async () => Number(/switchyard_total_bytes_received\{listener="q"\} (\d+)/.exec(await y.metrics.text())?.[1] ?? 0);
  const before = await receivedNow();
  const c = await client(port);
  const stream = c.openBidi();
  // Never read: the client's receive window fills, the server's writes back stall, echo stops
  // reading, and the server's receive window stops the writer. 32 MiB offered, in 64 KiB writes.
  const total = 32 * 1024 * 1024;
  const chunk = randomBytes(64 * 1024);
  let offered = 0;
  const deadline = Date.now() + 20_000;
  while (offered < total && Date.now() < deadline) {
    offered += chunk.length;
    if (!stream.write(chunk)) {
      const drained = await Promise.race([new Promise<boolean>((r) => stream.once('drain', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 1500))]);
      if (!drained) break;
    }
  }
  // Wait until the server has taken all it will (the counter stops moving), bounded.
  let last = -1;
  let now = await receivedNow();
  for (let i = 0; i < 40 && now !== last; i++) {
    await new Promise((r) => setTimeout(r, 250));
    last = now;
    now = await receivedNow();
  }
  const taken = now - before;
  assert.ok(offered < total, `the writer was held back (offered ${offered} of ${total})`);
  // Two 1 MiB stream windows (ours, and the client's for the replies) plus the pipe's buffers.
  assert.ok(taken < 8 * 1024 * 1024, `the server took ${taken} bytes from a client that reads nothing`);
  const other = await client(port);
  assert.equal((await echo(other.openBidi(), Buffer.from('still here'))).toString(), 'still here');
  stream.destroy();
});

test('a client offering another application protocol is refused, and counted', async () => {
  const err = await rejection(client(port, { alpn: ['h3'] }));
  assert.ok(isQuicError(err) && err.code === 'QUIC_ALPN_MISMATCH', String(err));
  await until('the handshake failure metric', async () => /switchyard_quic_handshake_failures_total\{listener="q",reason="alpn"\} [1-9]/.test(await y.metrics.text()));
});

test('an untrusted certificate is refused unless insecure; a name it does not carry is refused', async () => {
  const untrusted = await rejection(connectQuic({ host: '127.0.0.1', port, alpn: ['echo'] }));
  assert.ok(isQuicError(untrusted) && untrusted.code === 'QUIC_CERTIFICATE_UNTRUSTED', String(untrusted));
  const insecure = await client(port, { ca: undefined, insecure: true });
  assert.equal((await echo(insecure.openBidi(), Buffer.from('anyway'))).toString(), 'anyway');
  const wrongName = await rejection(client(port, { serverName: 'not-this-host.test' }));
  assert.ok(isQuicError(wrongName) && wrongName.code === 'QUIC_CERTIFICATE_UNTRUSTED', String(wrongName));
});

test('stream and connection limits are enforced', async () => {
  const limited = await yard([
    { name: 'lim', protocol: 'quic', address: '127.0.0.1:0', tls: { issuer: 'internal' }, limits: { maxConnections: 1, maxStreams: { bidi: 2 } }, handler: { type: 'echo' } },
  ]);
  const p = limited.address('lim').port;
  const c = await client(p);
  const a = c.openBidi();
  const b = c.openBidi();
  a.write('a');
  b.write('b');
  assert.equal(c.streamsLeft('bidi'), 0);
  assert.throws(() => c.openBidi(), (err: unknown) => isQuicError(err) && err.code === 'QUIC_STREAM_LIMIT');
  const second = await rejection(client(p));
  assert.ok(isQuicError(second) && second.code === 'QUIC_CONNECTION_REFUSED', String(second));
  // Finishing the streams gives the credit back.
  assert.equal((await echo(a, Buffer.from('1'))).toString(), 'a1');
  assert.equal((await echo(b, Buffer.from('2'))).toString(), 'b2');
  await until('new stream credit', () => c.streamsLeft('bidi') > 0);
  assert.equal((await echo(c.openBidi(), Buffer.from('again'))).toString(), 'again');
});

test('an idle connection is closed after the idle timeout', async () => {
  const idle = await yard([
    { name: 'idle', protocol: 'quic', address: '127.0.0.1:0', tls: { issuer: 'internal' }, limits: { idleTimeout: '300ms' }, handler: { type: 'echo' } },
  ]);
  const c = await client(idle.address('idle').port);
  assert.equal(idle.inFlightByListener().idle, 1);
  const info = await c.closed;
  assert.equal(info.error?.code, 'QUIC_IDLE_TIMEOUT');
  await until('the server side to let go', () => idle.inFlightByListener().idle === 0);
});

test('stateless retry: the client comes back with a token and is served', async () => {
  const r = await yard([{ name: 'retry', protocol: 'quic', address: '127.0.0.1:0', tls: { issuer: 'internal' }, retry: true, handler: { type: 'echo' } }]);
  const c = await client(r.address('retry').port);
  assert.equal((await echo(c.openBidi(), Buffer.from('validated'))).toString(), 'validated');
  assert.match(await r.metrics.text(), /switchyard_quic_retries_total\{listener="retry"\} [1-9]/);
});

test('garbage datagrams are dropped and counted; the listener keeps serving', async () => {
  const s = createSocket('udp4');
  const junk = [Buffer.from('hello'), randomBytes(1300), Buffer.concat([Buffer.from([0xc3, 0, 0, 0, 1, 20]), randomBytes(1400)]), Buffer.alloc(0), Buffer.from([0x40])];
  for (const d of junk) await new Promise<void>((r) => s.send(d, port, '127.0.0.1', () => r()));
  s.close();
  const c = await client(port);
  assert.equal((await echo(c.openBidi(), Buffer.from('still here'))).toString(), 'still here');
  assert.match(await y.metrics.text(), /switchyard_quic_dropped_datagrams_total\{listener="q",reason="[a-z-]+"\} [1-9]/);
});

test('config errors name the field', async () => {
  const bad = async (l: Record<string, unknown>) => rejection(yard([{ name: 'bad', protocol: 'quic', address: '127.0.0.1:0', tls: { issuer: 'internal' }, handler: { type: 'echo' }, ...l }]));
  assert.match((await bad({ limits: { maxUdpPayload: 100 } })).message, /listeners\[0\]\.limits\.maxUdpPayload/);
  assert.match((await bad({ alpn: [] })).message, /listeners\[0\]\.alpn/);
  assert.match((await bad({ tls: { issuer: 'internal', alpn: ['h3'] } })).message, /listeners\[0\]\.tls\.alpn/);
  assert.match((await bad({ tls: undefined })).message, /listeners\[0\]\.tls/);
  assert.match((await bad({ handler: { type: 'static', root: '.' } })).message, /listeners\[0\]\.handler\.type/);
});

test('switchyard connect quic:// pipes stdin to a stream and prints the echo; refuses an untrusted server', async () => {
  const url = `quic://127.0.0.1:${port}`;
  const ok = await runCli(['connect', url, '--ca', root, '--wait', '300ms'], { input: 'over quic\n', timeoutMs: 30_000 });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'over quic\n');
  const insecure = await runCli(['connect', url, '--insecure', '--wait', '300ms'], { input: 'insecure\n', timeoutMs: 30_000 });
  assert.equal(insecure.code, 0, insecure.stderr);
  assert.equal(insecure.stdout, 'insecure\n');
  const untrusted = await runCli(['connect', url, '--wait', '300ms'], { input: 'x\n', timeoutMs: 30_000 });
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /--ca/);
  const wrongAlpn = await runCli(['connect', url, '--ca', root, '--alpn', 'h3'], { input: 'x\n', timeoutMs: 30_000 });
  assert.equal(wrongAlpn.code, 1);
  assert.match(wrongAlpn.stderr, /--alpn/);
});
