import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'undici';
import WebSocket from 'ws';
import { serve, type Yard } from '../src/index.ts';
import { parseConfig } from '../src/config/load.ts';
import { SnapshotFeed, prefersHtml, quantile, type DashboardSnapshot } from '../src/handlers/admin/dashboard.ts';
import type { HttpContext } from '../src/handlers/types.ts';
import { browserSkipReason, launchChromium } from './helpers/browser.ts';

// The admin listener's dashboard: the page in real Chromium against a yard proxying to two real
// backends with active health checks (a backend stopped turns its row red), the live feed
// (/events, server-sent events) read by a plain HTTP client, its subscriber cap, a subscriber
// that does not read being dropped instead of buffered for, reloads and stops letting
// subscribers go, and the JSON answer at / for non-browsers.

const skip = browserSkipReason();
/** Upper bound for anything the tests wait on (never a timing assertion: only how long to wait). */
const WAIT_MS = 5_000;

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function backend(name: string): Promise<{ url: string; id: string; stop: () => Promise<void> }> {
  const s: Server = createServer((_req, res) => res.end(`${name}\n`));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  };
  closers.push(stop);
  return { url: `http://127.0.0.1:${port}`, id: `127.0.0.1:${port}`, stop };
}

/** A web listener (a proxy to upstream `api` when there are targets, chat) and an admin listener. */
function yardConfig(targets: string[]) {
  const proxy = targets.length > 0 ? [{ name: 'api', match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api' } }] : [];
  return {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [
          { name: 'hello', match: { path: '/' }, handler: { type: 'respond', body: 'hello\n' } },
          ...proxy,
          { name: 'chat', match: { path: '/chat/*' }, handler: { type: 'chat' } },
        ],
      },
      {
        name: 'admin',
        protocol: 'http',
        address: '127.0.0.1:0',
        middleware: { accessLog: false },
        routes: [
          { name: 'metrics', match: { path: '/metrics' }, handler: { type: 'metrics' } },
          { name: 'admin-api', match: { path: '/*' }, handler: { type: 'admin' } },
        ],
      },
    ],
    upstreams:
      targets.length > 0
        ? { api: { targets, retry: { attempts: 0 }, health: { path: '/', interval: '200ms', timeout: '500ms', fall: 1, rise: 1 } } }
        : {},
    state: { backend: 'memory' },
  };
}

async function startYard(targets: string[]): Promise<{ yard: Yard; admin: string; web: string }> {
  const yard = await serve(yardConfig(targets), { logLevel: 'silent' });
  closers.push(() => yard.stop(200));
  return { yard, admin: `http://127.0.0.1:${yard.address('admin').port}`, web: `http://127.0.0.1:${yard.address('web').port}` };
}

