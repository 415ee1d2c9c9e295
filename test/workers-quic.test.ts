import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { request } from 'undici';
import { Http3Client } from '../src/http3/client.ts';
import { connectQuic, type QuicClientConnection, type QuicStream } from '../src/quic/index.ts';
import { dgramReusePort } from '../src/listeners/bind.ts';
import { startDaemon, type Daemon } from './helpers/daemon.ts';
import { makeLeaf, makeTestCa } from './helpers/tls-fixtures.ts';

// HTTP/3 and a quic listener (echo) with `workers: 2`, real processes. Where Node's dgram has reusePort (22.12+), each
// worker binds its own UDP socket with SO_REUSEPORT, so the kernel sends every datagram of a
// connection to the worker that holds it: fresh connections all get their answers, each
// connection's requests are served by one worker (the access log's pid), and no worker drops a
// datagram as one of a connection it does not know (the summed /metrics). Where it has not
// (Node 20), the workers share the primary's socket: HTTP/3 still answers, and the daemon says
// which way it runs.

const CONNECTIONS = 20;
const REQUESTS_PER_CONNECTION = 2;

const dir = mkdtempSync(join(tmpdir(), 'sy-workers-quic-'));
const configFile = join(dir, 'yard.json');
let daemon: Daemon | undefined;

