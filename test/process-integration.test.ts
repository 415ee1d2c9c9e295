import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, killDaemon, runCli, type Daemon } from './helpers/daemon.ts';
import { nativeLibc } from '../src/sys/koffi.ts';
import { notifySocketAddress } from '../src/yard/sd-notify.ts';
import { oneAtATime } from '../src/yard/signals.ts';
import { prettyLine } from '../src/observe/logger.ts';

// The daemon as a service manager runs it: pid file, systemd's notify socket and watchdog,
// SIGHUP (reload), log formats and files reopened on SIGUSR1, and `switchyard reload` against
// an admin API. Every daemon is the real CLI in its own process.

const dir = mkdtempSync(join(tmpdir(), 'sy-proc-'));
const daemons: Daemon[] = [];
after(async () => {
  for (const d of daemons) await killDaemon(d);
});

let configs = 0;
function configFile(body: string, extra = ''): string {
  const file = join(dir, `c${++configs}.yaml`);
  writeConfig(file, body, extra);
  return file;
}
function writeConfig(file: string, body: string, extra = ''): void {
  writeFileSync(
    file,
    `listeners:\n  - name: web\n    protocol: http\n    address: 127.0.0.1:0\n    routes:\n      - handler: { type: respond, body: ${JSON.stringify(body)} }\n${extra}`,
  );
}

async function daemon(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const d = await startDaemon(args, { env, cwd: dir });
  daemons.push(d);
  return d;
}

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The JSON log records on a daemon's stdout (the banner lines are not JSON). */
function records(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function stop(d: Daemon): Promise<void> {
  d.child.kill('SIGTERM');
  const exit = await d.exited;
  assert.equal(exit.code, 0, `${JSON.stringify(exit)} ${d.stderr()}`);
}

// --- a unix datagram socket to play systemd's side of NOTIFY_SOCKET ---------------------------

interface Datagrams {
  messages: string[];
  next(match: RegExp, from?: number): Promise<{ text: string; index: number }>;
  close(): void;
}

function listenDatagrams(name: string): Datagrams {
  const n = nativeLibc();
  if (!n) throw new Error('koffi is needed for this test');
  const { koffi, lib } = n;
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const bind = lib.func('int bind(int fd, const void *addr, uint32_t len)');
  const recv = lib.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)');
  const close = lib.func('int close(int fd)');
  const fd = socket(1 /* AF_UNIX */, 2 /* SOCK_DGRAM */ | 0o4000 /* SOCK_NONBLOCK */ | 0o2000000 /* SOCK_CLOEXEC */, 0) as number;
  assert.ok(fd >= 0, `socket: errno ${koffi.errno()}`);
  const { addr, length } = notifySocketAddress(name);
  assert.equal(bind(fd, addr, length), 0, `bind ${name}: errno ${koffi.errno()}`);
  const messages: string[] = [];
  const buf = Buffer.alloc(4096);
  const timer = setInterval(() => {
    for (;;) {
      const got = Number(recv(fd, buf, buf.length, 0x40 /* MSG_DONTWAIT */));
      if (got < 0) break;
      messages.push(buf.subarray(0, got).toString());
    }
  }, 10);
  return {
    messages,
    next: (match, from = 0) =>
      until(`a notification matching ${match} (got: ${JSON.stringify(messages)})`, () => {
        for (let i = from; i < messages.length; i++) if (match.test(messages[i])) return { text: messages[i], index: i };
        return undefined;
      }),
    close: () => {
      clearInterval(timer);
      close(fd);
    },
  };
}

// --- pid file -------------------------------------------------------------------------------------

test('--pid-file: written once listening, removed on exit', async () => {
  const pidFile = join(dir, 'a.pid');
  const d = await daemon([configFile('hi\n'), '--pid-file', pidFile]);
  assert.equal(readFileSync(pidFile, 'utf8'), `${d.child.pid}\n`);
  await stop(d);
  assert.equal(existsSync(pidFile), false, 'the pid file is removed at exit');
});

test('--pid-file naming a live process: the start is refused with a clear error, the file untouched', async () => {
  const pidFile = join(dir, 'live.pid');
  writeFileSync(pidFile, `${process.pid}\n`); // this test runner: alive
  const r = await runCli(['serve', configFile('hi\n'), '--pid-file', pidFile]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`--pid-file .*live\\.pid: process ${process.pid} is running`));
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack');
  assert.equal(readFileSync(pidFile, 'utf8'), `${process.pid}\n`);
});

