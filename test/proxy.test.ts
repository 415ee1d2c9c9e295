import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { request, Pool } from 'undici';
import { serve, type Yard } from '../src/index.ts';
import { rawExchange, statusOf } from './helpers/net.ts';

// The proxy handler end to end: real upstream servers on 127.0.0.1 port 0, a real yard in front
// of them, real clients (undici, raw sockets). Counts are asserted, never times.

const yards: Yard[] = [];
const servers: Server[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Upstream {
  port: number;
  url: string;
  server: Server;
  /** Requests seen (not counting /health). */
  hits: number;
}

async function upstream(handler: (req: IncomingMessage, res: ServerResponse, u: Upstream) => void): Promise<Upstream> {
  const server = createServer();
  const u: Upstream = { port: 0, url: '', server, hits: 0 };
  server.on('request', (req, res) => {
    if (req.url !== '/health') u.hits++;
    handler(req, res, u);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as { port: number }).port;
  u.url = `http://127.0.0.1:${u.port}`;
  servers.push(server);
  return u;
}

/** A port nothing listens on (bound, then closed): connecting is refused. */
async function deadPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

interface Opts {
  upstream?: Record<string, unknown>;
  handler?: Record<string, unknown>;
  path?: string;
}

async function proxyYard(targets: string[], opts: Opts = {}): Promise<{ yard: Yard; port: number; base: string }> {
  const yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [{ match: { path: opts.path ?? '/*' }, handler: { type: 'proxy', upstream: 'api', ...opts.handler } }],
        },
      ],
      upstreams: { api: { targets, ...opts.upstream } },
    },
    { logLevel: 'silent' },
  );
  yards.push(yard);
  const port = yard.address('web').port;
  return { yard, port, base: `http://127.0.0.1:${port}` };
}

type TargetState = { id: string; inFlight: number; requests?: { success: number; connectFailure: number; failure: number }; pool?: { connected: number; pending: number; running: number } };
function targetsOf(yard: Yard): TargetState[] {
  const g = yard.upstreams().find((u) => u.name === 'api')!;
  return (g.state() as { targets: TargetState[] }).targets;
}

const echoHeaders = (req: IncomingMessage, res: ServerResponse) => {
  const body = Buffer.from(JSON.stringify({ url: req.url, headers: req.headers }));
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', body.length);
  res.end(body);
};

async function waitFor(what: string, check: () => boolean | Promise<boolean>, tries = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`gave up waiting for ${what}`);
}

test('headers: hop-by-hop removed both ways, forwarded headers replaced, Via, trace context, request id', async () => {
  const up = await upstream((req, res) => {
    res.setHeader('connection', 'x-up-secret');
    res.setHeader('x-up-secret', '1');
    res.setHeader('proxy-authenticate', 'Basic');
    res.setHeader('keep-alive', 'timeout=1');
    res.setHeader('via', '1.1 backend');
    echoHeaders(req, res);
  });
  const { port } = await proxyYard([up.url]);
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const raw = await rawExchange(
    port,
    [
      'GET /h?x=1 HTTP/1.1',
      'Host: example.test',
      'Connection: close, X-Secret',
      'X-Secret: 1',
      'Keep-Alive: timeout=5',
      'Proxy-Authorization: Basic eDp5',
      'TE: trailers',
      'X-Forwarded-For: 6.6.6.6',
      'X-Forwarded-Host: evil.test',
      'Forwarded: for=6.6.6.6',
      'X-Request-Id: my-id-1',
      `Traceparent: ${traceparent}`,
      'Tracestate: vendor=abc',
      'Via: 1.0 edge',
      'X-Kept: yes',
      '',
      '',
    ].join('\r\n'),
  );
  const text = raw.toString('latin1');
  assert.equal(statusOf(raw), 200, text);
  const [head, body] = text.split("\r\n\r\n");
  assert.doesNotMatch(head, /x-up-secret/i);
  assert.doesNotMatch(head, /proxy-authenticate/i);
  assert.doesNotMatch(head, /timeout=1/i);
  assert.match(head, /^via: 1\.1 backend, 1\.1 switchyard$/im);
  assert.match(head, /^x-request-id: my-id-1$/im);
  const seen = JSON.parse(body) as { url: string; headers: Record<string, string> };
  const h = seen.headers;
  assert.equal(seen.url, '/h?x=1');
  assert.equal(h.host, 'example.test');
  assert.equal(h['x-kept'], 'yes');
  for (const gone of ['x-secret', 'keep-alive', 'proxy-authorization']) assert.equal(h[gone], undefined, `${gone} reached the upstream`);
  // TE is hop-by-hop; `trailers` is said again for our own hop, as the proxy passes trailers on.
  assert.equal(h.te, 'trailers');
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'example.test');
  assert.equal(h.forwarded, 'for=127.0.0.1;host="example.test";proto=http');
  assert.equal(h.via, '1.0 edge, 1.1 switchyard');
  assert.equal(h.traceparent, traceparent);
  assert.equal(h.tracestate, 'vendor=abc');
  assert.equal(h['x-request-id'], 'my-id-1');

  // No (or a malformed) traceparent: a new valid one, and the orphan tracestate is dropped.
  const r = await request(`http://127.0.0.1:${port}/h`, { headers: { traceparent: '00-bad', tracestate: 'vendor=abc' } });
  const h2 = ((await r.body.json()) as { headers: Record<string, string> }).headers;
  assert.match(h2.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.equal(h2.tracestate, undefined);
  assert.match(h2['x-request-id'], /\S/);
});

