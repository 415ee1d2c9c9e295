import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync, existsSync, watch, lstatSync, rmSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, ListenError, type Yard } from '../src/index.ts';
import { rawExchange, run, statusOf } from './helpers/net.ts';
import { runCli } from './helpers/daemon.ts';

const dir = mkdtempSync(join(tmpdir(), 'sy-listeners-'));
const yards: Yard[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
});

async function start(config: unknown): Promise<Yard> {
  const y = await serve(config, { baseDir: dir, logLevel: 'silent' });
  yards.push(y);
  return y;
}

test('tcp echo with net and with nc', async () => {
  const y = await start({ listeners: [{ name: 't', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } }] });
  const { port } = y.address('t');
  const got = await rawExchange(port, 'hello\nworld\n', { end: true });
  assert.equal(got.toString(), 'hello\nworld\n');
  const nc = await run('nc', ['-N', '127.0.0.1', String(port)], { input: 'via nc\n' });
  assert.equal(nc.stdout, 'via nc\n');
});

test('tcp echo passes 8 MiB intact with a slow reader (backpressure, no loss)', async () => {
  const y = await start({ listeners: [{ name: 't', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } }] });
  const payload = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  const got = await new Promise<Buffer>((resolve, reject) => {
    const s = connect(y.address('t'));
    const chunks: Buffer[] = [];
    s.on('connect', () => s.end(payload));
    s.on('data', (d) => {
      chunks.push(d);
      s.pause();
      setTimeout(() => s.resume(), 1);
    });
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
  assert.equal(got.length, payload.length);
  assert.ok(got.equals(payload));
});

test('udp echo with dgram and with nc', async () => {
  const y = await start({ listeners: [{ name: 'u', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'echo' } }] });
  const { port } = y.address('u');
  const client = createSocket('udp4');
  const reply = await new Promise<Buffer>((resolve) => {
    client.on('message', (m) => resolve(m));
    client.send('ping', port, '127.0.0.1');
  });
  client.close();
  assert.equal(reply.toString(), 'ping');
  const nc = await run('nc', ['-u', '-w1', '127.0.0.1', String(port)], { input: 'over nc\n' });
  assert.equal(nc.stdout, 'over nc\n');
});

test('udp drops datagrams over maxDatagramSize and counts them', async () => {
  const y = await start({ listeners: [{ name: 'u', protocol: 'udp', address: '127.0.0.1:0', limits: { maxDatagramSize: 16 }, handler: { type: 'echo' } }] });
  const { port } = y.address('u');
  const client = createSocket('udp4');
  const replies: string[] = [];
  client.on('message', (m) => replies.push(m.toString()));
  client.send('x'.repeat(100), port, '127.0.0.1');
  client.send('small', port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 300));
  client.close();
  assert.deepEqual(replies, ['small']);
  const text = await y.metrics.text();
  assert.match(text, /switchyard_total_requests\{listener="u",route="echo",status="too_large"\} 1/);
});

test('unix echo: socket file is 0600, removed on stop; a stale socket file is replaced', async () => {
  const path = join(dir, 'echo.sock');
  // A stale socket file: left by a process killed with SIGKILL, which gets no chance to unlink it.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(path), 'stale socket file should exist for this test');

  const y = await serve({ listeners: [{ name: 'x', protocol: 'unix', path, handler: { type: 'echo' } }] }, { baseDir: dir, logLevel: 'silent' });
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const nc = await run('nc', ['-N', '-U', path], { input: 'unix hello\n' });
  assert.equal(nc.stdout, 'unix hello\n');
  await y.stop(100);
  assert.equal(existsSync(path), false);
});

test('unix: a listener whose socket is handed over stops without the file ever leaving its path', async () => {
  const sub = mkdtempSync(join(dir, 'handover-'));
  const path = join(sub, 'kept.sock');
  const y = await serve({ listeners: [{ name: 'k', protocol: 'unix', path, handler: { type: 'echo' } }] }, { baseDir: dir, logLevel: 'silent' });
  const inode = lstatSync(path).ino;
  // Every name change in the folder (an unlink, a link, a rename) is an event here: a stop that
  // removes the file and puts it back, however quickly, shows up.
  const seen: string[] = [];
  const watcher = watch(sub, (event, name) => seen.push(`${event}:${name}`));
  try {
    y.keepUnixSocketFiles();
    await y.stop(100);
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    watcher.close();
  }
  assert.deepEqual(seen, []);
  assert.equal(lstatSync(path).ino, inode, 'the same socket file is still there');
  rmSync(path);
});