/** Waits for `check` to hold, polling, for at most `ms`; fails with `what` otherwise. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A GET /events over its own connection, its events parsed as they come. */
class EventsClient {
  readonly events: { event: string; data: string }[] = [];
  ended = false;
  private buffer = '';
  private constructor(readonly res: IncomingMessage) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.buffer += chunk;
      let i;
      while ((i = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length > 0) this.events.push({ event, data: data.join('\n') });
      }
    });
    res.on('end', () => (this.ended = true));
    res.on('close', () => (this.ended = true));
    res.on('error', () => (this.ended = true));
  }

  static open(base: string): Promise<EventsClient> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${base}/events`, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
        const c = new EventsClient(res);
        closers.push(() => c.close());
        resolve(c);
      });
      req.on('error', reject);
      req.end();
    });
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  /** The n-th snapshot (1-based), parsed. */
  async snapshot(n = 1): Promise<DashboardSnapshot> {
    await until(`snapshot ${n} on /events`, () => this.events.filter((e) => e.event === 'snapshot').length >= n);
    return JSON.parse(this.events.filter((e) => e.event === 'snapshot')[n - 1].data) as DashboardSnapshot;
  }

  close(): void {
    this.res.destroy();
  }
}

test('the feed: GET /events streams JSON snapshots of listeners, routes, upstreams, rooms and the process', async () => {
  const a = await backend('a');
  const b = await backend('b');
  const { admin, web } = await startYard([a.url, b.url]);
  for (let i = 0; i < 20; i++) await (await request(`${web}/api/x`)).body.text();

  const c = await EventsClient.open(admin);
  assert.equal(c.status, 200);
  assert.match(String(c.res.headers['content-type']), /^text\/event-stream/);
  assert.equal(c.res.headers['cache-control'], 'no-store');

  const first = await c.snapshot(1);
  for (const key of ['version', 'at', 'intervalSeconds', 'windowSeconds', 'processes', 'totals', 'listeners', 'upstreams', 'rooms']) {
    assert.ok(key in first, `snapshot has ${key}`);
  }
  // One process today (no workers yet), with the system panel's numbers.
  assert.equal(first.processes.length, 1);
  const p = first.processes[0];
  assert.equal(p.role, 'main');
  assert.equal(p.pid, process.pid);
  assert.ok(p.rssBytes > 0 && p.heapUsedBytes > 0 && p.heapTotalBytes >= p.heapUsedBytes);
  assert.ok(p.uptimeSeconds >= 0);
  if (process.platform === 'linux') assert.ok((p.openFds ?? 0) > 0, 'open fds counted from /proc/self/fd');

  const webL = first.listeners.find((l) => l.name === 'web');
  assert.ok(webL, 'listener web');
  assert.deepEqual(webL.routes.map((r) => r.name), ['hello', 'api', 'chat']);
  assert.equal(webL.routes[1].traffic.requests, 20);
  assert.ok(first.listeners.some((l) => l.name === 'admin'));
  const api = first.upstreams.find((u) => u.name === 'api');
  assert.ok(api, 'upstream api');
  assert.deepEqual(api.targets.map((t) => t.id).sort(), [a.id, b.id].sort());
  assert.ok(api.targets.every((t) => t.state === 'up'));
  assert.deepEqual(first.rooms, []);

  // Later snapshots have rates over the interval and latency over the window.
  for (let i = 0; i < 10; i++) await (await request(`${web}/api/y`)).body.text();
  const second = await c.snapshot(2);
  assert.ok(second.intervalSeconds !== null && second.intervalSeconds > 0);
  const apiRoute = second.listeners.find((l) => l.name === 'web')!.routes.find((r) => r.name === 'api')!;
  assert.ok(apiRoute.traffic.requestsPerSecond !== null && apiRoute.traffic.requestsPerSecond > 0, 'a request rate');
  assert.equal(apiRoute.traffic.errorsPerSecond, 0);
  assert.ok(apiRoute.traffic.latencySeconds !== null, 'latency percentiles');
  const { p50, p90, p99 } = apiRoute.traffic.latencySeconds;
  assert.ok(p50 > 0 && p50 <= p90 && p90 <= p99);
  assert.ok(second.processes[0].cpuPercent !== null);
  c.close();
});

test('the feed takes at most 32 subscribers: the 33rd gets 503 and a place frees when one leaves', async () => {
  const { admin } = await startYard([]);
  const clients: EventsClient[] = [];
  for (let i = 0; i < 32; i++) clients.push(await EventsClient.open(admin));
  assert.ok(clients.every((c) => c.status === 200));
  await Promise.all(clients.map((c) => c.snapshot(1)));

  const refused = await request(`${admin}/events`);
  assert.equal(refused.statusCode, 503);
  assert.equal(refused.headers['retry-after'], '5');
  assert.match(await refused.body.text(), /too many dashboard subscribers/);

  clients[0].close();
  let again: EventsClient | undefined;
  await until('a subscriber accepted once one left', async () => {
    const c = await EventsClient.open(admin);
    if (c.status === 200) {
      again = c;
      return true;
    }
    c.close();
    return false;
  });
  assert.ok((await again!.snapshot(1)).listeners.length > 0);
  for (const c of [...clients, again!]) c.close();
});

test('yard.stop() is not held up by open /events subscribers: they are let go at once, none cut off', async () => {
  const yard = await serve(yardConfig([]), { logLevel: 'silent' });
  const admin = `http://127.0.0.1:${yard.address('admin').port}`;
  const clients = [await EventsClient.open(admin), await EventsClient.open(admin)];
  await Promise.all(clients.map((c) => c.snapshot(1)));
  // A long grace: had the subscribers held the stop up, it would wait all of it and cut them off.
  const stopped = yard.stop(60_000);
  const bound = new Promise<'bound'>((r) => setTimeout(() => r('bound'), 10_000).unref());
  const result = await Promise.race([stopped, bound]);
  assert.notEqual(result, 'bound', 'yard.stop() finished while subscribers were connected');
  assert.deepEqual(result, { cutOff: 0 });
  await until('the subscribers saw their streams end', () => clients.every((c) => c.ended));
});

