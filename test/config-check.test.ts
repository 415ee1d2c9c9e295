import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, ConfigError } from '../src/index.ts';
import { runCli } from './helpers/daemon.ts';

// Config validation refuses what would only fail later: two listeners on one address (which
// `serve` used to find out at bind time) and durations longer than Node's longest timer.

const dir = mkdtempSync(join(tmpdir(), 'sy-config-check-'));

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    parseConfig(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('config was accepted');
}

type L = Record<string, unknown>;
const http = (name: string, address: string): L => ({ name, protocol: 'http', address, routes: [{ handler: { type: 'respond' } }] });
const tcp = (name: string, address: string): L => ({ name, protocol: 'tcp', address, handler: { type: 'echo' } });
const udp = (name: string, address: string): L => ({ name, protocol: 'udp', address, handler: { type: 'echo' } });
const unix = (name: string, path: string): L => ({ name, protocol: 'unix', path, handler: { type: 'echo' } });
const cfg = (...listeners: L[]) => ({ listeners });

test('two TCP-based listeners on the same host and port are refused, naming the field and the other listener', () => {
  const issues = issuesOf(cfg(http('web', '127.0.0.1:8080'), http('api', '127.0.0.1:8080')));
  assert.deepEqual(issues.map((i) => i.path), ['listeners[1].address']);
  assert.match(issues[0].message, /^127\.0\.0\.1:8080 is already used by listener "web" \(listeners\[0\]\)/);
  // http and tcp share the TCP port space.
  const mixed = issuesOf(cfg(udp('dns', '127.0.0.1:9000'), http('web', '127.0.0.1:8080'), tcp('echo', '127.0.0.1:8080')));
  assert.deepEqual(mixed.map((i) => i.path), ['listeners[2].address']);
  assert.match(mixed[0].message, /already used by listener "web" \(listeners\[1\]\).*share TCP ports/);
  // IPv6 compared in canonical form.
  const v6 = issuesOf(cfg(tcp('a', '[::1]:7000'), tcp('b', '[0:0:0:0:0:0:0:1]:7000')));
  assert.deepEqual(v6.map((i) => i.path), ['listeners[1].address']);
  // Every later duplicate is reported, each naming the first listener it collides with.
  const three = issuesOf(cfg(tcp('a', '127.0.0.1:7000'), tcp('b', '127.0.0.1:7000'), tcp('c', '127.0.0.1:7000')));
  assert.deepEqual(three.map((i) => i.path), ['listeners[1].address', 'listeners[2].address']);
  assert.match(three[1].message, /listener "a" \(listeners\[0\]\)/);
});

test('udp listeners conflict among themselves only; tcp and udp may share a port number', () => {
  const issues = issuesOf(cfg(udp('a', '127.0.0.1:5353'), udp('b', '127.0.0.1:5353')));
  assert.deepEqual(issues.map((i) => i.path), ['listeners[1].address']);
  assert.match(issues[0].message, /already used by listener "a"/);
  const c = parseConfig(cfg(tcp('t', '127.0.0.1:5353'), udp('u', '127.0.0.1:5353'), http('h', '0.0.0.0:5354'), udp('u2', '0.0.0.0:5354')));
  assert.equal(c.listeners.length, 4);
});

