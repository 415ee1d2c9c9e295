import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createH2Server, createSecureServer as createH2SecureServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { benchOptions, type BenchCliOptions } from '../src/cli/bench.ts';
import { Http1ResponseParser, ResponseParseError } from '../src/load/http1-parser.ts';
import { ioUringUnavailable } from '../src/load/io-uring.ts';
import { LoadStats, parseTarget, runBench, type LoadReport } from '../src/load/index.ts';
import * as hdr from 'hdr-histogram-js';
import { makeLeaf, makeTestCa } from './helpers/tls-fixtures.ts';

// `switchyard bench` against real servers on loopback: exact counts, keep-alive, pipelining,
// chunked bodies, errors by kind, timeouts, the open model, h2, ws, tcp and udp round trips, and
// the CLI's JSON. Counts are asserted, never timings.

const CLI = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

/** Runs a bench through the same option checks as the CLI. */
function bench(url: string, o: Partial<BenchCliOptions>): Promise<LoadReport> {
  const cli: BenchCliOptions = { connections: 4, header: [], timeout: 2000, warmup: 0, ...o };
  return runBench(benchOptions(parseTarget(url), cli));
}

function listen<S extends NetServer | HttpServer>(server: S): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: NetServer | HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as HttpServer).closeAllConnections?.();
  });
}

/** A node:http server counting the requests and connections it served. */
async function countingServer(answer: (n: number) => number = () => 200, body: (res: import('node:http').ServerResponse) => void = (res) => res.end('hello')) {
  const counts = { requests: 0, connections: 0 };
  const server = createHttpServer((req, res) => {
    counts.requests++;
    req.resume();
    req.on('end', () => {
      res.statusCode = answer(counts.requests);
      body(res);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => counts.connections++);
  const port = await listen(server);
  return { server, port, counts };
}

/** A raw TCP server: `onData` sees each connection's bytes. */
async function rawServer(onData: (socket: Socket, chunk: Buffer, state: { buffered: string; requests: number }) => void) {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const state = { buffered: '', requests: 0 };
    socket.on('data', (chunk: Buffer) => onData(socket, chunk, state));
  });
  const port = await listen(server);
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return closeServer(server);
    },
  };
}

/** Takes every whole request head out of `state.buffered`; returns how many. */
function takeRequests(state: { buffered: string }, chunk: Buffer): number {
  state.buffered += chunk.toString('latin1');
  let n = 0;
  for (let i = 0; i < 10_000; i++) {
    const end = state.buffered.indexOf('\r\n\r\n');
    if (end === -1) break;
    state.buffered = state.buffered.slice(end + 4);
    n++;
  }
  return n;
}

function assertMonotonic(r: LoadReport): void {
  const l = r.latencyMs;
  const series = [l.p50, l.p90, l.p99, l['p99.9'], l.max];
  for (let i = 1; i < series.length; i++) assert.ok(series[i - 1] <= series[i], `percentiles must not decrease: ${series.join(' ')}`);
  assert.ok(l.min <= l.p50, `min ${l.min} <= p50 ${l.p50}`);
}