test('unix: a stop removes only its own socket file, not one that has replaced it', async () => {
  const path = join(dir, 'replaced.sock');
  const y = await serve({ listeners: [{ name: 'r', protocol: 'unix', path, handler: { type: 'echo' } }] }, { baseDir: dir, logLevel: 'silent' });
  // Another process's socket moved in under the same name while this one runs.
  const other = join(dir, 'other.sock');
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(other)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout.once('data', r));
  renameSync(other, path);
  const theirs = lstatSync(path).ino;
  await y.stop(100);
  assert.equal(lstatSync(path).ino, theirs, 'the other socket file is left alone');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  rmSync(path);
});

test('unix: a live socket is "in use", a regular file is never deleted', async () => {
  const path = join(dir, 'live.sock');
  const y = await start({ listeners: [{ name: 'a', protocol: 'unix', path, mode: '0660', handler: { type: 'echo' } }] });
  assert.equal(statSync(path).mode & 0o777, 0o660);
  await assert.rejects(
    serve({ listeners: [{ name: 'b', protocol: 'unix', path, handler: { type: 'echo' } }] }, { logLevel: 'silent' }),
    (err: unknown) => err instanceof ListenError && /already in use/.test(err.message),
  );
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  await assert.rejects(
    serve({ listeners: [{ name: 'c', protocol: 'unix', path: file, handler: { type: 'echo' } }] }, { logLevel: 'silent' }),
    (err: unknown) => err instanceof ListenError && /not a socket/.test(err.message),
  );
  assert.ok(existsSync(file));
  void y;
});