after(() => {
  if (daemon && daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A UDP port nobody holds now (a quic listener on port 0 would make the workers share its socket). */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Writes `data` on a new stream, ends it, and collects what comes back (bounded by `ms`). */
function echo(stream: QuicStream, data: Buffer, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo within ${ms} ms`)), ms);
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
    stream.on('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.end(data);
  });
}

async function start(): Promise<{ d: Daemon; ca: string; port: number; quicPort: number; admin: string }> {
  const quicPort = await freeUdpPort();
  const ca = await makeTestCa(dir);
  const leaf = await makeLeaf(dir, ca, 'web', ['localhost']);
  writeFileSync(
    configFile,
    JSON.stringify({
      workers: 2,
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          tls: { certificates: [{ cert: leaf.cert, key: leaf.key }] },
          http3: true,
          routes: [{ match: { path: '/*' }, handler: { type: 'respond', body: 'hello' } }],
        },
        { name: 'q', protocol: 'quic', address: `127.0.0.1:${quicPort}`, tls: { certificates: [{ cert: leaf.cert, key: leaf.key }] }, handler: { type: 'echo' } },
        {
          name: 'admin',
          protocol: 'http',
          address: '127.0.0.1:0',
          middleware: { accessLog: false },
          routes: [{ match: { path: '/metrics' }, handler: { type: 'metrics' } }],
        },
      ],
      logging: { level: 'info' },
    }),
  );
  const d = await startDaemon([configFile], { timeoutMs: 60_000 });
  daemon = d;
  return { d, ca: readFileSync(ca.cert, 'utf8'), port: d.port('web'), quicPort, admin: d.urls.get('admin')! };
}

/** The pid of the access log line of each url served so far. */
function servedBy(d: Daemon): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of d.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    const rec = JSON.parse(line) as { pid?: number; msg?: string; url?: string };
    if (rec.msg === 'request' && rec.url && rec.pid) out.set(rec.url, rec.pid);
  }
  return out;
}

/** The summed value of a counter's series with `labels` on the admin /metrics (0 when absent). */
async function counter(admin: string, name: string, labels: string): Promise<number> {
  const res = await request(`${admin}metrics`);
  const text = await res.body.text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.split(' ').pop());
  return sum;
}

async function stop(d: Daemon): Promise<void> {
  d.child.kill('SIGTERM');
  const { code } = await d.exited;
  assert.equal(code, 0, 'the daemon drained and exited 0');
}

test(
  'workers: 2, Node with dgram reusePort: every fresh HTTP/3 connection is answered, all of its requests by one worker',
  { timeout: 180_000, skip: dgramReusePort() ? false : `Node ${process.versions.node} has no dgram reusePort (22.12+): the workers share one UDP socket (the next test)` },
  async () => {
    const { d, ca, port, quicPort, admin } = await start();
    assert.match(d.stdout(), /each worker binds its own UDP socket/, 'the daemon says how HTTP/3 gets its socket');
    const clients: Http3Client[] = [];
    const quicClients: QuicClientConnection[] = [];
    try {
      for (let c = 0; c < CONNECTIONS / 2; c++) {
        const conn = await connectQuic({ host: '127.0.0.1', port: quicPort, alpn: ['echo'], ca, serverName: 'localhost' });
        quicClients.push(conn);
        for (let s = 0; s < 2; s++) {
          const data = Buffer.from(`quic ${c} stream ${s}`);
          assert.deepEqual(await echo(conn.openBidi(), data, 15_000), data, `quic connection ${c} stream ${s} echoed`);
        }
      }
      for (let c = 0; c < CONNECTIONS; c++) {
        // A per-request bound, not a timing assertion: a datagram sent to the wrong worker would stall this.
        const client = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost', timeout: 15_000 });
        clients.push(client);
        for (let r = 0; r < REQUESTS_PER_CONNECTION; r++) {
          const res = await client.request({ path: `/c${c}/r${r}` });
          assert.equal(res.status, 200, `connection ${c} request ${r}`);
          assert.equal(res.body.toString(), 'hello');
        }
      }
      // Every connection is still open: none of its datagrams can be a late one of a closed connection.
      const unknown = await counter(admin, 'switchyard_quic_dropped_datagrams_total', 'reason="unknown-connection"');
      assert.equal(unknown, 0, 'no worker got a datagram of a connection another worker holds (HTTP/3 or quic)');
    } finally {
      for (const c of clients) await c.close().catch(() => undefined);
      for (const c of quicClients) await Promise.race([c.close(), new Promise((r) => setTimeout(r, 500))]).catch(() => undefined);
    }

    // The access log is written as requests end; wait (bounded) until every request is in it.
    let by = servedBy(d);
    for (let i = 0; i < 100 && by.size < CONNECTIONS * REQUESTS_PER_CONNECTION; i++) {
      await new Promise((r) => setTimeout(r, 50));
      by = servedBy(d);
    }
    const workers = new Set<number>();
    for (let c = 0; c < CONNECTIONS; c++) {
      const pids = new Set<number>();
      for (let r = 0; r < REQUESTS_PER_CONNECTION; r++) {
        const pid = by.get(`/c${c}/r${r}`);
        assert.ok(pid, `the access log has /c${c}/r${r}`);
        pids.add(pid);
        workers.add(pid);
      }
      assert.equal(pids.size, 1, `connection ${c}'s requests were served by one worker`);
    }
    // The source ports are the kernel's: both workers serving is likely, not certain; it is not asserted.

    // An upgrade (SIGUSR2 to the primary): new workers bind their own sockets beside the old
    // ones, which close theirs once their connections are gone; fresh connections are answered.
    const oldPids = new Set(workers);
    d.child.kill('SIGUSR2');
    for (let i = 0; i < 1200 && !/upgrade: new workers .* are serving/.test(d.stdout()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(d.stdout(), /upgrade: new workers .* are serving/, `the upgrade completed\n${d.stdout().slice(-3000)}${d.stderr().slice(-2000)}`);
    const after: Http3Client[] = [];
    try {
      for (let c = 0; c < CONNECTIONS / 2; c++) {
        const client = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost', timeout: 30_000 });
        after.push(client);
        const res = await client.request({ path: `/after/${c}` });
        assert.equal(res.body.toString(), 'hello', `connection ${c} after the upgrade`);
        const conn = await connectQuic({ host: '127.0.0.1', port: quicPort, alpn: ['echo'], ca, serverName: 'localhost' });
        const data = Buffer.from(`after ${c}`);
        try {
          assert.deepEqual(await echo(conn.openBidi(), data, 30_000), data, `quic connection ${c} after the upgrade`);
        } finally {
          await Promise.race([conn.close(), new Promise((r) => setTimeout(r, 500))]).catch(() => undefined);
        }
      }
    } finally {
      for (const c of after) await c.close().catch(() => undefined);
    }
    by = servedBy(d);
    for (let i = 0; i < 100 && ![...by.keys()].filter((u) => u.startsWith('/after/')).length; i++) {
      await new Promise((r) => setTimeout(r, 50));
      by = servedBy(d);
    }
    for (const [url, pid] of by) if (url.startsWith('/after/')) assert.ok(!oldPids.has(pid), `${url} was served by a new worker, not ${pid}`);

    d.child.kill('SIGTERM');
    const { code } = await d.exited;
    assert.equal(code, 0, `the daemon drained and exited 0 (connections served by ${workers.size} worker(s))\n${d.stdout().slice(-3000)}\n${d.stderr().slice(-3000)}`);
  },
);

test(
  'workers: 2, Node without dgram reusePort: HTTP/3 still answers on the shared socket, and the daemon says so',
  { timeout: 120_000, skip: dgramReusePort() ? `Node ${process.versions.node} has dgram reusePort: each worker binds its own socket (the test above)` : false },
  async () => {
    const { d, ca, port } = await start();
    assert.match(d.stdout() + d.stderr(), /the workers share one UDP socket/, 'the daemon says how HTTP/3 gets its socket');
    // Datagrams reach the wrong worker now and then: retransmissions (seconds) make up for it.
    const client = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost', timeout: 60_000 });
    try {
      const res = await client.request({ path: '/' });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'hello');
    } finally {
      await client.close().catch(() => undefined);
    }
    await stop(d);
  },
);