describe('HTTP/1.1 response parser', () => {
  const stream = Buffer.from(
    [
      'HTTP/1.1 100 Continue\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello',
      'HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n',
      'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 201 Created\r\nCONTENT-LENGTH: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
    ].join(''),
    'latin1',
  );
  const expected = [
    [200, true],
    [404, true],
    [204, true],
    [201, true],
    [200, false],
  ];

  test('finds every response, whatever the reads are split at', () => {
    for (let cut1 = 0; cut1 <= stream.length; cut1 += 1) {
      const cut2 = Math.min(stream.length, cut1 + 7);
      const seen: (number | boolean)[][] = [];
      const parser = new Http1ResponseParser({ response: (s, k) => void seen.push([s, k]) }, false);
      for (const part of [stream.subarray(0, cut1), stream.subarray(cut1, cut2), stream.subarray(cut2)]) {
        if (part.length > 0) parser.execute(Buffer.from(part), part.length);
      }
      assert.deepEqual(seen, expected, `split at ${cut1} and ${cut2}`);
    }
  });

  test('one byte at a time', () => {
    const seen: number[] = [];
    const parser = new Http1ResponseParser({ response: (s) => void seen.push(s) }, false);
    for (let i = 0; i < stream.length; i++) parser.execute(stream.subarray(i, i + 1), 1);
    assert.deepEqual(seen, [200, 404, 204, 201, 200]);
  });

  test('a body that runs until close ends at finish(); HEAD responses have no body', () => {
    const seen: number[] = [];
    const parser = new Http1ResponseParser({ response: (s) => void seen.push(s) }, false);
    const raw = Buffer.from('HTTP/1.0 200 OK\r\n\r\nsome body');
    parser.execute(raw, raw.length);
    assert.equal(seen.length, 0, 'no length and no chunking: the body runs until close');
    assert.equal(parser.finish(), true);
    assert.deepEqual(seen, [200]);
    const head = new Http1ResponseParser({ response: (s) => void seen.push(s) }, true);
    const headRaw = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n');
    head.execute(headRaw, headRaw.length);
    assert.deepEqual(seen, [200, 200, 200]);
  });

  test('malformed responses are parse errors', () => {
    for (const bad of ['SSH-2.0-OpenSSH\r\n\r\n', 'HTTP/1.1 2x0 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 1z\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']) {
      const parser = new Http1ResponseParser({ response: () => {} }, false);
      const buf = Buffer.from(bad);
      assert.throws(() => parser.execute(buf, buf.length), ResponseParseError, bad);
    }
  });
});

describe('LoadStats', () => {
  test('latencies counted in the exact array reach the histogram as if recorded one by one', () => {
    const stats = new LoadStats();
    const direct = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: false, useWebAssembly: false });
    try {
      // Below 1 µs, around the exact array's end (65.536 ms), far above it, and a spread in between.
      const values = [0.0002, 0.001, 0.25, 0.2504, 1.5, 12.3456, 65.535, 65.536, 65.537, 900, 4_000_000];
      for (let i = 0; i < 5000; i++) values.push(((i * 7919) % 100_000) / 1000);
      for (const ms of values) {
        stats.record(ms);
        direct.recordValue(Math.min(3_600_000_000, Math.max(1, Math.round(ms * 1000))));
      }
      const h = stats.histogram;
      assert.equal(stats.responses, values.length);
      assert.equal(h.totalCount, direct.totalCount);
      for (const p of [0, 1, 10, 50, 90, 99, 99.9, 100]) assert.equal(h.getValueAtPercentile(p), direct.getValueAtPercentile(p), `p${p}`);
      assert.equal(h.maxValue, direct.maxValue);
      assert.equal(h.minNonZeroValue, direct.minNonZeroValue);
      // Read twice: nothing is moved in twice.
      assert.equal(stats.histogram.totalCount, direct.totalCount);
    } finally {
      stats.destroy();
      direct.destroy();
    }
  });
});