test('unix: abstract namespace names (@name) need no file', async () => {
  const name = `switchyard-test-${process.pid}`;
  const y = await start({ listeners: [{ name: 'abs', protocol: 'unix', path: `@${name}`, handler: { type: 'echo' } }] });
  assert.deepEqual(y.boundAddress('abs'), { path: `@${name}` });
  const got = await new Promise<string>((resolve, reject) => {
    const s = connect({ path: `\0${name}` });
    let out = '';
    s.on('connect', () => s.end('abstract\n'));
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
  assert.equal(got, 'abstract\n');
});

test('maxConnections: connections past the limit are closed at accept', async () => {
  const y = await start({ listeners: [{ name: 't', protocol: 'tcp', address: '127.0.0.1:0', limits: { maxConnections: 1 }, handler: { type: 'echo' } }] });
  const { port } = y.address('t');
  const first = connect({ port, host: '127.0.0.1' });
  await new Promise((r) => first.once('connect', r));
  first.write('a');
  await new Promise((r) => first.once('data', r));
  const second = await rawExchange(port, 'b', { timeoutMs: 1000 });
  assert.equal(second.length, 0, 'second connection must get no echo');
  first.destroy();
});

test('idle tcp connections are closed after idleTimeout', async () => {
  const y = await start({ listeners: [{ name: 't', protocol: 'tcp', address: '127.0.0.1:0', limits: { idleTimeout: '200ms' }, handler: { type: 'echo' } }] });
  const closed = await new Promise<boolean>((resolve) => {
    const s = connect(y.address('t'));
    s.on('close', () => resolve(true));
    s.on('error', () => undefined);
    setTimeout(() => resolve(false), 5000);
  });
  assert.ok(closed, 'server should close an idle connection');
});

test('http echo returns request line, headers and body as JSON', async () => {
  const y = await start({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/echo/*' }, handler: { type: 'echo' } }] }] });
  const res = await fetch(`http://127.0.0.1:${y.address('w').port}/echo/a?b=1`, { method: 'POST', body: 'payload', headers: { 'x-test': 'yes' } });
  assert.equal(res.status, 200);
  const j = (await res.json()) as { method: string; url: string; headers: Record<string, string>; body: string };
  assert.equal(j.method, 'POST');
  assert.equal(j.url, '/echo/a?b=1');
  assert.equal(j.headers['x-test'], 'yes');
  assert.equal(j.body, 'payload');
});

function httpYard(limits: Record<string, unknown>) {
  return start({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', limits, routes: [{ handler: { type: 'echo' } }] }] });
}

test('413 for a declared body over maxBodySize, and for a chunked one', async () => {
  const y = await httpYard({ maxBodySize: '1KiB' });
  const { port } = y.address('w');
  const declared = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', 'x'.repeat(2000), `http://127.0.0.1:${port}/`]);
  assert.equal(declared.stdout, '413');
  const chunk = 'x'.repeat(600);
  const raw = await rawExchange(port, `POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`);
  assert.equal(statusOf(raw), 413);
  const small = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', 'x'.repeat(1000), `http://127.0.0.1:${port}/`]);
  assert.equal(small.stdout, '200');
});

test('431 for headers over maxHeaderSize', async () => {
  const y = await httpYard({ maxHeaderSize: '2KiB' });
  const raw = await rawExchange(y.address('w').port, `GET / HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(4000)}\r\n\r\n`);
  assert.equal(statusOf(raw), 431);
});

test('408 and close for a slowloris client that never finishes its headers', async () => {
  const y = await httpYard({ headerTimeout: '300ms', requestTimeout: '600ms' });
  const { port } = y.address('w');
  const result = await new Promise<{ data: string; closed: boolean }>((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let data = '';
    const timer = setInterval(() => s.write('x-slow: 1\r\n'), 100);
    s.on('connect', () => s.write('GET / HTTP/1.1\r\nhost: a\r\n'));
    s.on('data', (d) => (data += d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(timer);
      resolve({ data, closed: true });
    });
    setTimeout(() => {
      clearInterval(timer);
      s.destroy();
      resolve({ data, closed: false });
    }, 8000);
  });
  assert.ok(result.closed, 'the server must close the slow connection');
  assert.equal(statusOf(result.data), 408);
});

test('400 for malformed requests, and the listener keeps serving', async () => {
  const y = await httpYard({});
  const { port } = y.address('w');
  assert.equal(statusOf(await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n')), 400);
  assert.equal(statusOf(await rawExchange(port, 'GET / HTTP/1.1\r\nhost: a\r\n\r\n', { timeoutMs: 500 })), 200);
});

test('port in use: ListenError from the library, one clear line and exit 1 from the CLI', async () => {
  const y = await start({ listeners: [{ name: 't', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } }] });
  const { port } = y.address('t');
  await assert.rejects(
    serve({ listeners: [{ name: 'again', protocol: 'tcp', address: `127.0.0.1:${port}`, handler: { type: 'echo' } }] }, { logLevel: 'silent' }),
    (err: unknown) => err instanceof ListenError && err.listener === 'again' && /already in use/.test(err.message),
  );
  const cfg = join(dir, 'inuse.yaml');
  writeFileSync(cfg, `listeners:\n  - name: clash\n    protocol: tcp\n    address: 127.0.0.1:${port}\n    handler: { type: echo }\n`);
  const r = await runCli(['serve', cfg]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /listener "clash" cannot listen on 127\.0\.0\.1:\d+: address already in use/);
});

test('http: connections past maxConnections are closed; idle keep-alive connections end after keepAliveTimeout', async () => {
  const y = await start({
    listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', limits: { maxConnections: 1, keepAliveTimeout: '1s' }, routes: [{ handler: { type: 'respond', body: 'x' } }] }],
  });
  const { port } = y.address('w');
  const first = connect({ port, host: '127.0.0.1' });
  let firstData = '';
  first.on('data', (d) => (firstData += d));
  const firstClosed = new Promise<void>((r) => first.on('close', () => r()));
  first.write('GET / HTTP/1.1\r\nhost: a\r\n\r\n');
  while (!firstData.includes('\r\n\r\nx')) await new Promise((r) => setTimeout(r, 10));
  assert.match(firstData, /keep-alive: timeout=1\r\n/i, 'the configured keep-alive timeout is the one in force');
  // The first connection is open and idle: a second one is over the limit.
  const second = await rawExchange(port, 'GET / HTTP/1.1\r\nhost: a\r\n\r\n', { timeoutMs: 1000 });
  assert.equal(second.length, 0, 'the connection over the limit gets no answer');
  await firstClosed; // ended by the server once idle for keepAliveTimeout
  assert.equal(statusOf(await rawExchange(port, 'GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n')), 200);
});