test('a reload lets subscribers go so that they reconnect to the new admin handler', async () => {
  const { yard, admin } = await startYard([]);
  const c = await EventsClient.open(admin);
  await c.snapshot(1);
  const next = yardConfig([]);
  next.listeners[0].routes[0].handler = { type: 'respond', body: 'changed\n' };
  const result = await yard.reload(parseConfig(next, 'test'));
  assert.equal(result.ok, true);
  await until('the old handler let its subscriber go', () => c.ended);
  const d = await EventsClient.open(admin);
  assert.equal(d.status, 200);
  await d.snapshot(1);
  d.close();
});

test('a subscriber whose connection does not take its events is skipped, then dropped; nothing piles up', async () => {
  const frameBytes = 256 * 1024;
  const feed = new SnapshotFeed({ sample: async () => ({ pad: 'x'.repeat(frameBytes) }), intervalMs: 20, maxSkipped: 3 });
  let response: ServerResponse | undefined;
  let maxBuffered = 0;
  const server = createServer((req, res) => {
    response = res;
    feed.subscribe({ req, res } as unknown as HttpContext);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    feed.close();
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  const socket = connect({ port, host: '127.0.0.1' });
  closers.push(() => socket.destroy());
  await once(socket, 'connect');
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
  socket.pause(); // never reads: the kernel's buffers fill, then the server's

  const watch = setInterval(() => {
    if (response) maxBuffered = Math.max(maxBuffered, response.writableLength);
  }, 5);
  try {
    await until('the subscriber is dropped', () => feed.dropped === 1, 20_000);
  } finally {
    clearInterval(watch);
  }
  assert.equal(feed.size, 0);
  // At most the frame being written and one more behind it, whatever the number of ticks.
  assert.ok(maxBuffered <= 2 * (frameBytes + 1024) + 64 * 1024, `buffered ${maxBuffered} bytes for a subscriber that reads nothing`);
});

test('GET / answers JSON to API clients and the page to browsers (no-store, a strict CSP with a fresh nonce)', async () => {
  const { admin } = await startYard([]);
  for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html']) {
    const res = await request(`${admin}/`, { headers: accept ? { accept } : {} });
    assert.equal(res.statusCode, 200, String(accept));
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const body = (await res.body.json()) as { endpoints: string[] };
    assert.ok(body.endpoints.some((e) => e.startsWith('GET /events')));
  }
  const accept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
  const nonces = new Set<string>();
  for (let i = 0; i < 2; i++) {
    const res = await request(`${admin}/`, { headers: { accept } });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    assert.ok(nonce, 'a script nonce');
    nonces.add(nonce);
    const html = await res.body.text();
    assert.ok(html.includes(`<script nonce="${nonce}">`) && html.includes(`<style nonce="${nonce}">`));
    assert.doesNotMatch(html, /\{\{(nonce|css|js)\}\}/);
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\/(?!www\.w3\.org)/, 'nothing loaded from elsewhere');
  }
  assert.equal(nonces.size, 2, 'a fresh nonce per answer');
  const head = await request(`${admin}/`, { method: 'HEAD', headers: { accept } });
  assert.equal(head.statusCode, 200);
  assert.equal(await head.body.text(), '');
  const post = await request(`${admin}/events`, { method: 'POST' });
  assert.equal(post.statusCode, 405);
  assert.equal(post.headers.allow, 'GET');
  await post.body.dump();
});

