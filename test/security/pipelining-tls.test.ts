import { test, after, afterEach, before, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { killDaemon, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { makeLeaf, makeTestCa, type Files } from '../helpers/tls-fixtures.ts';

// Pipelining over TLS. A TLS connection is read by node:http's own reader (in C++) until it
// pipelines, and in slices from then on (src/listeners/http/pipeline.ts). Both ways must give
// every answer, in order, and a flood must stay within the memory bound of plain text:
// 20 connections each send 5,000 pipelined GETs of a 100 KB file and never read; the daemon's
// resident memory stays within 64 MB of where it started, and other clients are served.

const CONNECTIONS = 20;
const REQUESTS = 5_000;
// As in pipelining-memory.test.ts: Node 24 leaves more dead objects in RSS between collections.
const BUDGET = (Number(process.versions.node.split('.')[0]) >= 24 ? 112 : 64) * 1024 * 1024;
const WATCH_MS = 3_000;
const FILES = 10;

const dir = mkdtempSync(join(tmpdir(), 'sy-pipeline-tls-'));
let daemon: Daemon | undefined;
let configFile: string;
let ca: Files;
let caPem: string;
const big = Buffer.alloc(100 * 1024, 0x61);

before(async () => {
  ca = await makeTestCa(dir);
  caPem = readFileSync(ca.cert, 'utf8');
  const leaf = await makeLeaf(dir, ca, 'site', ['localhost']);
  writeFileSync(join(dir, 'big.bin'), big);
  for (let i = 0; i < FILES; i++) writeFileSync(join(dir, `f${i}.txt`), `file ${i}\n`);
  const config = {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        tls: { certificates: [{ cert: leaf.cert, key: leaf.key }] },
        routes: [
          { match: { path: '/static/*' }, handler: { type: 'static', root: dir } },
          { match: { path: '/ping' }, handler: { type: 'respond', body: 'pong\n' } },
        ],
      },
    ],
    logging: { level: 'warn' },
  };
  configFile = join(dir, 'yard.json');
  writeFileSync(configFile, JSON.stringify(config));
});

beforeEach(async () => {
  daemon = await startDaemon([configFile]);
});
afterEach(async () => {
  await killDaemon(daemon);
});
after(() => undefined);

function connectTls(port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem, ALPNProtocols: ['http/1.1'] }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads from `s` until `done(text)` holds, or fails after `timeoutMs`. */
function readUntil(s: tls.TLSSocket, done: (text: string) => boolean, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`timed out; read ${text.length} bytes`)), timeoutMs);
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (done(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The bodies of `count` small responses in `text`, in order. */
function bodiesOf(text: string): string[] {
  return [...text.matchAll(/HTTP\/1\.1 200 OK\r\n[\s\S]*?\r\n\r\n(file \d+\n)/g)].map((m) => m[1]);
}

test('keep-alive requests one at a time, then a pipelined burst on the same TLS connection: every answer, in order', { timeout: 60_000 }, async () => {
  const s = await connectTls(daemon!.port('web'));
  try {
    // One at a time: node's own reader.
    for (let i = 0; i < 5; i++) {
      const got = readUntil(s, (t) => t.endsWith(`file ${i}\n`));
      s.write(`GET /static/f${i}.txt HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      assert.match(await got, new RegExp(`^HTTP/1\\.1 200 OK\\r\\n[\\s\\S]*\\r\\n\\r\\nfile ${i}\\n$`));
      s.removeAllListeners('data');
    }
    // Then 300 pipelined in one write (more than one TLS record): the reader changes on the way.
    const n = 300;
    const burst = Array.from({ length: n }, (_, i) => `GET /static/f${i % FILES}.txt HTTP/1.1\r\nHost: localhost\r\n\r\n`).join('');
    const got = readUntil(s, (t) => bodiesOf(t).length >= n);
    s.write(burst);
    const bodies = bodiesOf(await got);
    assert.equal(bodies.length, n);
    assert.deepEqual(
      bodies,
      Array.from({ length: n }, (_, i) => `file ${i % FILES}\n`),
      'answers in the order asked',
    );
  } finally {
    s.destroy();
  }
});

test('20 x 5,000 pipelined GETs over TLS never read: RSS bounded, others still served', { timeout: 60_000 }, async () => {
  const d = daemon!;
  const port = d.port('web');
  const pid = d.child.pid!;
  const agent = new Agent({ connect: { ca: caPem, servername: 'localhost' } });
  const get = async (path: string): Promise<number> => {
    const r = await request(`https://127.0.0.1:${port}${path}`, { dispatcher: agent, signal: AbortSignal.timeout(5000) });
    await r.body.arrayBuffer();
    return r.statusCode;
  };
  for (let i = 0; i < 20; i++) assert.equal(await get('/static/big.bin'), 200);
  const rssOf = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  const baseline = rssOf();
  const burst = Buffer.from(Array.from({ length: REQUESTS }, () => 'GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n').join(''));
  const sockets: tls.TLSSocket[] = [];
  try {
    for (let i = 0; i < CONNECTIONS; i++) {
      const s = await connectTls(port);
      s.on('error', () => undefined);
      s.pause(); // never read
      s.write(burst);
      sockets.push(s);
    }
    let peak = baseline;
    const served: number[] = [];
    const until = Date.now() + WATCH_MS;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      peak = Math.max(peak, rssOf());
      served.push(await get('/ping'));
    }
    const grown = peak - baseline;
    assert.ok(grown <= BUDGET, `RSS grew ${(grown / 2 ** 20).toFixed(1)} MB (from ${(baseline / 2 ** 20).toFixed(1)} MB), more than ${BUDGET / 2 ** 20} MB`);
    assert.ok(served.length > 0 && served.every((s) => s === 200), `other clients served meanwhile: ${served.join(',')}`);
  } finally {
    for (const s of sockets) s.destroy();
    await agent.close();
  }
});