test('headers: trustForwarded appends to the incoming chain; host policy upstream', async () => {
  const up = await upstream(echoHeaders);
  const { base } = await proxyYard([up.url], { handler: { trustForwarded: true, host: 'upstream' } });
  const r = await request(`${base}/t`, { headers: { host: 'example.test', 'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-forwarded-proto': 'https' } });
  const h = ((await r.body.json()) as { headers: Record<string, string> }).headers;
  assert.equal(h['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'https');
  assert.equal(h.forwarded, 'for=6.6.6.6, for=127.0.0.1;host="example.test";proto=http');
  assert.equal(h.host, `127.0.0.1:${up.port}`);
});

test('path: stripPrefix forwards the rest below the route, rewrite replaces, the query is kept', async () => {
  const up = await upstream(echoHeaders);
  const strip = await proxyYard([up.url], { path: '/api/*', handler: { stripPrefix: true } });
  const full = await proxyYard([up.url], { path: '/api/*' });
  const rewrite = await proxyYard([up.url], { path: '/api/*', handler: { stripPrefix: true, rewrite: { from: '^/v1/', to: '/v2/' } } });
  const urlOf = async (base: string, path: string) => ((await (await request(base + path)).body.json()) as { url: string }).url;
  assert.equal(await urlOf(strip.base, '/api/users/7?x=1&y=%20'), '/users/7?x=1&y=%20');
  assert.equal(await urlOf(strip.base, '/api'), '/');
  assert.equal(await urlOf(full.base, '/api/users/7?x=1'), '/api/users/7?x=1');
  assert.equal(await urlOf(rewrite.base, '/api/v1/users?x=1'), '/v2/users?x=1');
});

test('retries: a GET to a dead target goes to a live one', async () => {
  const live = await upstream((_req, res) => res.end('ok'));
  const dead = await deadPort();
  const { base, yard } = await proxyYard([`http://127.0.0.1:${dead}`, live.url]);
  for (let i = 0; i < 10; i++) {
    const r = await request(`${base}/x`);
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'ok');
  }
  assert.equal(live.hits, 10);
  const deadState = targetsOf(yard).find((t) => t.id.endsWith(`:${dead}`))!;
  assert.ok(deadState.requests!.connectFailure > 0, 'the dead target was never tried');
});

test('retries: a POST whose body was sent is resent only when it was buffered (bufferBody)', async () => {
  // Two targets; the first request either of them sees is answered by a reset after the whole
  // body was read, every later one with 200. Both targets, so the balancer's order does not matter.
  const pair = async () => {
    let seen = 0;
    const h = (req: IncomingMessage, res: ServerResponse) => {
      const n = ++seen;
      let bytes = 0;
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.on('end', () => {
        if (n === 1) req.socket.destroy();
        else res.end(`got ${bytes}`);
      });
    };
    const a = await upstream(h);
    const b = await upstream(h);
    return { targets: [a.url, b.url], total: () => a.hits + b.hits };
  };
  const retry = { bufferBody: '4KiB' };

  const small = await pair();
  const ys = await proxyYard(small.targets, { upstream: { retry, outlier: false } });
  const r1 = await request(`${ys.base}/p`, { method: 'POST', body: Buffer.alloc(1000, 1) });
  assert.equal(r1.statusCode, 200);
  assert.equal(await r1.body.text(), 'got 1000');
  assert.equal(small.total(), 2, 'a buffered POST is resent once');

  const big = await pair();
  const yb = await proxyYard(big.targets, { upstream: { retry, outlier: false } });
  const r2 = await request(`${yb.base}/p`, { method: 'POST', body: Buffer.alloc(64 * 1024, 1) });
  assert.equal(r2.statusCode, 502);
  assert.match(await r2.body.text(), /upstream reset connection/);
  assert.equal(big.total(), 1, 'a streamed POST that reached the upstream must not be sent twice');

  // A chunked body (no length: streamed) is not resent either.
  const chunked = await pair();
  const yc = await proxyYard(chunked.targets, { upstream: { retry, outlier: false } });
  const r3 = await request(`${yc.base}/p`, { method: 'POST', body: Readable.from([Buffer.alloc(100, 1), Buffer.alloc(100, 2)]) });
  assert.equal(r3.statusCode, 502);
  await r3.body.text();
  assert.equal(chunked.total(), 1);
});

test('retries: a streamed POST whose connect failed is retried (nothing was sent)', async () => {
  const live = await upstream((req, res) => {
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => res.end(String(bytes)));
  });
  const dead = await deadPort();
  const { base, yard } = await proxyYard([`http://127.0.0.1:${dead}`, live.url], { upstream: { retry: { bufferBody: 0 } } });
  for (let i = 0; i < 6; i++) {
    const r = await request(`${base}/p`, { method: 'POST', body: Buffer.alloc(256 * 1024, 7) });
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), String(256 * 1024));
  }
  assert.equal(live.hits, 6);
  assert.ok(targetsOf(yard).find((t) => t.id.endsWith(`:${dead}`))!.requests!.connectFailure > 0);
});

