import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { request } from 'undici';
import { startDaemon, killDaemon, type Daemon } from './helpers/daemon.ts';
import { browserSkipReason, launchChromium } from './helpers/browser.ts';
import type { DashboardSnapshot } from '../src/handlers/admin/dashboard.ts';

// The admin API of a daemon with `workers: 2`, with real processes: /events, /listeners and
// /upstreams answer for both workers (whichever one the request lands on), a drain through the
// admin API reaches both (their own states, and no proxied request reaches the drained target),
// a worker that is stopped (SIGSTOP) shows as stale instead of holding answers up, the dashboard
// in Chromium has a row per worker, and a killed worker's row comes back with its new pid and
// the drains made before it died.

const skip = browserSkipReason();
/** Upper bound for anything waited on (never a timing assertion: only how long to wait). */
const WAIT_MS = 20_000;
/** Bound for a killed worker's replacement to be up (a fresh process loading the code, on a busy machine). */
const RESTART_WAIT_MS = 60_000;

const dir = mkdtempSync(join(tmpdir(), 'sy-workers-admin-'));
const configFile = join(dir, 'yard.json');
let daemon: Daemon;
let admin: string;
let web: string;
const backends: { id: string; hits: number; server: Server }[] = [];
const closers: (() => unknown)[] = [];

async function backend(): Promise<{ id: string; hits: number; server: Server }> {
  const b = { id: '', hits: 0, server: createServer((_req, res) => res.end('ok\n')) };
  // Health checks (GET /health) are not counted as hits; proxied requests are.
  b.server.on('request', (req) => req.url !== '/health' && b.hits++);
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
  b.id = `127.0.0.1:${(b.server.address() as { port: number }).port}`;
  return b;
}

before(async () => {
  backends.push(await backend(), await backend());
  writeFileSync(
    configFile,
    JSON.stringify({
      workers: 2,
      listeners: [
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ name: 'api', match: { path: '/*' }, handler: { type: 'proxy', upstream: 'api' } }] },
        {
          name: 'admin',
          protocol: 'http',
          address: '127.0.0.1:0',
          middleware: { accessLog: false },
          routes: [
            { match: { path: '/metrics' }, handler: { type: 'metrics' } },
            // The embedded default's layout: the upstreams handler answers this path, not admin.
            { match: { path: '/state/upstreams' }, handler: { type: 'upstreams' } },
            { match: { path: '/*' }, handler: { type: 'admin' } },
          ],
        },
      ],
      upstreams: {
        api: { targets: backends.map((b) => `http://${b.id}`), retry: { attempts: 0 }, health: { path: '/health', interval: '200ms', timeout: '1s', fall: 1, rise: 1 } },
      },
      logging: { level: 'info' },
    }),
  );
  daemon = await startDaemon([configFile, '--grace', '1s'], { timeoutMs: 60_000 });
  admin = daemon.urls.get('admin')!;
  web = daemon.urls.get('web')!;
});

