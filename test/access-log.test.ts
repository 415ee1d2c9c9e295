import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { serve, createLogger, type Yard } from '../src/index.ts';
import { parseConfig } from '../src/config/load.ts';
import { clfEscape, clfTime } from '../src/middleware/access-log.ts';
import { LineFile, reopenLineFiles, lineFile } from '../src/observe/line-file.ts';
import { prettyLine, resolveLogFormat } from '../src/observe/log-format.ts';
import { startDaemon, killDaemon, cliPath, repoRoot, type Daemon } from './helpers/daemon.ts';

// The access log in each of its formats, from a real daemon and real clients: JSON records (the
// default), Apache's common and nginx's combined lines through the daemon's log or to a file of
// their own; and the daemon's log as a person reads it (--log-format pretty, auto on a terminal).

const dir = mkdtempSync(join(tmpdir(), 'sy-access-'));
const yards: Yard[] = [];
const daemons: Daemon[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const d of daemons) await killDaemon(d);
});

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A yard whose log records are kept as parsed objects. */
async function yardWithLog(accessLog: unknown, body = 'hello'): Promise<{ port: number; records: Record<string, unknown>[] }> {
  const records: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const y = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', middleware: { accessLog }, routes: [{ name: 'hello', handler: { type: 'respond', body } }] }],
    },
    { logger: createLogger('info', sink) },
  );
  yards.push(y);
  return { port: y.address('web').port, records };
}

/** A GET with exactly these headers (node:http sends no others but Host and Connection). */
function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** nginx's $time_local: `07/Dec/2026:12:00:00 +0000`. */
const TIME = String.raw`\d\d/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}`;

test('json (the default): one request record with listener, route, status, bytes and request id', async () => {
  const { port, records } = await yardWithLog(true);
  await get(port, '/a?x=1', { 'x-request-id': 'log-me', 'user-agent': 'test-agent' });
  const rec = await until('the request record', () => records.find((r) => r.msg === 'request'));
  assert.equal(rec.listener, 'web');
  assert.equal(rec.route, 'hello');
  assert.equal(rec.method, 'GET');
  assert.equal(rec.url, '/a?x=1');
  assert.equal(rec.status, 200);
  assert.equal(rec.bytes, 5);
  assert.equal(rec.remote, '127.0.0.1');
  assert.equal(rec.requestId, 'log-me');
  assert.equal(rec.userAgent, 'test-agent');
  assert.equal(typeof rec.durationMs, 'number');
});

test('common: Apache\'s Common Log Format, exactly, as the message of a log record', async () => {
  const { port, records } = await yardWithLog({ format: 'common' });
  const basic = `Basic ${Buffer.from('alice:secret').toString('base64')}`;
  await get(port, '/path/a%20b?q=1', { authorization: basic, referer: 'http://example.test/', 'user-agent': 'curl/8.5.0' });
  await get(port, '/head', {}, 'HEAD');
  const lines = await until('two access lines', () => {
    const l = records.filter((r) => typeof r.msg === 'string' && (r.msg as string).startsWith('127.0.0.1 ')).map((r) => r.msg as string);
    return l.length >= 2 && l;
  });
  assert.match(lines[0], new RegExp(String.raw`^127\.0\.0\.1 - alice \[${TIME}\] "GET /path/a%20b\?q=1 HTTP/1\.1" 200 5$`));
  assert.match(lines[1], new RegExp(String.raw`^127\.0\.0\.1 - - \[${TIME}\] "HEAD /head HTTP/1\.1" 200 0$`));
  // Only the line: no request fields beside it.
  const rec = records.find((r) => r.msg === lines[0])!;
  assert.deepEqual(Object.keys(rec).sort(), ['level', 'msg', 'pid', 'time']);
});