// Every HTTP/1.1 test runs on each engine, forced with SWITCHYARD_BENCH_SOCKETS: the load
// generator's own sockets through one io_uring (the default for plain http:// where the kernel
// allows it), through one epoll set ("native"), and Node's sockets (as https:// uses).
const ioUringHere = ioUringUnavailable() === undefined;
for (const sockets of ['io_uring', 'native', 'node'] as const) {
describe(`switchyard bench, HTTP/1.1 (${sockets} sockets)`, { skip: sockets === 'io_uring' && !ioUringHere ? `io_uring cannot be set up here: ${ioUringUnavailable()}` : false }, () => {
  const saved = process.env.SWITCHYARD_BENCH_SOCKETS;
  before(() => {
    process.env.SWITCHYARD_BENCH_SOCKETS = sockets;
  });
  after(() => {
    if (saved === undefined) delete process.env.SWITCHYARD_BENCH_SOCKETS;
    else process.env.SWITCHYARD_BENCH_SOCKETS = saved;
  });

  test('-n sends exactly that many requests, one keep-alive connection per -c', async () => {
    const s = await countingServer();
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 1000, connections: 5 });
      assert.equal(s.counts.requests, 1000);
      assert.equal(r.sent, 1000);
      assert.equal(r.responses, 1000);
      assert.equal(r.successes, 1000);
      assert.equal(r.errors.total, 0);
      assert.deepEqual(r.statusCodes, { '200': 1000 });
      assert.equal(s.counts.connections, 5, 'keep-alive: one connection per -c');
      assert.equal(r.sockets, sockets);
      assertMonotonic(r);
    } finally {
      await closeServer(s.server);
    }
  });

  test('a request larger than the socket buffers goes out whole (sent in parts as the server reads)', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const received: number[] = [];
    const server = createHttpServer((req, res) => {
      let n = 0;
      // Read slowly, so the client's sends fill the kernel's buffers and must wait for room.
      req.on('data', (c: Buffer) => {
        n += c.length;
        req.pause();
        setTimeout(() => req.resume(), 1);
      });
      req.on('end', () => {
        received.push(n);
        res.end('ok');
      });
    });
    const port = await listen(server);
    try {
      const r = await bench(`http://127.0.0.1:${port}/`, { requests: 3, connections: 1, pipeline: 2, method: 'POST', body: body.toString('latin1'), timeout: 20_000 });
      assert.equal(r.errors.total, 0, JSON.stringify(r.errorMessages));
      assert.equal(r.responses, 3);
      assert.deepEqual(received, [body.length, body.length, body.length]);
    } finally {
      await closeServer(server);
    }
  });

  test('a host name is looked up (localhost)', async () => {
    const s = await countingServer();
    try {
      const r = await bench(`http://localhost:${s.port}/`, { requests: 10, connections: 2 });
      assert.equal(r.responses, 10);
      assert.equal(s.counts.requests, 10);
    } finally {
      await closeServer(s.server);
    }
  });

  test('--pipeline keeps N requests in flight on one connection', async () => {
    // This server answers only once it holds 4 requests, so without pipelining nothing comes back.
    let mostBuffered = 0;
    const s = await rawServer((socket, chunk, state) => {
      state.requests += takeRequests(state, chunk);
      mostBuffered = Math.max(mostBuffered, state.requests);
      if (state.requests >= 4) {
        state.requests -= 4;
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'.repeat(4));
      }
    });
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 400, connections: 1, pipeline: 4, timeout: 3000 });
      assert.equal(r.responses, 400);
      assert.equal(r.errors.total, 0, JSON.stringify(r.errors));
      assert.equal(r.depth, 4);
      assert.ok(mostBuffered >= 4);
    } finally {
      await s.close();
    }
  });

  test('chunked responses with trailers, and heads split over many writes', async () => {
    const chunked = await countingServer(undefined, (res) => {
      res.setHeader('Trailer', 'X-Sum');
      res.write('abc');
      res.write('0123456789');
      res.addTrailers({ 'X-Sum': '13' });
      res.end();
    });
    const split = await rawServer((socket, chunk, state) => {
      const n = takeRequests(state, chunk);
      const one = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Pad: ' + 'p'.repeat(300) + '\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      for (let i = 0; i < n; i++) {
        // Written in 7-byte pieces with Nagle off, so many reads hold part of a head.
        socket.setNoDelay(true);
        for (let at = 0; at < one.length; at += 7) socket.write(one.subarray(at, at + 7));
      }
    });
    try {
      const a = await bench(`http://127.0.0.1:${chunked.port}/`, { requests: 300, connections: 3 });
      assert.equal(a.responses, 300);
      assert.equal(a.errors.total, 0, JSON.stringify(a.errorMessages));
      assert.equal(chunked.counts.connections, 3, 'chunked bodies keep the connection alive');
      const b = await bench(`http://127.0.0.1:${split.port}/`, { requests: 100, connections: 2 });
      assert.equal(b.responses, 100);
      assert.equal(b.errors.total, 0, JSON.stringify(b.errorMessages));
    } finally {
      await closeServer(chunked.server);
      await split.close();
    }
  });

  test('a server that closes after every response (Connection: close) gets a new connection per request, no errors', async () => {
    const s = await countingServer(undefined, (res) => {
      res.setHeader('Connection', 'close');
      res.end('bye');
    });
    const until = await rawServer((socket, chunk, state) => {
      // HTTP/1.0 style: no length, the body ends when the connection does.
      if (takeRequests(state, chunk) > 0) socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close');
    });
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 60, connections: 3 });
      assert.equal(r.responses, 60);
      assert.equal(r.errors.total, 0, JSON.stringify(r.errorMessages));
      assert.equal(s.counts.requests, 60);
      // One per request, plus at most one per -c opened just as the last request went out elsewhere.
      assert.ok(s.counts.connections >= 60 && s.counts.connections <= 63, `connections: ${s.counts.connections}`);
      const u = await bench(`http://127.0.0.1:${until.port}/`, { requests: 30, connections: 2 });
      assert.equal(u.responses, 30);
      assert.equal(u.errors.total, 0, JSON.stringify(u.errorMessages));
    } finally {
      await closeServer(s.server);
      await until.close();
    }
  });

  test('non-2xx responses are answered and counted as status errors', async () => {
    const s = await countingServer((n) => (n % 2 === 0 ? 503 : 200));
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 200, connections: 1 });
      assert.equal(r.responses, 200);
      assert.equal(r.errors.status, 100);
      assert.equal(r.successes, 100);
      assert.deepEqual(r.statusCodes, { '200': 100, '503': 100 });
      assert.equal(r.errorMessages.status, 'HTTP 503');
    } finally {
      await closeServer(s.server);
    }
  });

  test('a server that drops connections mid-run: resets counted, and the run ends', async () => {
    // Every connection gets 5 answers; the 6th request sees the connection destroyed.
    const s = await rawServer((socket, chunk, state) => {
      const n = takeRequests(state, chunk);
      for (let i = 0; i < n; i++) {
        state.requests++;
        if (state.requests > 5) {
          socket.destroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 120, connections: 2 });
      assert.equal(r.sent, 120);
      assert.ok(r.errors.reset > 0, JSON.stringify(r.errors));
      assert.ok(r.responses > 0);
      assert.equal(r.responses + r.errors.reset + r.errors.connect, 120, JSON.stringify(r));
      assert.match(r.errorMessages.reset ?? '', /closed|reset/i);
    } finally {
      await s.close();
    }
  });

  test('a connection the server resets (RST) mid-run: the requests in flight are resets, the others answered', async () => {
    // The 4th request on every connection is answered with a TCP reset instead of a response.
    let resets = 0;
    const s = await rawServer((socket, chunk, state) => {
      const n = takeRequests(state, chunk);
      for (let i = 0; i < n; i++) {
        state.requests++;
        if (state.requests === 4) {
          resets++;
          socket.resetAndDestroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 40, connections: 2 });
      assert.equal(r.sent, 40);
      assert.ok(resets > 0);
      assert.equal(r.errors.reset, resets, JSON.stringify(r.errorMessages));
      assert.equal(r.responses + r.errors.reset, 40, JSON.stringify(r.errors));
      assert.deepEqual(r.statusCodes, { '200': r.responses });
      assert.match(r.errorMessages.reset ?? '', /ECONNRESET|reset|closed/i);
    } finally {
      await s.close();
    }
  });

  test('pipelined requests (-p 8) on several connections: the server sees exactly the requests counted', async () => {
    // Every 10th request the server reads is a 404; it tallies what it answered.
    const served: Record<string, number> = {};
    let requests = 0;
    let connections = 0;
    const server = createHttpServer((req, res) => {
      const status = ++requests % 10 === 0 ? 404 : 200;
      req.resume();
      req.on('end', () => {
        served[String(status)] = (served[String(status)] ?? 0) + 1;
        res.statusCode = status;
        res.end('p');
      });
    });
    server.on('connection', () => connections++);
    const port = await listen(server);
    try {
      const r = await bench(`http://127.0.0.1:${port}/`, { requests: 4000, connections: 4, pipeline: 8 });
      assert.equal(r.sockets, sockets);
      assert.equal(requests, 4000);
      assert.equal(r.responses, 4000);
      assert.deepEqual(served, { '200': 3600, '404': 400 });
      assert.deepEqual(r.statusCodes, served);
      assert.equal(r.errors.status, 400);
      assert.equal(connections, 4);
    } finally {
      await closeServer(server);
    }
  });

  test('a server that never answers: timeouts counted, the run ends', async () => {
    const s = await rawServer(() => {});
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 3, connections: 1, timeout: 200 });
      assert.equal(r.responses, 0);
      assert.equal(r.errors.timeout, 3);
      assert.equal(r.successes, 0);
    } finally {
      await s.close();
    }
  });

  test('a refused connection is a connect error, once per request', async () => {
    const probe = createNetServer();
    const port = await listen(probe);
    await closeServer(probe);
    const r = await bench(`http://127.0.0.1:${port}/`, { requests: 20, connections: 2 });
    assert.equal(r.errors.connect, 20);
    assert.equal(r.responses, 0);
    assert.match(r.errorMessages.connect ?? '', /ECONNREFUSED/);
  });

  test('-R (open model) sends about rate x duration requests; with -n exactly n', async () => {
    const s = await countingServer();
    try {
      // Generous bounds: a loaded machine may answer late, but never more than the schedule holds.
      const r = await bench(`http://127.0.0.1:${s.port}/`, { rate: 200, duration: 1000, connections: 16 });
      assert.equal(r.model, 'open');
      assert.ok(r.sent <= 200, `at most rate x duration: ${r.sent}`);
      assert.ok(r.sent >= 50, `about rate x duration: ${r.sent}`);
      assert.ok(r.responses >= 50 && r.responses <= r.sent);
    } finally {
      await closeServer(s.server);
    }
    // A server of its own: a request the first run wrote just before its deadline may still be
    // on its way into the first server when this run starts.
    const s2 = await countingServer();
    try {
      const n = await bench(`http://127.0.0.1:${s2.port}/`, { rate: 1000, requests: 150, connections: 2 });
      assert.equal(n.responses, 150);
      assert.equal(s2.counts.requests, 150);
    } finally {
      await closeServer(s2.server);
    }
  });

  test('--method, -H and --body reach the server', async () => {
    const seen: { method?: string; header?: string; body?: string } = {};
    const server = createHttpServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        Object.assign(seen, { method: req.method, header: req.headers['x-test'], body });
        res.end();
      });
    });
    const port = await listen(server);
    try {
      const r = await bench(`http://127.0.0.1:${port}/submit?q=1`, { requests: 5, connections: 1, method: 'put', header: ['X-Test: yes'], body: '{"a":1}' });
      assert.equal(r.successes, 5);
      assert.deepEqual(seen, { method: 'PUT', header: 'yes', body: '{"a":1}' });
    } finally {
      await closeServer(server);
    }
  });
});
}