test('--pid-file naming a process that is gone: overwritten', async () => {
  const pidFile = join(dir, 'stale.pid');
  const gone = spawnSync('true').pid;
  writeFileSync(pidFile, `${gone}\n`);
  const d = await daemon([configFile('hi\n'), '--pid-file', pidFile]);
  assert.equal(readFileSync(pidFile, 'utf8'), `${d.child.pid}\n`);
  await stop(d);
  assert.equal(existsSync(pidFile), false);
});

// --- systemd notifications ------------------------------------------------------------------------

test('NOTIFY_SOCKET: READY with MAINPID and the listeners, WATCHDOG pings, RELOADING/READY around SIGHUP, STOPPING on SIGTERM', async () => {
  const sock = join(dir, 'notify.sock');
  const systemd = listenDatagrams(sock);
  try {
    const d = await daemon([configFile('hi\n')], { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000' });
    const ready = await systemd.next(/^READY=1$/m);
    assert.match(ready.text, new RegExp(`^MAINPID=${d.child.pid}$`, 'm'));
    assert.match(ready.text, new RegExp(`^STATUS=listening: web http://127\\.0\\.0\\.1:${d.port('web')}/$`, 'm'));
    // WATCHDOG_USEC=200ms: a ping every 100 ms; wait for a few after READY.
    const w1 = await systemd.next(/^WATCHDOG=1$/, ready.index);
    await systemd.next(/^WATCHDOG=1$/, w1.index + 1);

    const before = process.hrtime.bigint() / 1000n;
    d.child.kill('SIGHUP');
    const reloading = await systemd.next(/^RELOADING=1$/m, ready.index + 1);
    const afterSignal = process.hrtime.bigint() / 1000n;
    const usec = BigInt(/^MONOTONIC_USEC=(\d+)$/m.exec(reloading.text)?.[1] ?? '0');
    assert.ok(usec >= before && usec <= afterSignal, `MONOTONIC_USEC ${usec} is CLOCK_MONOTONIC, between ${before} and ${afterSignal}`);
    const readyAgain = await systemd.next(/^READY=1$/m, reloading.index + 1);
    assert.match(readyAgain.text, /^STATUS=listening: web /m);
    assert.equal(d.child.exitCode, null, 'SIGHUP does not end the daemon');

    d.child.kill('SIGTERM');
    await systemd.next(/^STOPPING=1$/m, readyAgain.index + 1);
    assert.equal((await d.exited).code, 0);
  } finally {
    systemd.close();
  }
});

test('NOTIFY_SOCKET as an abstract @name; no WATCHDOG when WATCHDOG_PID is another process', async () => {
  const name = `@switchyard-test-${process.pid}-${Date.now()}`;
  const systemd = listenDatagrams(name);
  try {
    const d = await daemon([configFile('hi\n')], { NOTIFY_SOCKET: name, WATCHDOG_USEC: '40000', WATCHDOG_PID: String(process.pid) });
    const ready = await systemd.next(/^READY=1$/m);
    assert.match(ready.text, new RegExp(`^MAINPID=${d.child.pid}$`, 'm'));
    await new Promise((r) => setTimeout(r, 300)); // would be ~15 pings at 20 ms
    assert.deepEqual(systemd.messages.filter((m) => /WATCHDOG=1/.test(m)), []);
    await stop(d);
  } finally {
    systemd.close();
  }
});

// --- SIGHUP ---------------------------------------------------------------------------------------

test('SIGHUP reloads instead of ending the daemon: a changed respond body takes effect; a broken config leaves the running one', async () => {
  const file = configFile('one\n');
  const d = await daemon([file]);
  const url = `http://127.0.0.1:${d.port('web')}/`;
  assert.equal(await (await fetch(url)).text(), 'one\n');

  writeConfig(file, 'two\n');
  d.child.kill('SIGHUP');
  const outcome = await until('the reload outcome in the log', () => records(d.stdout()).find((r) => r.reload === 'done' || r.reload === 'failed'));
  assert.equal(d.child.exitCode, null);
  assert.ok(records(d.stdout()).some((r) => r.signal === 'SIGHUP' && /SIGHUP: reloading .*\.yaml/.test(String(r.msg))));
  assert.equal(outcome.reload, 'done', JSON.stringify(outcome));
  assert.equal(await (await fetch(url)).text(), 'two\n');

  // A config that does not parse never reaches the yard: the error and "unchanged".
  writeFileSync(file, 'listeners: [ {{{\n');
  d.child.kill('SIGHUP');
  const failed = await until('the failed reload in the log', () => records(d.stdout()).filter((r) => r.reload === 'failed').find((r) => /YAML/.test(String(r.error))));
  assert.equal(failed.level, 50);
  assert.match(String(failed.msg), /^reload failed: .*not valid YAML.*; the running config is unchanged$/);
  assert.equal(await (await fetch(url)).text(), 'two\n');

  // A config that parses but does not validate: the same.
  writeFileSync(file, 'listeners: []\nbogus: 1\n');
  d.child.kill('SIGHUP');
  const invalid = await until('the invalid config reported', () => records(d.stdout()).find((r) => r.reload === 'failed' && /bogus/.test(String(r.msg))));
  assert.match(String(invalid.msg), /^reload failed: .*\.yaml: 2 problems: bogus: unknown field "bogus" \(fields here: [a-z, ]+\); listeners: at least one listener is needed; the running config is unchanged$/);
  assert.equal(await (await fetch(url)).text(), 'two\n');
  assert.equal(d.child.exitCode, null);
  await stop(d);
});

test('SIGHUP to the embedded default reloads the embedded default (with the same -l overrides)', async () => {
  const ports = 'web=127.0.0.1:0,secure=127.0.0.1:0,echo-tcp=127.0.0.1:0,echo-udp=127.0.0.1:0,files-tcp=127.0.0.1:0,chat-tcp=127.0.0.1:0,admin=127.0.0.1:0';
  const d = await daemon([], { SWITCHYARD_LISTEN: ports, SWITCHYARD_DATA_DIR: join(dir, 'data') });
  const web = `http://127.0.0.1:${d.port('web')}/health`;
  d.child.kill('SIGHUP');
  const outcome = await until('the reload outcome', () => records(d.stdout()).find((r) => r.reload === 'done' || r.reload === 'failed'));
  assert.ok(records(d.stdout()).some((r) => r.msg === 'SIGHUP: reloading embedded default config'));
  assert.equal(outcome.reload, 'done', JSON.stringify(outcome));
  assert.equal(await (await fetch(web)).text(), 'ok\n', 'still serving on the same port');
  await stop(d);
});

test('oneAtATime: a call during a run asks for exactly one more run after it', async () => {
  let runs = 0;
  let active = 0;
  let release!: () => void;
  const task = oneAtATime(async () => {
    runs++;
    active++;
    assert.equal(active, 1, 'never two at once');
    await new Promise<void>((r) => (release = r));
    active--;
  });
  const first = task();
  const second = task();
  const third = task();
  assert.equal(second, third, 'calls during a run fold into one');
  assert.equal(runs, 1);
  release();
  await first;
  await until('the second run', () => runs === 2);
  release();
  await second;
  assert.equal(runs, 2);
  const fourth = task();
  assert.equal(runs, 3);
  release();
  await fourth;
});

// --- logs -----------------------------------------------------------------------------------------

test('--log-format pretty: one readable line per record on stdout', async () => {
  const d = await daemon([configFile('hi\n'), '--log-format', 'pretty']);
  await (await fetch(`http://127.0.0.1:${d.port('web')}/pretty?x=1`)).text();
  const line = await until('the access log line', () => d.stdout().split('\n').find((l) => l.includes('/pretty')));
  assert.match(line, /^\d\d:\d\d:\d\d INFO {2}GET \/pretty\?x=1 200 \d+\.\d+m?s 3B listener=web/);
  assert.ok(!d.stdout().split('\n').some((l) => l.startsWith('{')), 'no JSON lines');
  await stop(d);
});

test('prettyLine: quoting, errors, levels and a message on one line', () => {
  const line = prettyLine(JSON.stringify({ level: 50, time: '2024-05-01T10:00:00.000Z', pid: 1, msg: 'a\nb', path: '/x y', n: 3, err: { type: 'Error', message: 'boom', stack: 'Error: boom\n at x' }, obj: { a: 1 } }) + '\n');
  assert.equal(line, '2024-05-01T10:00:00.000Z ERROR a\\nb path="/x y" n=3 err="Error: boom" obj={"a":1}\n');
  assert.equal(prettyLine('not json'), 'not json\n');
});

test('--log-file: appended there (0640), reopened on SIGUSR1 after a rename', async () => {
  const log = join(dir, 'switchyard.log');
  const d = await daemon([configFile('hi\n'), '--log-file', log]);
  const web = `http://127.0.0.1:${d.port('web')}`;
  assert.equal(statSync(log).mode & 0o777, 0o640);
  await (await fetch(`${web}/first`)).text();
  await until('/first in the log file', () => records(readFileSync(log, 'utf8')).some((r) => r.url === '/first'));
  assert.equal(records(d.stdout()).length, 0, 'nothing logged on stdout');

  renameSync(log, `${log}.1`);
  await (await fetch(`${web}/second`)).text();
  await until('/second in the renamed file', () => records(readFileSync(`${log}.1`, 'utf8')).some((r) => r.url === '/second'));
  d.child.kill('SIGUSR1');
  await until('a new log file', () => existsSync(log));
  assert.equal(statSync(log).mode & 0o777, 0o640);
  await (await fetch(`${web}/third`)).text();
  await until('/third in the new file', () => records(readFileSync(log, 'utf8')).some((r) => r.url === '/third'));
  assert.ok(!records(readFileSync(`${log}.1`, 'utf8')).some((r) => r.url === '/third'));
  assert.equal(d.child.exitCode, null, 'SIGUSR1 does not end the daemon');
  await stop(d);
});

test('--log-file in a folder that does not exist: one clear line, exit 1', async () => {
  const r = await runCli(['serve', configFile('hi\n'), '--log-file', join(dir, 'nope', 'x.log')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^switchyard: --log-file .*x\.log: cannot open it \(ENOENT\)\n$/);
});

// --- switchyard reload ----------------------------------------------------------------------------

async function fakeAdmin(answer: (req: IncomingMessage) => { status: number; body: string }): Promise<{ server: Server; url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    const a = answer(req);
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}`, seen };
}

test('switchyard reload: POST /reload; exit 0 on ok, 1 on a refusal, 1 without a reload endpoint, 2 when unreachable', async () => {
  const good = await fakeAdmin(() => ({ status: 200, body: JSON.stringify({ ok: true, changed: ['listeners.web'] }) }));
  try {
    const r = await runCli(['reload', '--admin', good.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, changed: ['listeners.web'] });
    assert.match(r.stderr, /reloaded \(changed: listeners\.web\)/);
    assert.deepEqual(good.seen, ['POST /reload']);
    // host:port alone, and a trailing slash
    const bare = await runCli(['reload', '--admin', `${good.url.slice('http://'.length)}/`]);
    assert.equal(bare.code, 0, bare.stderr);
    assert.deepEqual(good.seen, ['POST /reload', 'POST /reload']);
  } finally {
    good.server.close();
  }

  const bad = await fakeAdmin((req) =>
    req.headers.authorization === 'Bearer 0123456789abcdef0123'
      ? { status: 422, body: JSON.stringify({ ok: false, error: 'listeners[0].address: port in use' }) }
      : { status: 403, body: JSON.stringify({ error: 'forbidden' }) },
  );
  try {
    const denied = await runCli(['reload'], { env: { SWITCHYARD_ADMIN: bad.url } });
    assert.equal(denied.code, 1, denied.stderr);
    assert.match(denied.stderr, /HTTP 403 without a reload result \(the admin API takes loopback callers, or its token in \$SWITCHYARD_ADMIN_TOKEN\)/);
    const r = await runCli(['reload'], { env: { SWITCHYARD_ADMIN: bad.url, SWITCHYARD_ADMIN_TOKEN: '0123456789abcdef0123' } });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(JSON.parse(r.stdout).ok, false);
    assert.match(r.stderr, /reload failed: listeners\[0\]\.address: port in use; the running config is unchanged/);
  } finally {
    bad.server.close();
  }

  const old = await fakeAdmin(() => ({ status: 404, body: 'not found' }));
  try {
    const r = await runCli(['reload', '--admin', old.url]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HTTP 404 without a reload result \(this daemon has no reload endpoint: send it SIGHUP instead\)/);
  } finally {
    old.server.close();
  }

  const gone = await fakeAdmin(() => ({ status: 200, body: '{}' }));
  await new Promise((r) => gone.server.close(r));
  const r = await runCli(['reload', '--admin', gone.url]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /cannot reach the daemon's admin API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  assert.equal(r.stdout, '');
});

test('switchyard reload against a real daemon: the admin API reads the same config file again', async () => {
  const file = configFile('before\n', '  - name: admin\n    protocol: http\n    address: 127.0.0.1:0\n    routes:\n      - handler: { type: admin }\n');
  const d = await daemon([file]);
  const url = `http://127.0.0.1:${d.port('web')}/`;
  assert.equal(await (await fetch(url)).text(), 'before\n');
  writeFileSync(file, readFileSync(file, 'utf8').replace('before', 'after'));
  const r = await runCli(['reload', '--admin', `http://127.0.0.1:${d.port('admin')}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).ok, true);
  assert.equal(await (await fetch(url)).text(), 'after\n');

  writeFileSync(file, 'listeners: [ {{{\n');
  const refused = await runCli(['reload', '--admin', `http://127.0.0.1:${d.port('admin')}`]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /reload failed: .*not valid YAML.*the running config is unchanged/s);
  assert.equal(await (await fetch(url)).text(), 'after\n');
  await stop(d);
});