test('retries: the retry budget holds under an outage (upstream requests <= requests + allowed retries)', async () => {
  const a = await upstream((_req, res) => {
    res.statusCode = 503;
    res.end('down');
  });
  const b = await upstream((_req, res) => {
    res.statusCode = 503;
    res.end('down');
  });
  const { base } = await proxyYard([a.url, b.url], {
    upstream: { retry: { attempts: 3, budgetRatio: 0.2, budgetMinPerSecond: 0 }, outlier: false, breaker: false },
  });
  const N = 100;
  let next = 0;
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < N) {
        next++;
        const r = await request(`${base}/x`);
        await r.body.text();
        statuses.push(r.statusCode);
      }
    }),
  );
  assert.equal(statuses.length, N);
  assert.ok(statuses.every((s) => s === 503));
  const total = a.hits + b.hits;
  assert.ok(total <= N + Math.floor(0.2 * N), `upstreams saw ${total} requests for ${N}`);
  assert.ok(total > N, 'some retries should have been allowed');
});

test('breaker: open -> 503 with Retry-After and no upstream traffic', async () => {
  const up = await upstream((_req, res) => {
    res.statusCode = 500;
    res.end('broken');
  });
  const { base } = await proxyYard([up.url], {
    upstream: { breaker: { minRequests: 5, failureRate: 0.5, openFor: '30s' }, retry: { attempts: 0 }, outlier: false },
  });
  for (let i = 0; i < 5; i++) {
    const r = await request(`${base}/x`);
    assert.equal(r.statusCode, 500);
    await r.body.text();
  }
  assert.equal(up.hits, 5);
  for (let i = 0; i < 5; i++) {
    const r = await request(`${base}/x`);
    assert.equal(r.statusCode, 503);
    const retryAfter = Number(r.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 30, `retry-after ${r.headers['retry-after']}`);
    assert.match(await r.body.text(), /circuit breaker open/);
  }
  assert.equal(up.hits, 5, 'an open breaker sends nothing upstream');
});

test('no available target: 503 at once; a refused connection: 502 naming the reason', async () => {
  const dead = await deadPort();
  const { base } = await proxyYard([`http://127.0.0.1:${dead}`], {
    upstream: { outlier: { consecutiveFailures: 1, maxEjectPercent: 100 }, retry: { attempts: 0 } },
  });
  const r1 = await request(`${base}/x`);
  assert.equal(r1.statusCode, 502);
  assert.match(await r1.body.text(), /upstream refused connection/);
  // The failure ejected the only target: nothing is available now.
  const r2 = await request(`${base}/x`);
  assert.equal(r2.statusCode, 503);
  assert.match(await r2.body.text(), /no upstream target available/);
});