describe('switchyard bench: which engine carries plain http://', () => {
  const saved = process.env.SWITCHYARD_BENCH_SOCKETS;
  after(() => {
    if (saved === undefined) delete process.env.SWITCHYARD_BENCH_SOCKETS;
    else process.env.SWITCHYARD_BENCH_SOCKETS = saved;
  });

  test('by default io_uring where it can be set up, else the epoll engine with the reason in the report', async () => {
    delete process.env.SWITCHYARD_BENCH_SOCKETS;
    const s = await countingServer();
    try {
      const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 300, connections: 3 });
      assert.equal(s.counts.requests, 300);
      assert.equal(r.successes, 300);
      if (ioUringHere) {
        assert.equal(r.sockets, 'io_uring');
        assert.equal(r.socketsFallback, null);
      } else {
        assert.equal(r.sockets, 'native');
        assert.match(r.socketsFallback ?? '', /^io_uring: /);
      }
    } finally {
      await closeServer(s.server);
    }
  });

  test('forced off with SWITCHYARD_BENCH_SOCKETS=native or node: that engine, nothing passed over', async () => {
    const s = await countingServer();
    try {
      for (const forced of ['native', 'node'] as const) {
        process.env.SWITCHYARD_BENCH_SOCKETS = forced;
        const r = await bench(`http://127.0.0.1:${s.port}/`, { requests: 100, connections: 2 });
        assert.equal(r.sockets, forced);
        assert.equal(r.socketsFallback, null);
        assert.equal(r.successes, 100);
      }
      assert.equal(s.counts.requests, 200);
    } finally {
      await closeServer(s.server);
    }
  });

  test('an unknown SWITCHYARD_BENCH_SOCKETS value is refused, naming the variable', async () => {
    process.env.SWITCHYARD_BENCH_SOCKETS = 'uring';
    await assert.rejects(bench('http://127.0.0.1:9/', { requests: 1, connections: 1 }), /SWITCHYARD_BENCH_SOCKETS=uring: expected one of io_uring, native, node/);
  });
});