test('content negotiation, and percentiles from histogram buckets', () => {
  assert.equal(prefersHtml(undefined), false);
  assert.equal(prefersHtml('*/*'), false);
  assert.equal(prefersHtml('text/html'), true);
  assert.equal(prefersHtml('application/json;q=0.9, text/html'), true);
  assert.equal(prefersHtml('text/html;q=0.5, application/json'), false);
  assert.equal(prefersHtml('text/html;q=0'), false);

  const bounds = [0.1, 0.2, 0.4];
  // 10 in (0, 0.1], 10 in (0.1, 0.2], none in (0.2, 0.4], none above: cumulative 10, 20, 20, 20.
  assert.equal(quantile(0.5, bounds, [10, 20, 20, 20]), 0.1);
  assert.ok(Math.abs(quantile(0.75, bounds, [10, 20, 20, 20])! - 0.15) < 1e-9);
  assert.equal(quantile(0.99, bounds, [0, 0, 0, 5]), 0.4, 'above every bucket: the highest bound');
  assert.equal(quantile(0.5, bounds, [0, 0, 0, 0]), null);
});

test('the page in Chromium: listeners, routes, targets and rooms render; a stopped backend turns its row red', { skip }, async () => {
  const a = await backend('a');
  const b = await backend('b');
  const { admin, web } = await startYard([a.url, b.url]);
  for (let i = 0; i < 10; i++) await (await request(`${web}/api/x`)).body.text();
  await (await request(`${web}/nothing-here`)).body.text();

  // Someone in a chat room, so the rooms panel has one.
  const ws = new WebSocket(`${web.replace('http', 'ws')}/chat/lobby`);
  closers.push(() => ws.terminate());
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'join', nick: 'watcher' }));
  await new Promise<void>((resolve) => ws.on('message', (m) => JSON.parse(String(m)).type === 'welcome' && resolve()));

  const browser = await launchChromium();
  closers.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  const response = await page.goto(`${admin}/`);
  assert.ok(response);
  assert.equal(response.status(), 200);
  assert.equal(response.headers()['cache-control'], 'no-store');
  assert.match(response.headers()['content-security-policy'], /script-src 'nonce-/);

  await page.waitForSelector('#app[data-ready="true"]');
  await page.waitForSelector('#status[data-live="live"]');
  await page.waitForSelector('tr.listener[data-listener="web"]');
  await page.waitForSelector('tr.listener[data-listener="admin"]');
  for (const route of ['hello', 'api', 'chat']) await page.waitForSelector(`tr.route[data-listener="web"][data-route="${route}"]`);
  await page.waitForSelector(`tr.target[data-target="${a.id}"][data-state="up"]`);
  await page.waitForSelector(`tr.target[data-target="${b.id}"][data-state="up"]`);
  await page.waitForSelector('[data-room="lobby"]');
  await page.waitForSelector('.process[data-role="main"]');
  assert.match((await page.textContent('tr.route[data-route="api"]')) ?? '', /proxy/);
  assert.match((await page.textContent('#upstreams')) ?? '', /breaker closed/);

  // One backend goes away: active checks (every 200 ms, fall 1) mark it down; the next snapshot shows it red.
  await b.stop();
  await page.waitForSelector(`tr.target[data-target="${b.id}"][data-state="down"]`, { timeout: WAIT_MS });
  const row = page.locator(`tr.target[data-target="${b.id}"]`);
  assert.match((await row.getAttribute('class')) ?? '', /\bstate-down\b/);
  // (No named functions inside evaluate: tsx would wrap them in a helper the page lacks.)
  const colors = await page.evaluate(
    (ids) => ids.map((id) => getComputedStyle(document.querySelector(`tr.target[data-target="${id}"] td`)!).backgroundColor),
    [b.id, a.id],
  );
  assert.notEqual(colors[0], colors[1], 'the down row is drawn differently (red)');
  await page.waitForSelector(`tr.target[data-target="${a.id}"][data-state="up"]`);

  const dir = await mkdtemp(join(tmpdir(), 'switchyard-dashboard-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const shot = join(dir, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  const png = await readFile(shot);
  assert.ok(png.length > 1000, 'a screenshot');
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');

  // A phone: nothing wider than the screen, the tables as one card per row.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForSelector('#app[data-ready="true"]');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow}px wider than a phone's screen`);
  const phoneShot = join(dir, 'dashboard-phone.png');
  await page.screenshot({ path: phoneShot, fullPage: true });
  assert.ok((await readFile(phoneShot)).length > 1000);

  assert.deepEqual(problems, [], 'no script errors and no CSP violations');
  await context.close();
});