test('timeouts: no response head within firstByte -> 504; the upstream request is dropped', async () => {
  let closed = 0;
  const up = await upstream((req) => {
    req.socket.once('close', () => closed++);
  });
  const { base } = await proxyYard([up.url], { upstream: { timeouts: { firstByte: '300ms' }, retry: { attempts: 0 } } });
  const r = await request(`${base}/slow`);
  assert.equal(r.statusCode, 504);
  assert.match(await r.body.text(), /upstream response timed out/);
  await waitFor('the upstream connection to close', () => closed === 1);
});

test('timeouts: total timeout -> 504 even while the upstream trickles', async () => {
  const up = await upstream(() => undefined);
  const { base } = await proxyYard([up.url], { upstream: { timeouts: { total: '300ms' }, retry: { attempts: 0 } } });
  const r = await request(`${base}/slow`);
  assert.equal(r.statusCode, 504);
  assert.match(await r.body.text(), /upstream timed out/);
});

test('upstream failing mid-body: the client sees a cut-off response, not a hang', async () => {
  const up = await upstream((req, res) => {
    res.writeHead(200, { 'content-length': 1000 });
    res.write(Buffer.alloc(100));
    setTimeout(() => req.socket.destroy(), 50);
  });
  const { base } = await proxyYard([up.url]);
  const r = await request(`${base}/x`);
  assert.equal(r.statusCode, 200);
  await assert.rejects(r.body.arrayBuffer());
});

test('client abort releases the upstream request and its pooled socket', async () => {
  let upstreamClosed = 0;
  const up = await upstream((req, res) => {
    res.once('close', () => upstreamClosed++);
    if (req.url === '/never') return; // no answer at all
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write(Buffer.alloc(16 * 1024)); // then nothing more
  });
  const { port, yard } = await proxyYard([up.url]);
  for (const [path, want] of [
    ['/stream', 1],
    ['/never', 2],
  ] as const) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    s.write(`GET ${path} HTTP/1.1\r\nhost: t\r\n\r\n`);
    if (path === '/stream') await new Promise((r) => s.once('data', r));
    else await waitFor('the request to reach the upstream', () => up.hits === want);
    s.destroy();
    await waitFor(`the upstream to see ${path} closed`, () => upstreamClosed === want);
    await waitFor('the target to be idle', () => {
      const t = targetsOf(yard)[0];
      return t.inFlight === 0 && t.pool !== undefined && t.pool.running === 0 && t.pool.pending === 0;
    });
  }
  // And the proxy still answers on the same pool.
  up.server.removeAllListeners('request');
  up.server.on('request', (_req: IncomingMessage, res: ServerResponse) => res.end('fine'));
  const r = await request(`http://127.0.0.1:${port}/again`);
  assert.equal(await r.body.text(), 'fine');
});

// --- kill -9 of one of three targets under load --------------------------------------------

const TARGET_CHILD = `
const http = require('node:http');
const s = http.createServer((req, res) => res.end('ok ' + process.pid));
s.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n'));
`;

function startTarget(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['-e', TARGET_CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve({ child, port: (JSON.parse(out.slice(0, nl)) as { port: number }).port });
    });
    child.once('exit', (code) => reject(new Error(`target exited with ${code}`)));
  });
}

test('kill -9 of one of three targets under load: no GET fails (every failure there was retryable)', { timeout: 60_000 }, async (t) => {
  const targets = await Promise.all([startTarget(), startTarget(), startTarget()]);
  const { base } = await proxyYard(targets.map((x) => `http://127.0.0.1:${x.port}`));
  const victim = targets[1];
  const client = new Pool(base, { connections: 16 });
  const TOTAL = 2000;
  let started = 0;
  let done = 0;
  const failures: string[] = [];
  const byPid = new Map<string, number>();
  let killedAt = -1;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (started < TOTAL) {
        started++;
        try {
          const r = await client.request({ path: `/x/${started}`, method: 'GET' });
          const text = await r.body.text();
          if (r.statusCode !== 200) failures.push(`${r.statusCode} ${text.trim()}`);
          else byPid.set(text, (byPid.get(text) ?? 0) + 1);
        } catch (err) {
          failures.push(String(err));
        }
        done++;
        if (done === 600 && killedAt === -1) {
          killedAt = done;
          victim.child.kill('SIGKILL');
        }
      }
    }),
  );
  await client.close();
  t.diagnostic(`answers per target pid: ${JSON.stringify(Object.fromEntries(byPid))}; killed at ${killedAt}`);
  assert.equal(done, TOTAL);
  assert.ok((byPid.get(`ok ${victim.child.pid}`) ?? 0) > 0, 'the victim served nothing before it was killed');
  assert.deepEqual(failures, []);
});

// --- big bodies through a daemon child, its RSS measured from outside ------------------------