describe('switchyard bench, TLS, h2, ws, tcp, udp', () => {
  let dir: string;
  let tlsFiles: { cert: Buffer; key: Buffer; caPath: string };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-load-'));
    const ca = await makeTestCa(dir);
    const leaf = await makeLeaf(dir, ca, 'localhost', ['localhost', '127.0.0.1']);
    tlsFiles = { cert: await readFile(leaf.cert), key: await readFile(leaf.key), caPath: ca.cert };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('https: verified with --ca, refused without it, accepted with --insecure', async () => {
    let requests = 0;
    const server = createHttpsServer({ cert: tlsFiles.cert, key: tlsFiles.key }, (_req, res) => {
      requests++;
      res.end('tls');
    });
    const port = await listen(server);
    try {
      const ok = await bench(`https://localhost:${port}/`, { requests: 50, connections: 2, ca: tlsFiles.caPath });
      assert.equal(ok.successes, 50);
      assert.equal(requests, 50);
      const refused = await bench(`https://localhost:${port}/`, { requests: 4, connections: 1 });
      assert.equal(refused.errors.connect, 4);
      assert.equal(refused.responses, 0);
      const insecure = await bench(`https://127.0.0.1:${port}/`, { requests: 10, connections: 1, insecure: true });
      assert.equal(insecure.successes, 10);
    } finally {
      await closeServer(server);
    }
  });

  test('--http2: h2c streams over -c sessions, and h2 over TLS', async () => {
    const counts = { streams: 0, sessions: 0 };
    const h2c = createH2Server((_req, res) => {
      counts.streams++;
      res.end('h2');
    });
    h2c.on('session', () => counts.sessions++);
    const port = await listen(h2c as unknown as NetServer);
    const secure = createH2SecureServer({ cert: tlsFiles.cert, key: tlsFiles.key }, (_req, res) => {
      res.statusCode = 201;
      res.end();
    });
    const securePort = await listen(secure as unknown as NetServer);
    try {
      const r = await bench(`http://127.0.0.1:${port}/`, { requests: 300, connections: 2, http2: true, streams: 8 });
      assert.equal(r.protocol, 'h2');
      assert.equal(r.responses, 300);
      assert.equal(r.successes, 300);
      assert.equal(counts.streams, 300);
      assert.equal(counts.sessions, 2);
      const t = await bench(`https://localhost:${securePort}/`, { requests: 40, connections: 1, http2: true, streams: 4, ca: tlsFiles.caPath });
      assert.deepEqual(t.statusCodes, { '201': 40 });
    } finally {
      h2c.close();
      secure.close();
    }
  });

  test('ws: each message awaits its echo', async () => {
    let messages = 0;
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    wss.on('connection', (ws) =>
      ws.on('message', (data, binary) => {
        messages++;
        ws.send(data, { binary });
      }),
    );
    const port = (wss.address() as AddressInfo).port;
    try {
      const r = await bench(`ws://127.0.0.1:${port}/`, { requests: 500, connections: 3, pipeline: 2, body: 'hello ws' });
      assert.equal(r.protocol, 'ws');
      assert.equal(r.responses, 500);
      assert.equal(messages, 500);
      assert.equal(r.bytesRead, 500 * 8);
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });

  test('tcp: a round trip is as many bytes back as were sent', async () => {
    const s = await rawServer((socket, chunk) => socket.write(chunk));
    try {
      const r = await bench(`tcp://127.0.0.1:${s.port}`, { requests: 400, connections: 2, pipeline: 4, body: 'x'.repeat(100) });
      assert.equal(r.responses, 400);
      assert.equal(r.bytesRead, 400 * 100);
      assert.equal(r.bytesWritten, 400 * 100);
      assert.equal(r.errors.total, 0);
    } finally {
      await s.close();
    }
  });

  test('udp: datagram round trips; a silent server gives timeouts', async () => {
    const echo: UdpSocket = createSocket('udp4');
    echo.on('message', (m, rinfo) => echo.send(m, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', () => resolve()));
    const silent: UdpSocket = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
    try {
      const r = await bench(`udp://127.0.0.1:${echo.address().port}`, { requests: 300, connections: 2 });
      assert.equal(r.responses, 300);
      assert.equal(r.errors.total, 0);
      const t = await bench(`udp://127.0.0.1:${silent.address().port}`, { requests: 3, connections: 1, timeout: 150 });
      assert.equal(t.errors.timeout, 3);
      assert.equal(t.responses, 0);
    } finally {
      echo.close();
      silent.close();
    }
  });
});

describe('switchyard bench, the command', () => {
  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', CLI, 'bench', ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
  }

  test('--json prints a report that parses, with monotonic percentiles', async () => {
    const s = await countingServer();
    try {
      const r = await cli([`http://127.0.0.1:${s.port}/`, '-n', '500', '-c', '4', '--json', '--progress', '-d', '30s']);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout) as LoadReport;
      assert.equal(report.responses, 500);
      assert.equal(report.successes, 500);
      assert.equal(s.counts.requests, 500);
      assertMonotonic(report);
      for (const k of ['p50', 'p90', 'p99', 'p99.9', 'max'] as const) assert.equal(typeof report.latencyMs[k], 'number');
    } finally {
      await closeServer(s.server);
    }
  });

  test('the text report reads like wrk; nothing answered exits 1; bad usage exits 2', async () => {
    const s = await countingServer();
    const probe = createNetServer();
    const deadPort = await listen(probe);
    await closeServer(probe);
    try {
      const ok = await cli([`http://127.0.0.1:${s.port}/`, '-n', '50', '-c', '1']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /Requests\/sec:\s+[\d.]+/);
      assert.match(ok.stdout, /99\.9%/);
      const dead = await cli([`http://127.0.0.1:${deadPort}/`, '-n', '5', '-c', '1']);
      assert.equal(dead.code, 1);
      assert.match(dead.stdout, /connect 5/);
      const bad = await cli(['ftp://127.0.0.1/', '-n', '5']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /unsupported scheme/);
      const badCombo = await cli([`tcp://127.0.0.1:${s.port}`, '--http2']);
      assert.equal(badCombo.code, 2);
      assert.match(badCombo.stderr, /--http2 is for http/);
    } finally {
      await closeServer(s.server);
    }
  });
});