test('combined: nginx\'s combined format, quotes in a header escaped as nginx does', async () => {
  const { port, records } = await yardWithLog({ format: 'combined' });
  await get(port, '/c', { referer: 'http://example.test/page', 'user-agent': 'Mozilla/5.0 "quoted" \\ back' });
  await get(port, '/none');
  const lines = await until('two access lines', () => {
    const l = records.filter((r) => typeof r.msg === 'string' && (r.msg as string).startsWith('127.0.0.1 ')).map((r) => r.msg as string);
    return l.length >= 2 && l;
  });
  assert.match(lines[0], new RegExp(String.raw`^127\.0\.0\.1 - - \[${TIME}\] "GET /c HTTP/1\.1" 200 5 "http://example\.test/page" "Mozilla/5\.0 \\x22quoted\\x22 \\x5C back"$`));
  assert.match(lines[1], new RegExp(String.raw`^127\.0\.0\.1 - - \[${TIME}\] "GET /none HTTP/1\.1" 200 5 "-" "-"$`));
});

test('clfTime and clfEscape: nginx\'s time and escaping', () => {
  const d = new Date(2026, 11, 7, 12, 3, 4);
  const off = -d.getTimezoneOffset();
  const zone = `${off >= 0 ? '+' : '-'}${String(Math.floor(Math.abs(off) / 60)).padStart(2, '0')}${String(Math.abs(off) % 60).padStart(2, '0')}`;
  assert.equal(clfTime(d), `07/Dec/2026:12:03:04 ${zone}`);
  assert.equal(clfEscape('a"b\\c\nd\x7fé'), 'a\\x22b\\x5Cc\\x0Ad\\x7F\\xE9');
  assert.equal(clfEscape('plain /path?q=1'), 'plain /path?q=1');
});

test('file: combined lines in a file of their own, nothing in the daemon\'s log; json lines there too', async () => {
  const file = join(dir, 'combined.log');
  const { port, records } = await yardWithLog({ format: 'combined', file });
  await get(port, '/to-file', { 'user-agent': 'ua' });
  const text = await until('the line in the file', () => {
    const t = readFileSync(file, 'utf8');
    return t.includes('/to-file') && t;
  });
  assert.match(text, new RegExp(String.raw`^127\.0\.0\.1 - - \[${TIME}\] "GET /to-file HTTP/1\.1" 200 5 "-" "ua"\n$`));
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.equal(records.filter((r) => r.msg === 'request' || String(r.msg).includes('/to-file')).length, 0, 'not in the daemon\'s log');

  const jsonFile = join(dir, 'json.log');
  const j = await yardWithLog({ file: jsonFile });
  await get(j.port, '/json-file');
  const line = await until('the JSON line in the file', () => readFileSync(jsonFile, 'utf8').split('\n').find((l) => l.includes('/json-file')));
  const rec = JSON.parse(line) as Record<string, unknown>;
  assert.equal(rec.msg, 'request');
  assert.equal(rec.url, '/json-file');
  assert.equal(rec.status, 200);
  assert.match(String(rec.time), /^\d{4}-\d\d-\d\dT/);
});

