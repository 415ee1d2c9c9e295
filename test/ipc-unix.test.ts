import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { listenUnix, connectUnix } from '../src/ipc/transports/unix.ts';
import { IpcError } from '../src/ipc/errors.ts';
import { connectForFds, receiveFd, sendFd } from '../src/ipc/fd-passing.ts';
import { listenSocketFile } from '../src/ipc/socket-file.ts';
import type { Channel } from '../src/ipc/channel.ts';

// Unix socket channels with real sockets and real processes. No timing assertions: every wait is
// on an event, and loops are bounded by message counts.

const dir = mkdtempSync(join(tmpdir(), 'switchyard-ipc-unix-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

async function firstChannel(server: AsyncIterable<Channel>): Promise<Channel> {
  for await (const c of server) return c;
  throw new Error('server ended without a channel');
}

async function echo(channel: Channel): Promise<void> {
  try {
    for await (const m of channel) await channel.send(m);
  } catch {
    // peer went away
  }
  await channel.close();
}

test('unix: round trip, socket file mode 0600, peer credentials both ways', async () => {
  const path = join(dir, 'rt.sock');
  const server = await listenUnix(path);
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.ok(statSync(path).isSocket());
    const accepted = firstChannel(server);
    const client = await connectUnix(path);
    const srv = await accepted;
    assert.equal(client.transport, 'unix');
    assert.deepEqual(srv.peer, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    assert.deepEqual(client.peer, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    void echo(srv);
    await client.send(enc('ping'));
    assert.equal(dec(await client.receive()), 'ping');
    await client.close();
  } finally {
    await server.close();
  }
  assert.equal(existsSync(path), false, 'socket file removed on close');
});

test('unix: a stale socket file is replaced, a live one is in use, a regular file is never removed', async () => {
  const path = join(dir, 'stale.sock');
  const first = await listenUnix(path);
  await assert.rejects(listenUnix(path), (e: IpcError) => e.code === 'SWITCHYARD_IPC_PERMISSION' && /in use/.test(e.message));
  await first.close();
  // A stale socket file: bind one from a process that is then killed.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.stdout.write('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.ok(statSync(path).isSocket(), 'the killed process left its socket file');
  const second = await listenUnix(path);
  await second.close();
  const plain = join(dir, 'plain-file');
  writeFileSync(plain, 'keep me');
  await assert.rejects(listenUnix(plain), /not a socket/);
  assert.ok(existsSync(plain));
});

test('unix: 1 GiB in 256 KiB messages arrives intact (hash both sides)', async () => {
  const path = join(dir, 'bulk.sock');
  const server = await listenUnix(path);
  try {
    const accepted = firstChannel(server);
    const client = await connectUnix(path);
    const srv = await accepted;
    const count = 4096;
    const size = 256 * 1024;
    // Slices of one random pool: fresh random bytes per message would cost more than the transfer.
    const pool = randomBytes(4 * 1024 * 1024 + size);
    const sent = createHash('sha256');
    const received = createHash('sha256');
    const reader = (async () => {
      let bytes = 0;
      for await (const m of srv) {
        received.update(m);
        bytes += m.byteLength;
      }
      return bytes;
    })();
    for (let i = 0; i < count; i++) {
      const off = (i * 40_961) % (pool.length - size);
      const m = pool.subarray(off, off + size);
      sent.update(m);
      await client.send(m);
    }
    await client.close();
    assert.equal(await reader, count * size);
    assert.equal(received.digest('hex'), sent.digest('hex'));
  } finally {
    await server.close();
  }
});

test('unix: abstract namespace (no file), oversize and empty messages refused', async () => {
  const name = `@switchyard-test-${process.pid}-${Date.now()}`;
  const server = await listenUnix(name, { maxMessageSize: 1024 });
  try {
    assert.equal(server.address, name);
    const accepted = firstChannel(server);
    const client = await connectUnix(name, { maxMessageSize: 1024 });
    const srv = await accepted;
    assert.equal(srv.peer?.pid, process.pid);
    void echo(srv);
    await client.send(enc('abstract'));
    assert.equal(dec(await client.receive()), 'abstract');
    await assert.rejects(client.send(new Uint8Array(0)), (e: IpcError) => e.code === 'SWITCHYARD_IPC_EMPTY_MESSAGE');
    await assert.rejects(client.send(new Uint8Array(1025)), (e: IpcError) => e.code === 'SWITCHYARD_IPC_MESSAGE_TOO_LARGE');
    await client.close();
  } finally {
    await server.close();
  }
});

test('unix: a peer killed mid-stream gives the reader PEER_GONE, not a hang', async () => {
  const path = join(dir, 'killed.sock');
  const server = await listenUnix(path);
  try {
    const accepted = firstChannel(server);
    // A plain client that sends one frame ("hi"), then a partial frame, then waits to be killed.
    const script = `const s = require('net').connect(${JSON.stringify(path)}, () => { const h = Buffer.alloc(4); h.writeUInt32BE(2); s.write(Buffer.concat([h, Buffer.from('hi'), Buffer.from([0, 0, 1, 0, 7])])); }); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const srv = await accepted;
    assert.equal(srv.peer?.pid, child.pid);
    assert.equal(dec(await srv.receive()), 'hi');
    child.kill('SIGKILL');
    await assert.rejects(srv.receive(), (e: IpcError) => e.code === 'SWITCHYARD_IPC_PEER_GONE');
    await srv.close();
  } finally {
    await server.close();
  }
});

function runAsNobody(): string[] | undefined {
  const id = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
  if (id.status !== 0) return undefined;
  const group = spawnSync('getent', ['group', 'nogroup'], { encoding: 'utf8' }).status === 0 ? 'nogroup' : 'nobody';
  if (spawnSync('setpriv', ['--version']).status === 0) return ['setpriv', '--reuid=nobody', `--regid=${group}`, '--clear-groups'];
  if (spawnSync('runuser', ['--version']).status === 0) return ['runuser', '-u', 'nobody', '--'];
  return undefined;
}

test('unix: allow list refuses a uid not allowed before reading, and still admits the allowed one', async (t) => {
  // A developer's non-root machine may skip this; CI (root, util-linux installed) must run it.
  const unmet = (reason: string) => {
    if (process.env.CI) assert.fail(`${reason}: CI must run this test`);
    t.skip(reason);
  };
  if (process.getuid?.() !== 0) {
    unmet('needs root to run a client as another user (nobody)');
    return;
  }
  const wrapper = runAsNobody();
  if (!wrapper) {
    unmet('neither setpriv nor runuser (or no user nobody) on this machine');
    return;
  }
  // Reachable by nobody: a 0755 directory and a 0666 socket, so only the uid check refuses.
  const open = mkdtempSync(join(tmpdir(), 'switchyard-ipc-allow-'));
  chmodSync(open, 0o755);
  const path = join(open, 'allow.sock');
  const refusedPeers: (number | undefined)[] = [];
  const server = await listenUnix(path, { mode: 0o666, allow: { uids: [0] }, onRefused: (p) => refusedPeers.push(p?.uid) });
  const channels: Channel[] = [];
  const serving = (async () => {
    for await (const c of server) {
      channels.push(c);
      void echo(c);
    }
  })();
  try {
    assert.equal(statSync(path).mode & 0o777, 0o666);
    // The refused client sends a frame and reports whether anything came back before the close.
    const script = `const s = require('net').connect(${JSON.stringify(path)}); let got = 0; s.on('connect', () => { const h = Buffer.alloc(4); h.writeUInt32BE(5); s.write(Buffer.concat([h, Buffer.from('hello')])); }); s.on('data', (d) => { got += d.length; }); s.on('error', () => {}); s.on('close', () => { process.stdout.write(JSON.stringify({ uid: process.getuid(), got })); });`;
    const [cmd, ...args] = [...wrapper, process.execPath, '-e', script];
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    const result = JSON.parse(out) as { uid: number; got: number };
    assert.notEqual(result.uid, 0, 'the client really ran as another user');
    assert.equal(result.got, 0, 'nothing was answered to the refused peer');
    assert.equal(server.refused, 1);
    assert.deepEqual(refusedPeers, [result.uid]);
    assert.equal(channels.length, 0, 'no channel was handed out for the refused peer');
    // The allowed uid (root) still gets through.
    const client = await connectUnix(path);
    await client.send(enc('root ok'));
    assert.equal(dec(await client.receive()), 'root ok');
    await client.close();
    assert.equal(channels.length, 1);
    assert.equal(channels[0]!.peer?.uid, 0);
  } finally {
    await server.close();
    await serving;
    rmSync(open, { recursive: true, force: true });
  }
});

test('fd passing: a listening TCP socket, a file and a connected socket go to a child over SCM_RIGHTS; the child serves a real HTTP request', async () => {
  const path = join(dir, 'fds.sock');
  const viaServer = net.createServer();
  await listenSocketFile(viaServer, path, 0o600);
  const viaAccepted = once(viaServer, 'connection') as Promise<[net.Socket]>;
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/ipc-fd-child.ts', import.meta.url)), path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const [via] = await viaAccepted;

    // 1. A listening TCP server; the parent's own copy answers differently, and is closed once passed.
    const tcp = http.createServer((_req, res) => res.end('served by parent'));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const port = (tcp.address() as net.AddressInfo).port;
    await sendFd(via, tcp);

    // 2. An open file.
    const filePath = join(dir, 'passed.txt');
    writeFileSync(filePath, 'contents read by the child');
    const fh = await open(filePath, 'r');
    await sendFd(via, fh);

    // 3. A connected TCP socket (accepted here, paused so the parent never reads from it).
    const side = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve) => side.listen(0, '127.0.0.1', resolve));
    const accepted = once(side, 'connection') as Promise<[net.Socket]>;
    const peer = net.connect((side.address() as net.AddressInfo).port, '127.0.0.1');
    const [conn] = await accepted;
    await sendFd(via, conn);

    let out = '';
    child.stdout!.setEncoding('utf8');
    for await (const chunk of child.stdout!) {
      out += chunk;
      if (out.includes('\n')) break;
    }
    const report = JSON.parse(out.split('\n')[0]!) as { ready: boolean; pid: number; file: string; listening: boolean };
    assert.equal(report.pid, child.pid);
    assert.equal(report.file, 'contents read by the child');
    assert.equal(report.listening, true);

    // The parent lets go of its copies; the child alone holds the listening socket and the connection.
    await fh.close();
    conn.destroy();
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    side.close();

    let greeting = '';
    peer.setEncoding('utf8');
    for await (const chunk of peer) greeting += chunk;
    assert.equal(greeting, `hello from child ${child.pid}\n`);

    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/hello', agent: false }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        })
        .on('error', reject);
    });
    assert.equal(body, `served by child ${child.pid} for /hello`);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit').catch(() => undefined);
    await new Promise<void>((resolve) => viaServer.close(() => resolve()));
  }
});

test('fd passing: receiving from a peer that went away is PEER_GONE', async () => {
  const path = join(dir, 'fds-gone.sock');
  const viaServer = net.createServer((s) => s.destroy());
  await listenSocketFile(viaServer, path, 0o600);
  try {
    const via = await connectForFds(path);
    await assert.rejects(receiveFd(via), (e: IpcError) => e.code === 'SWITCHYARD_IPC_PEER_GONE');
    via.destroy();
  } finally {
    await new Promise<void>((resolve) => viaServer.close(() => resolve()));
  }
});