after(async () => {
  for (const c of closers.reverse()) await c();
  await killDaemon(daemon);
  for (const b of backends) {
    b.server.closeAllConnections();
    b.server.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

function workerPids(): number[] {
  const m = /2 worker processes \(pids (\d+), (\d+)\)/.exec(daemon.stdout());
  assert.ok(m, `the banner names the workers:\n${daemon.stdout()}`);
  return [Number(m[1]), Number(m[2])];
}

/** A request on a connection of its own, so that each may land on either worker. */
async function call(method: string, path: string): Promise<{ status: number; body: string }> {
  const res = await request(admin + path.slice(1), { method, headers: { connection: 'close' }, headersTimeout: WAIT_MS, bodyTimeout: WAIT_MS });
  return { status: res.statusCode, body: await res.body.text() };
}

async function getJson<T>(path: string): Promise<T> {
  const r = await call('GET', path);
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as T;
}

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET /events on its own connection, its snapshots parsed as they come. */
class Events {
  readonly snapshots: DashboardSnapshot[] = [];
  private buffer = '';
  private constructor(readonly res: IncomingMessage) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.buffer += chunk;
      let i;
      while ((i = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 2);
        const data = block.split('\n').find((l) => l.startsWith('data: '));
        if (block.includes('event: snapshot') && data) this.snapshots.push(JSON.parse(data.slice(6)) as DashboardSnapshot);
      }
    });
    res.on('error', () => undefined);
  }

  static open(): Promise<Events> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${admin}events`, { agent: false }, (res) => {
        const e = new Events(res);
        closers.push(() => e.close());
        resolve(e);
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** The first snapshot from now on for which `check` holds. */
  next(what: string, check: (s: DashboardSnapshot) => boolean): Promise<DashboardSnapshot> {
    const from = this.snapshots.length;
    return until(what, () => this.snapshots.slice(from).find(check));
  }

  close(): void {
    this.res.destroy();
  }
}

interface UpstreamsAnswer {
  upstreams: { name: string; targets: { id: string; drained: boolean; healthy: boolean; workers: { of: number; healthy: number; drained: number } }[] }[];
  workers: { worker: number; pid: number; state: string; error?: string; upstreams?: { name: string; targets: { id: string; drained: boolean }[] }[] }[];
}

/** The target's `drained` in each worker that answered, by pid. */
function drainedByWorker(u: UpstreamsAnswer, target: string): Map<number, boolean> {
  const out = new Map<number, boolean>();
  for (const w of u.workers) {
    const t = w.upstreams?.find((g) => g.name === 'api')?.targets.find((x) => x.id === target);
    if (t) out.set(w.pid, t.drained);
  }
  return out;
}

async function proxied(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await request(`${web}x`, { headers: { connection: 'close' } });
    assert.equal(res.statusCode, 200);
    await res.body.text();
  }
}

test('/events, /listeners and /upstreams answer for both workers: a row per worker pid, traffic summed', { timeout: 90_000 }, async () => {
  const pids = workerPids();
  await until('both targets healthy in both workers', async () => {
    const u = await getJson<UpstreamsAnswer>('/upstreams');
    return u.workers.every((w) => w.state === 'up') && u.upstreams[0].targets.every((t) => t.workers.healthy === 2) ? true : undefined;
  });
  await proxied(20);

  const events = await Events.open();
  const s = await events.next('a snapshot counting the 20 proxied requests', (x) => x.listeners.find((l) => l.name === 'web')?.traffic.requests === 20);
  const workerRows = s.processes.filter((p) => p.role === 'worker');
  assert.deepEqual(workerRows.map((p) => p.pid).sort(), [...pids].sort(), 'a process row per worker');
  assert.deepEqual(workerRows.map((p) => p.worker).sort(), [1, 2]);
  assert.ok(workerRows.every((p) => p.rssBytes > 0 && p.heapUsedBytes > 0 && p.restarts === 0 && p.state === 'up'));
  const primary = s.processes.find((p) => p.role === 'primary');
  assert.equal(primary?.pid, daemon.child.pid, 'the primary has a row too');
  assert.deepEqual(s.workers?.map((w) => [w.worker, w.pid, w.state]), [[1, pids[0], 'up'], [2, pids[1], 'up']]);
  // The route's count is the sum over the workers (each counted those it served).
  assert.equal(s.listeners.find((l) => l.name === 'web')?.routes.find((r) => r.name === 'api')?.traffic.requests, 20);
  const targets = s.upstreams.find((u) => u.name === 'api')!.targets;
  assert.ok(targets.every((t) => t.state === 'up' && t.workers?.length === 2), JSON.stringify(targets));
  // Rates and percentiles once there is a previous snapshot and a window.
  await proxied(10);
  const later = await events.next('a snapshot with a rate and percentiles', (x) => {
    const api = x.listeners.find((l) => l.name === 'web')?.routes.find((r) => r.name === 'api');
    return api?.traffic.requests === 30 && api.traffic.requestsPerSecond !== null && api.traffic.latencySeconds !== null;
  });
  const lat = later.totals.latencySeconds;
  assert.ok(lat && lat.p50 > 0 && lat.p50 <= lat.p90 && lat.p90 <= lat.p99);
  events.close();

  const l = await getJson<{ listeners: { name: string; inFlight: number; workers: { pid: number; inFlight: number }[] }[]; workers: { pid: number }[] }>('/listeners');
  assert.deepEqual(l.listeners.map((x) => x.name), ['web', 'admin']);
  for (const x of l.listeners) assert.deepEqual(x.workers.map((w) => w.pid).sort(), [...pids].sort());
  // This request itself is in flight in the worker answering it (the closed event stream may still count too).
  const adminL = l.listeners.find((x) => x.name === 'admin')!;
  assert.ok(adminL.inFlight >= 1);
  assert.equal(adminL.inFlight, adminL.workers.reduce((a, w) => a + w.inFlight, 0), 'the sum of the workers');

  const u = await getJson<UpstreamsAnswer>('/upstreams');
  assert.deepEqual(u.workers.map((w) => w.pid).sort(), [...pids].sort());
  assert.ok(u.workers.every((w) => w.upstreams?.[0]?.targets.length === 2));
  assert.ok(u.upstreams[0].targets.every((t) => t.workers.of === 2));
  const h = await getJson<UpstreamsAnswer>('/state/upstreams');
  assert.deepEqual(h.workers.map((w) => w.pid).sort(), [...pids].sort(), 'the upstreams handler answers for every worker too');
  assert.ok(h.upstreams[0].targets.every((t) => t.workers.of === 2));
});

test('a drain through the admin API reaches both workers, is logged once with who made it; enable puts the target back', { timeout: 90_000 }, async () => {
  const pids = workerPids();
  const [a] = backends;
  const before = (daemon.stdout().match(/admin: target drained in every worker/g) ?? []).length;
  const r = await call('POST', `/upstreams/api/targets/${encodeURIComponent(a.id)}/drain`);
  assert.equal(r.status, 200, r.body);
  const answer = JSON.parse(r.body) as { upstream: string; target: string; drained: boolean; workers: { pid: number; ok: boolean }[] };
  assert.equal(answer.drained, true);
  assert.deepEqual(answer.workers.map((w) => w.pid).sort(), [...pids].sort());
  assert.ok(answer.workers.every((w) => w.ok));

  // Acknowledged means applied: each worker's own state says drained, no waiting needed.
  const u = await getJson<UpstreamsAnswer>('/upstreams');
  assert.deepEqual([...drainedByWorker(u, a.id)].sort(), [...pids].sort().map((p) => [p, true]));
  assert.equal(u.upstreams[0].targets.find((t) => t.id === a.id)?.workers.drained, 2);
  const hits = a.hits;
  await proxied(30);
  assert.equal(a.hits, hits, 'no request reached the drained target, whichever worker proxied it');

  await until('the log line', () => ((daemon.stdout().match(/admin: target drained in every worker/g) ?? []).length > before ? true : undefined));
  const lines = daemon.stdout().split('\n').filter((x) => x.includes('admin: target drained in every worker'));
  assert.equal(lines.length, before + 1, 'logged once, not once per worker');
  const rec = JSON.parse(lines.at(-1)!) as { by: string; pid: number; upstream: string; target: string };
  assert.equal(rec.by, '127.0.0.1');
  assert.equal(rec.pid, daemon.child.pid, 'by the primary');
  assert.deepEqual([rec.upstream, rec.target], ['api', a.id]);

  // Not found is a 404, as with one process.
  assert.equal((await call('POST', '/upstreams/nope/targets/x/drain')).status, 404);
  const missing = await call('POST', '/upstreams/api/targets/127.0.0.1%3A1/drain');
  assert.equal(missing.status, 404);
  assert.match(missing.body, /has no target/);

  const e = await call('POST', `/upstreams/api/targets/${encodeURIComponent(a.id)}/enable`);
  assert.equal(e.status, 200, e.body);
  const back = await getJson<UpstreamsAnswer>('/upstreams');
  assert.ok([...drainedByWorker(back, a.id).values()].every((d) => d === false));
  await until('a request reaches the enabled target', async () => {
    await proxied(2);
    return a.hits > hits ? true : undefined;
  });
});

test('a stopped worker shows stale; answers do not wait for it beyond its timeout; a drain names the worker that did not acknowledge', { timeout: 90_000 }, async () => {
  const pids = workerPids();
  const stopped = pids[1];
  process.kill(stopped, 'SIGSTOP');
  closers.push(() => {
    try {
      process.kill(stopped, 'SIGCONT');
    } catch {
      // gone already
    }
  });
  try {
    const u = await getJson<UpstreamsAnswer>('/upstreams');
    const w2 = u.workers.find((w) => w.worker === 2);
    assert.equal(w2?.pid, stopped);
    assert.equal(w2?.state, 'stale');
    assert.match(w2?.error ?? '', /did not answer within/);
    assert.equal(u.workers.find((w) => w.worker === 1)?.state, 'up');

    const events = await Events.open();
    const s = await events.next('a snapshot with worker 2 stale', (x) => x.workers?.find((w) => w.worker === 2)?.state === 'stale');
    // Its last numbers stay on show, marked stale; the other worker is live.
    assert.equal(s.processes.find((p) => p.pid === stopped)?.state, 'stale');
    assert.equal(s.processes.find((p) => p.pid === pids[0])?.state, 'up');
    events.close();

    const r = await call('POST', `/upstreams/api/targets/${encodeURIComponent(backends[1].id)}/drain`);
    assert.equal(r.status, 504, r.body);
    const body = JSON.parse(r.body) as { error: string; workers: { worker: number; ok: boolean; error?: string }[] };
    assert.match(body.error, new RegExp(`worker 2 \\(pid ${stopped}\\): did not acknowledge`));
    assert.deepEqual(body.workers.map((w) => w.ok), [true, false]);
  } finally {
    process.kill(stopped, 'SIGCONT');
  }
  // Once it runs again it answers again (and has applied the drain it got late); put it back everywhere.
  await until('worker 2 answers again', async () => ((await getJson<UpstreamsAnswer>('/upstreams')).workers.every((w) => w.state === 'up') ? true : undefined));
  const e = await call('POST', `/upstreams/api/targets/${encodeURIComponent(backends[1].id)}/enable`);
  assert.equal(e.status, 200, e.body);
});

test('the dashboard in Chromium: a system row per worker; a killed worker comes back with a new pid', { skip, timeout: 120_000 }, async () => {
  const pids = workerPids();
  const browser = await launchChromium();
  closers.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT_MS);
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  const response = await page.goto(admin);
  assert.equal(response?.status(), 200);
  await page.waitForSelector('#app[data-ready="true"]');
  for (const [i, pid] of pids.entries()) await page.waitForSelector(`tr.process[data-role="worker"][data-worker="${i + 1}"][data-pid="${pid}"][data-state="up"]`);
  await page.waitForSelector(`tr.process[data-role="primary"][data-pid="${daemon.child.pid}"]`);
  await page.waitForSelector('tr.process-total');
  assert.equal(await page.locator('tr.process[data-role="worker"]').count(), 2);
  assert.match((await page.textContent('#meta')) ?? '', /2 workers/);
  await page.screenshot({ path: join(dir, 'workers.png'), fullPage: true });
  assert.deepEqual([...(await readFile(join(dir, 'workers.png'))).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG screenshot');

  process.kill(pids[0], 'SIGKILL');
  const row = await until('worker 1 back on the page with another pid', async () => {
    const el = page.locator('tr.process[data-role="worker"][data-worker="1"][data-state="up"]');
    if ((await el.count()) !== 1) return undefined;
    const pid = Number(await el.getAttribute('data-pid'));
    return pid !== pids[0] ? { pid, text: (await el.textContent()) ?? '' } : undefined;
  }, RESTART_WAIT_MS);
  assert.ok(row.pid > 0);
  assert.match(daemon.stdout(), new RegExp(`worker 1 is back \\(pid ${row.pid}\\)`));
  // Its restarts cell counts the one restart.
  assert.equal(await page.locator('tr.process[data-worker="1"] td[data-label="restarts"]').textContent(), '1');
  assert.equal(await page.locator('tr.process[data-role="worker"]').count(), 2);
  await page.screenshot({ path: join(dir, 'workers-after.png'), fullPage: true });
  // The one thing allowed: the page's event stream was cut when it was the killed worker's (it reconnects).
  assert.deepEqual(problems.filter((p) => !/ERR_INCOMPLETE_CHUNKED_ENCODING/.test(p)), []);
});

test('a killed worker is replaced: /events shows the new pid and a restart; drains made before reach it', { timeout: 120_000 }, async () => {
  const now = await getJson<UpstreamsAnswer>('/upstreams');
  const victim = now.workers.find((w) => w.worker === 2)!.pid;
  const [, b] = backends;
  const d = await call('POST', `/upstreams/api/targets/${encodeURIComponent(b.id)}/drain`);
  assert.equal(d.status, 200, d.body);

  process.kill(victim, 'SIGKILL');
  // A stream of its own each time: one that landed on the killed worker ends with it.
  const s = await until(
    'worker 2 back with a new pid',
    async () => {
      const events = await Events.open();
      try {
        const x = await events.next('a snapshot', () => true);
        const w = x.workers?.find((y) => y.worker === 2);
        return w !== undefined && w.state === 'up' && w.pid !== victim && x.processes.some((p) => p.worker === 2 && p.pid === w.pid) ? x : undefined;
      } catch {
        return undefined;
      } finally {
        events.close();
      }
    },
    RESTART_WAIT_MS,
  );
  const w2 = s.workers!.find((w) => w.worker === 2)!;
  assert.ok(w2.restarts >= 1);
  assert.equal(s.processes.filter((p) => p.role === 'worker').length, 2);

  // The new worker started from the config, then took the drain the primary remembers.
  await until('the drain in the new worker', async () => {
    const u = await getJson<UpstreamsAnswer>('/upstreams');
    const by = drainedByWorker(u, b.id);
    return by.get(w2.pid) === true && [...by.values()].every(Boolean) && by.size === 2 ? true : undefined;
  });
  const e = await call('POST', `/upstreams/api/targets/${encodeURIComponent(b.id)}/enable`);
  assert.equal(e.status, 200, e.body);
});