test('file: a relative path is a config error naming the field', () => {
  const config = { listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', middleware: { accessLog: { format: 'common', file: 'access.log' } }, routes: [{ handler: { type: 'respond', body: 'x' } }] }] };
  assert.throws(
    () => parseConfig(config, 'test.yaml'),
    (err: Error) => /accessLog/.test(err.message) && /absolute path/.test(err.message),
  );
  const bad = { ...config, listeners: [{ ...config.listeners[0], middleware: { accessLog: { format: 'apache' } } }] };
  assert.throws(() => parseConfig(bad, 'test.yaml'), /accessLog/);
});

test('LineFile: a full backlog drops lines and counts them instead of holding them; SIGUSR1 reopen moves on to a new file', async () => {
  const file = join(dir, 'slow.log');
  const warnings: string[] = [];
  const f = new LineFile(file, 4096, (l) => warnings.push(l));
  const line = 'x'.repeat(99) + '\n';
  // 10,000 lines written at once: far more than the 4 KiB backlog.
  for (let i = 0; i < 10_000; i++) f.write(line);
  assert.ok(f.dropped > 0, 'lines were dropped');
  assert.ok(f.dropped < 10_000, 'some were written');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /dropping lines/);
  // Once the disk caught up, writing works again and says how many were lost.
  await until('the backlog written', () => readFileSync(file, 'utf8').length === (10_000 - f.dropped) * line.length);
  f.write('after\n');
  assert.equal(warnings.length, 2);
  assert.match(warnings[1], new RegExp(`writing again; ${f.dropped} lines dropped`));
  await f.close();

  const rotated = join(dir, 'rotated.log');
  const shared = lineFile(rotated);
  shared.write('one\n');
  await until('the first line', () => readFileSync(rotated, 'utf8') === 'one\n');
  renameSync(rotated, `${rotated}.1`);
  reopenLineFiles();
  shared.write('two\n');
  await until('the second line in a new file', () => {
    try {
      return readFileSync(rotated, 'utf8') === 'two\n';
    } catch {
      return false;
    }
  });
  assert.equal(readFileSync(`${rotated}.1`, 'utf8'), 'one\n');
});