const fixture = fileURLToPath(new URL('./fixtures/file-daemon.ts', import.meta.url));
const BIG = Number(process.env.PROXY_BIG_BYTES ?? 1024 * 1024 * 1024);
/**
 * Growth of the daemon's RSS over its idle size while 1 GiB passes each way. A bound on the growth,
 * not on the total: the idle size grows with the code the daemon loads (tsx, every handler module),
 * which says nothing about buffering.
 */
// Node 24 collects the proxy's dead read buffers later (a larger young generation, mostly major
// collections: 12 minor GCs per GiB against 142 on Node 20), so garbage waiting for collection
// shows in RSS: 111-160 MB over idle measured on 24.22 with the heap in use at ~30 MB throughout.
const RSS_GROWTH_LIMIT_KB = (Number(process.versions.node.split('.')[0]) >= 24 ? 192 : 96) * 1024;

test(`${BIG / 1024 / 1024} MiB down and up through the proxy with bounded RSS`, { timeout: 120_000 }, async (t) => {
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const up = await upstream((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-length': BIG });
      let sent = 0;
      const pump = () => {
        while (sent < BIG) {
          const n = Math.min(chunk.length, BIG - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => res.end(String(bytes)));
  });
  const config = {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        limits: { maxBodySize: BIG * 2 },
        routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'api' } }],
      },
    ],
    upstreams: { api: { targets: [up.url] } },
  };
  const daemon = spawn(process.execPath, ['--import', 'tsx', fixture, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(daemon);
  const info = await new Promise<{ ports: { web: number }; pid: number }>((resolve, reject) => {
    let out = '';
    daemon.stdout!.on('data', (d: Buffer) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve(JSON.parse(out.slice(0, nl)));
    });
    daemon.once('exit', (code) => reject(new Error(`daemon exited with ${code}: ${out}`)));
  });
  const rssKb = async () => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${info.pid}/status`, 'utf8'))?.[1]);
  const idle = await rssKb();
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rssKb());
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const base = `http://127.0.0.1:${info.ports.web}`;
  try {
    const down = await request(`${base}/big`);
    assert.equal(down.statusCode, 200);
    let got = 0;
    for await (const d of down.body) got += (d as Buffer).length;
    assert.equal(got, BIG);

    let left = BIG;
    const body = new Readable({
      read() {
        if (left === 0) return void this.push(null);
        const n = Math.min(chunk.length, left);
        left -= n;
        this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      },
    });
    const upload = await request(`${base}/big`, { method: 'POST', body, headers: { 'content-length': String(BIG) } });
    assert.equal(upload.statusCode, 200);
    assert.equal(await upload.body.text(), String(BIG));
  } finally {
    sampling = false;
    await sampler;
    daemon.kill('SIGKILL');
  }
  t.diagnostic(`daemon RSS idle ${Math.round(idle / 1024)} MB, peak ${Math.round(peak / 1024)} MB for ${BIG / 1024 / 1024} MiB each way`);
  assert.ok(peak > 0 && peak - idle < RSS_GROWTH_LIMIT_KB, `peak RSS ${Math.round(peak / 1024)} MB, ${Math.round((peak - idle) / 1024)} MB over idle`);
});

test('a chunked upload past maxBodySize is cut off with 413 (a declared one is refused before it is read)', async () => {
  let received = 0;
  const u = await upstream((req, res) => {
    req.on('data', (d: Buffer) => (received += d.length));
    req.on('end', () => res.end('ok'));
    req.on('error', () => undefined);
  });
  const yard = await serve(
    {
      listeners: [
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', limits: { maxBodySize: '64KiB' }, routes: [{ handler: { type: 'proxy', upstream: 'api' } }] },
      ],
      upstreams: { api: { targets: [u.url] } },
    },
    { logLevel: 'silent' },
  );
  yards.push(yard);
  const port = yard.address('web').port;
  const chunk = 'x'.repeat(16 * 1024);
  let raw = `POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n`;
  for (let i = 0; i < 8; i++) raw += `${(chunk.length).toString(16)}\r\n${chunk}\r\n`;
  raw += '0\r\n\r\n';
  const answer = await rawExchange(port, raw);
  assert.equal(statusOf(answer), 413);
  assert.ok(received <= 64 * 1024 + chunk.length, `upstream got ${received} bytes, more than the limit allows`);
  const declared = await rawExchange(port, `POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: ${128 * 1024}\r\n\r\n`);
  assert.equal(statusOf(declared), 413);
});