test("http3 takes the https listener's port over UDP too; udp listeners that both set reuseAddr may share an address", () => {
  const tls = { certificates: [{ cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' }] };
  const h3 = { ...http('site', '127.0.0.1:8443'), tls, http3: true };
  const withUdp = issuesOf(cfg(h3, udp('dns', '127.0.0.1:8443')));
  assert.deepEqual(withUdp.map((i) => i.path), ['listeners[1].address']);
  assert.match(withUdp[0].message, /already used by listener "site" \(listeners\[0\]\); http3 takes the listener's port over UDP too/);
  const quic = { name: 'q', protocol: 'quic', address: '127.0.0.1:8443', tls, handler: { type: 'echo' } };
  const second = issuesOf(cfg(quic, h3));
  assert.deepEqual(second.map((i) => i.path), ['listeners[1].http3']);
  assert.match(second[0].message, /127\.0\.0\.1:8443 \(UDP, for http3\) is already used by listener "q"/);
  // Without http3 the same https listener leaves the UDP port free.
  assert.equal(parseConfig(cfg({ ...http('site', '127.0.0.1:8443'), tls }, udp('dns', '127.0.0.1:8443'))).listeners.length, 2);
  // SO_REUSEADDR on both: several receivers of one multicast group on one port.
  const reuse = (name: string) => ({ ...udp(name, '0.0.0.0:5007'), reuseAddr: true });
  assert.equal(parseConfig(cfg(reuse('a'), reuse('b'))).listeners.length, 2);
  assert.deepEqual(issuesOf(cfg(reuse('a'), udp('b', '0.0.0.0:5007'))).map((i) => i.path), ['listeners[1].address']);
});

test('a wildcard host conflicts with a specific host on its port and family', () => {
  const v4 = issuesOf(cfg(http('web', '0.0.0.0:8080'), tcp('echo', '127.0.0.1:8080')));
  assert.deepEqual(v4.map((i) => i.path), ['listeners[1].address']);
  assert.match(v4[0].message, /127\.0\.0\.1:8080 overlaps 0\.0\.0\.0:8080 of listener "web" \(listeners\[0\]\).*every IPv4 address/);
  // Order does not matter: the later listener is the one named.
  assert.deepEqual(issuesOf(cfg(tcp('echo', '127.0.0.1:8080'), http('web', '0.0.0.0:8080'))).map((i) => i.path), ['listeners[1].address']);
  // `::` is bound dual-stack: it takes the IPv4 addresses too.
  const dual = issuesOf(cfg(tcp('any', '[::]:7000'), tcp('v4', '127.0.0.1:7000'), udp('u-any', '[::]:7001'), udp('u-any4', '0.0.0.0:7001')));
  assert.deepEqual(dual.map((i) => i.path), ['listeners[1].address', 'listeners[3].address']);
  assert.match(dual[0].message, /every IPv6 and IPv4 address/);
  // A v4-mapped IPv6 address is the IPv4 address.
  assert.deepEqual(issuesOf(cfg(tcp('a', '0.0.0.0:7000'), tcp('b', '[::ffff:127.0.0.1]:7000'))).map((i) => i.path), ['listeners[1].address']);
  // Different families or different specific hosts do not conflict.
  const ok = parseConfig(cfg(tcp('a', '0.0.0.0:7000'), tcp('b', '[::1]:7000'), tcp('c', '127.0.0.1:7001'), tcp('d', '127.0.0.2:7001')));
  assert.equal(ok.listeners.length, 4);
});

test('port 0 never conflicts; host names are compared as written', () => {
  const c = parseConfig(cfg(http('a', '127.0.0.1:0'), http('b', '127.0.0.1:0'), tcp('c', '0.0.0.0:0'), udp('d', '[::]:0'), udp('e', '127.0.0.1:0')));
  assert.equal(c.listeners.length, 5);
  assert.deepEqual(issuesOf(cfg(tcp('a', 'localhost:7000'), tcp('b', 'LocalHost:7000'))).map((i) => i.path), ['listeners[1].address']);
  assert.deepEqual(issuesOf(cfg(tcp('a', '[::]:7000'), tcp('b', 'localhost:7000'))).map((i) => i.path), ['listeners[1].address']);
  // No DNS at validation: a name next to an address is left to the bind.
  assert.equal(parseConfig(cfg(tcp('a', 'localhost:7000'), tcp('b', '127.0.0.1:7000'))).listeners.length, 2);
});

test('unix listeners conflict on the same socket path or abstract name', () => {
  const file = issuesOf(cfg(unix('a', './run/echo.sock'), unix('b', 'run/echo.sock')));
  assert.deepEqual(file.map((i) => i.path), ['listeners[1].path']);
  assert.match(file[0].message, /socket path "run\/echo\.sock" is already used by listener "a" \(listeners\[0\]\)/);
  const abstract = issuesOf(cfg(unix('a', '@switchyard-echo'), unix('b', '@switchyard-echo')));
  assert.deepEqual(abstract.map((i) => i.path), ['listeners[1].path']);
  assert.match(abstract[0].message, /abstract socket name "@switchyard-echo" is already used/);
  assert.equal(parseConfig(cfg(unix('a', '@x'), unix('b', 'x'), unix('c', '@y'))).listeners.length, 3);
});

test('switchyard check refuses a file with two listeners on one port', async () => {
  const file = join(dir, 'dup.yaml');
  writeFileSync(
    file,
    [
      'listeners:',
      '  - { name: web, protocol: http, address: "127.0.0.1:8080", routes: [{ handler: { type: respond } }] }',
      '  - { name: echo, protocol: tcp, address: "127.0.0.1:8080", handler: { type: echo } }',
      '',
    ].join('\n'),
  );
  const r = await runCli(['check', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /listeners\[1\]\.address: 127\.0\.0\.1:8080 is already used by listener "web" \(listeners\[0\]\)/);
});

test('durations longer than the longest Node timer are refused with the field path', () => {
  const limit = 2_147_483_647;
  const longest = parseConfig(cfg({ ...tcp('a', '127.0.0.1:0'), limits: { idleTimeout: limit } })).listeners[0];
  assert.ok(longest.protocol === 'tcp' && longest.limits.idleTimeout === limit);
  for (const [value, path, input] of [
    ['600h', 'listeners[0].limits.idleTimeout', cfg({ ...tcp('a', '127.0.0.1:0'), limits: { idleTimeout: '600h' } })],
    [limit + 1, 'listeners[0].limits.headerTimeout', cfg({ ...http('a', '127.0.0.1:0'), limits: { headerTimeout: limit + 1 } })],
    ['1000h', 'shutdown.grace', { ...cfg(http('a', '127.0.0.1:0')), shutdown: { grace: '1000h' } }],
    ['700h', 'upstreams.api.timeouts.total', { ...cfg(http('a', '127.0.0.1:0')), upstreams: { api: { targets: ['http://127.0.0.1:9'], timeouts: { total: '700h' } } } }],
  ] as const) {
    const issues = issuesOf(input);
    assert.deepEqual(issues.map((i) => i.path), [path], JSON.stringify(value));
    assert.match(issues[0].message, /at most 2147483647ms \(about 24\.8 days.*longest timer Node can set\)/);
    assert.ok(issues[0].message.includes(JSON.stringify(value)), issues[0].message);
  }
});

// ---- Every problem in one pass, in plain words --------------------------------------------------

test('check reports field errors and cross-field problems of one file together, sorted by path, with did-you-mean', async () => {
  const file = join(dir, 'many.yaml');
  writeFileSync(
    file,
    [
      'listeners:',
      '  - name: web',
      '    protocol: http',
      '    address: 127.0.0.1:8080',
      '    middleware: { cors: { origin: ["*"] } }',
      '    routes:',
      '      - match: { path: /api/* }',
      '        handler: { type: proxy, upstream: api, stripprefix: /api }',
      '      - match: { path: /files/* }',
      '        handler: { type: static, root: ./not-there }',
      '      - handler: { type: proxy, upstream: nosuch }',
      '  - name: web',
      '    protocol: tcp',
      '    address: 127.0.0.1:8080',
      '    handler: { type: echo }',
      'upstreams:',
      '  api: { targets: [http://127.0.0.1:9001], balance: roundrobin }',
      'logging: { level: verbose }',
      '',
    ].join('\n'),
  );
  const r = await runCli(['check', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('  '));
  assert.match(r.stderr, new RegExp(`${lines.length} problems`));
  const expected: [string, RegExp][] = [
    ['listeners[0].middleware.cors.origin', /^unknown field "origin" \(did you mean "origins"\?\)$/],
    ['listeners[0].routes[0].handler.stripprefix', /^unknown field "stripprefix" \(did you mean "stripPrefix"\?\)$/],
    ['listeners[0].routes[1].handler.root', /^folder "\.\/not-there" \(.*not-there\) does not exist$/],
    ['listeners[0].routes[2].handler.upstream', /^no upstream named "nosuch" \(upstreams: api\)$/],
    ['listeners[1].address', /^127\.0\.0\.1:8080 is already used by listener "web"/],
    ['listeners[1].name', /^duplicate listener name "web" \(also listeners\[0\]\)$/],
    ['logging.level', /^expected one of: trace, debug, info, warn, error, fatal, silent, got "verbose"$/],
    ['upstreams.api.balance', /^expected one of: round-robin, .*, got "roundrobin"$/],
  ];
  assert.deepEqual(
    lines.map((l) => l.trim().split(': ')[0]),
    expected.map(([p]) => p),
    r.stderr,
  );
  lines.forEach((l, i) => assert.match(l.trim().slice(expected[i][0].length + 2), expected[i][1]));
  assert.doesNotMatch(r.stderr, /Invalid (input|option)|Unrecognized key/);
});

test('zod issues read as what was expected and what was found', () => {
  const base = (l: L) => cfg(l);
  const messages = (input: unknown) => issuesOf(input).map((i) => `${i.path}: ${i.message}`);
  assert.deepEqual(messages(base({ ...http('web', '127.0.0.1:0'), address: 8080 })), ['listeners[0].address: expected a string, got a number (8080)']);
  assert.deepEqual(messages(base({ name: 'web', protocol: 'http', address: '127.0.0.1:0' })), ['listeners[0].routes: required field is missing (expected a list)']);
  // A union: told by the branch the value fits (an object with a misspelt field), or by what each branch takes.
  assert.deepEqual(messages(base({ ...http('web', '127.0.0.1:0'), middleware: { cors: { credential: true } } })), ['listeners[0].middleware.cors.credential: unknown field "credential" (did you mean "credentials"?)']);
  assert.deepEqual(messages(base({ ...http('web', '127.0.0.1:0'), middleware: { cors: 'yes' } })), ['listeners[0].middleware.cors: expected true or false or an object (fields: values)']);
  // A field with no near namesake lists the fields there are.
  assert.deepEqual(messages(base({ ...tcp('t', '127.0.0.1:0'), zzz: 1 })), ['listeners[0].zzz: unknown field "zzz" (fields here: name, protocol, address, limits, tls, socket, handler)']);
  // A handler type with a typo.
  assert.match(messages(base({ ...tcp('t', '127.0.0.1:0'), handler: { type: 'ecoh' } }))[0], /^listeners\[0\]\.handler\.type: unknown handler type "ecoh"; did you mean "echo"\? expected one of: /);
  assert.deepEqual(messages({ ...cfg(http('web', '127.0.0.1:0')), workers: 0 }), ['workers: must be at least 1, got 0']);
});

test('check refuses what serve would refuse at start: a root that is a file, a proxy to a TCP group, missing TLS files', async () => {
  const notDir = join(dir, 'plain-file.txt');
  writeFileSync(notDir, 'x');
  const file = join(dir, 'start.yaml');
  writeFileSync(
    file,
    [
      'listeners:',
      '  - name: web',
      '    protocol: http',
      '    address: 127.0.0.1:0',
      '    tls: { certificates: [{ cert: ./missing.pem, key: ./missing.key }] }',
      '    routes:',
      `      - { match: { path: /f/* }, handler: { type: static, root: ${JSON.stringify(notDir)} } }`,
      '      - { handler: { type: proxy, upstream: app } }',
      'upstreams:',
      '  app: { targets: ["127.0.0.1:9001"] }',
      '',
    ].join('\n'),
  );
  const r = await runCli(['check', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /4 problems/);
  assert.match(r.stderr, /listeners\[0\]\.routes\[0\]\.handler\.root: ".*plain-file\.txt" is not a directory/);
  assert.match(r.stderr, /listeners\[0\]\.routes\[1\]\.handler\.upstream: upstream "app" has targets without http:\/\/, https:\/\/ or h2c:\/\/ \(a bare host:port is a TCP target\)/);
  assert.match(r.stderr, /listeners\[0\]\.tls\.certificates\[0\]\.cert: file "\.\/missing\.pem" \(.*\) does not exist/);
  assert.match(r.stderr, /listeners\[0\]\.tls\.certificates\[0\]\.key: file "\.\/missing\.key" \(.*\) does not exist/);
  // serve refuses the same way, before binding anything.
  const served = await runCli(['serve', file]);
  assert.equal(served.code, 2);
  assert.equal(served.stderr, r.stderr);
});

test('a config built in code is validated without touching files (no folder to resolve them against)', () => {
  const c = parseConfig(cfg({ ...http('web', '127.0.0.1:0'), routes: [{ handler: { type: 'static', root: '/surely/not/here' } }] }));
  assert.equal(c.listeners.length, 1);
  assert.throws(
    () => parseConfig(cfg({ ...http('web', '127.0.0.1:0'), routes: [{ handler: { type: 'static', root: '/surely/not/here' } }] }), 'code', { baseDir: dir }),
    (err: unknown) => err instanceof ConfigError && err.issues.length === 1 && err.issues[0].path === 'listeners[0].routes[0].handler.root',
  );
});

test('a malformed SWITCHYARD_LISTEN is refused naming the variable, with no stack trace', async () => {
  const r = await runCli(['serve'], { env: { SWITCHYARD_LISTEN: 'web=127.0.0.1:0,bad' } });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /^switchyard: SWITCHYARD_LISTEN: expects NAME=ADDRESS .* got "bad"\n$/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