test('a daemon\'s access log file: rotated by a rename and SIGUSR1, lines go on in a new file', async () => {
  const file = join(dir, 'daemon-access.log');
  const d = await startDaemon([configFile(`    middleware: { accessLog: { format: common, file: ${file} } }\n`)], { cwd: dir });
  daemons.push(d);
  const port = d.port('web');
  await get(port, '/before');
  await until('/before in the file', () => readFileSync(file, 'utf8').includes('"GET /before HTTP/1.1" 200 2\n'));
  renameSync(file, `${file}.1`);
  d.child.kill('SIGUSR1');
  await until('a new file', () => {
    try {
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
  await get(port, '/after');
  await until('/after in the new file', () => readFileSync(file, 'utf8').includes('"GET /after HTTP/1.1" 200 2\n'));
  assert.ok(!readFileSync(`${file}.1`, 'utf8').includes('/after'));
  assert.ok(!d.stdout().includes('/before'), 'not in the daemon\'s log');
  assert.equal(d.child.exitCode, null);
  await killDaemon(d);
});

// --- the daemon's log format ------------------------------------------------------------------

function configFile(extra = ''): string {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `listeners:\n  - name: web\n    protocol: http\n    address: 127.0.0.1:0\n${extra}    routes:\n      - handler: { type: respond, body: "hi" }\n`);
  return file;
}

test('--log-format pretty: request lines in their human form, no JSON', async () => {
  const d = await startDaemon([configFile(), '--log-format', 'pretty'], { cwd: dir });
  daemons.push(d);
  await get(d.port('web'), '/pretty?x=1');
  const line = await until('the request line', () => d.stdout().split('\n').find((l) => l.includes('/pretty')));
  assert.match(line, /^\d\d:\d\d:\d\d INFO {2}GET \/pretty\?x=1 200 \d+\.\d+m?s 2B listener=web route=\S+$/);
  assert.ok(!line.includes('{'), 'no JSON braces on a request line');
  assert.ok(!d.stdout().split('\n').some((l) => l.startsWith('{')), 'no JSON lines at all');
  assert.ok(!d.stdout().includes('\x1b['), 'no colors when stdout is not a terminal');
  await killDaemon(d);
});

test('--log-format pretty with the combined access log: the nginx line after time and level', async () => {
  const d = await startDaemon([configFile('    middleware: { accessLog: { format: combined } }\n'), '--log-format', 'pretty'], { cwd: dir });
  daemons.push(d);
  await get(d.port('web'), '/p', { 'user-agent': 'ua' });
  const line = await until('the access line', () => d.stdout().split('\n').find((l) => l.includes('"GET /p ')));
  assert.match(line, new RegExp(String.raw`^\d\d:\d\d:\d\d INFO {2}127\.0\.0\.1 - - \[${TIME}\] "GET /p HTTP/1\.1" 200 2 "-" "ua"$`));
  await killDaemon(d);
});

test('--log-format auto (the default) with pipes: JSON lines', async () => {
  const d = await startDaemon([configFile()], { cwd: dir });
  daemons.push(d);
  await get(d.port('web'), '/auto');
  const line = await until('the request record', () => d.stdout().split('\n').find((l) => l.includes('/auto')));
  const rec = JSON.parse(line) as Record<string, unknown>;
  assert.equal(rec.msg, 'request');
  assert.equal(rec.url, '/auto');
  await killDaemon(d);
});

test('resolveLogFormat: auto is pretty only on a terminal without a log file', () => {
  assert.equal(resolveLogFormat('auto', { tty: true }), 'pretty');
  assert.equal(resolveLogFormat('auto', { tty: false }), 'json');
  assert.equal(resolveLogFormat('auto', { tty: true, file: '/var/log/x.log' }), 'json');
  assert.equal(resolveLogFormat('json', { tty: true }), 'json');
  assert.equal(resolveLogFormat('pretty', { tty: false }), 'pretty');
});

test('prettyLine: a request record in its compact form, colored by level and status when asked', () => {
  const rec = { level: 30, time: '2026-12-07T12:03:04.000Z', pid: 1, listener: 'web', route: 'api', method: 'GET', url: '/a b', status: 503, bytes: 2048, durationMs: 1234.5, remote: '127.0.0.1', msg: 'request' };
  assert.equal(prettyLine(JSON.stringify(rec)), '2026-12-07T12:03:04.000Z INFO  GET "/a b" 503 1.23s 2.0KiB listener=web route=api\n');
  const colored = prettyLine(JSON.stringify(rec), { color: true, clock: 'time' });
  assert.match(colored, /^\x1b\[2m\d\d:\d\d:\d\d\x1b\[0m \x1b\[32mINFO \x1b\[0m GET "\/a b" \x1b\[31m503\x1b\[0m /);
  const warn = prettyLine(JSON.stringify({ level: 40, time: '2026-12-07T12:03:04.000Z', msg: 'upstream target down', upstream: 'api', reason: 'ECONNREFUSED' }), { color: true });
  assert.match(warn, /\x1b\[33mWARN \x1b\[0m upstream target down \x1b\[2mupstream=\x1b\[0mapi/);
});

// A real terminal: `script` gives the daemon a pseudo-terminal for its stdout.
const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

async function onTerminal(env: NodeJS.ProcessEnv): Promise<string> {
  const tsx = import.meta.resolve('tsx');
  const command = [process.execPath, '--import', tsx, cliPath, 'serve', configFile()].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.on('exit', r));
  try {
    const port = Number((await until('the banner', () => /^ {2}web\s+http\s+http:\/\/127\.0\.0\.1:(\d+)/m.exec(out) ?? undefined))[1]);
    await get(port, '/tty');
    return await until('the request line', () => out.split(/\r?\n/).find((l) => l.includes('/tty')));
  } finally {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    await exited;
  }
}

test('--log-format auto on a terminal: pretty, colored; NO_COLOR turns the colors off', { skip: !hasScript && 'no `script` to make a terminal' }, async () => {
  const colored = await onTerminal({ NO_COLOR: '', FORCE_COLOR: '' });
  assert.ok(colored.includes('\x1b['), `colors on a terminal: ${JSON.stringify(colored)}`);
  assert.match(colored.replace(/\x1b\[[0-9;]*m/g, ''), /^\d\d:\d\d:\d\d INFO {2}GET \/tty 200 \S+ 2B listener=web route=\S+$/);
  const plain = await onTerminal({ NO_COLOR: '1' });
  assert.match(plain, /^\d\d:\d\d:\d\d INFO {2}GET \/tty 200 \S+ 2B listener=web route=\S+$/);
});
