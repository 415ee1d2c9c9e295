import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, ConfigError, defaultConfig, parseDuration, parseSize } from '../src/index.ts';
import { runCli } from './helpers/daemon.ts';

const dir = mkdtempSync(join(tmpdir(), 'sy-config-'));

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    parseConfig(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'SWITCHYARD_CONFIG_INVALID');
    return err.issues;
  }
  assert.fail('config was accepted');
}

const web = (routes: unknown[], extra: Record<string, unknown> = {}) => ({
  listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes, ...extra }],
});

test('durations and sizes in human units', () => {
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1.5m'), 90_000);
  assert.equal(parseDuration(42), 42);
  assert.equal(parseDuration('ten seconds'), undefined);
  assert.equal(parseSize('1MiB'), 1024 * 1024);
  assert.equal(parseSize('64KiB'), 65536);
  assert.equal(parseSize('10MB'), 10_000_000);
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('1 parsec'), undefined);
});

test('a minimal config gets production defaults', () => {
  const c = parseConfig(web([{ match: { path: '/x' }, handler: { type: 'respond' } }]));
  const l = c.listeners[0];
  assert.equal(l.protocol, 'http');
  if (l.protocol !== 'http') return;
  assert.equal(l.limits.maxHeaderSize, 16 * 1024);
  assert.equal(l.limits.maxBodySize, 1024 * 1024);
  assert.equal(l.limits.headerTimeout, 10_000);
  assert.equal(l.limits.maxConnections, 10_000);
  assert.equal(c.shutdown.grace, 10_000);
  const limits = parseConfig(web([{ handler: { type: 'respond' } }], { limits: { maxBodySize: '2MiB', headerTimeout: '3s' } })).listeners[0];
  assert.ok(limits.protocol === 'http' && limits.limits.maxBodySize === 2 * 1024 * 1024 && limits.limits.headerTimeout === 3000);
});

test('unknown fields are errors that name the field', () => {
  const issues = issuesOf(web([{ handler: { type: 'respond' } }], { limts: {} }));
  assert.deepEqual(issues.map((i) => i.path), ['listeners[0].limts']);
  assert.match(issues[0].message, /unknown field/);
  const inHandler = issuesOf(web([{ handler: { type: 'respond', stauts: 200 } }]));
  assert.deepEqual(inHandler.map((i) => i.path), ['listeners[0].routes[0].handler.stauts']);
});

test('a route without a handler is an error', () => {
  const issues = issuesOf(web([{ match: { path: '/x' } }]));
  assert.equal(issues[0].path, 'listeners[0].routes[0].handler');
  assert.match(issues[0].message, /required/);
});

test('an unknown handler type lists the known ones', () => {
  const issues = issuesOf(web([{ handler: { type: 'statik' } }]));
  assert.equal(issues[0].path, 'listeners[0].routes[0].handler.type');
  assert.match(issues[0].message, /unknown handler type "statik".*respond/);
});

test('a handler on a listener kind it cannot serve is an error', () => {
  const issues = issuesOf({ listeners: [{ name: 't', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'metrics' } }] });
  assert.equal(issues[0].path, 'listeners[0].handler.type');
  assert.match(issues[0].message, /cannot serve a tcp listener/);
});

test('bad values say what was expected', () => {
  const issues = issuesOf(web([{ handler: { type: 'respond' } }], { address: 'localhost', limits: { idleTimeout: 'soon' } }));
  const byPath = new Map(issues.map((i) => [i.path, i.message]));
  assert.match(byPath.get('listeners[0].address') ?? '', /host:port/);
  assert.match(byPath.get('listeners[0].limits.idleTimeout') ?? '', /duration/);
  const proto = issuesOf({ listeners: [{ name: 'x', protocol: 'smtp', address: '127.0.0.1:25' }] });
  assert.equal(proto[0].path, 'listeners[0].protocol');
  assert.match(proto[0].message, /http, tcp, unix, udp/);
});

test('duplicate listener names are refused', () => {
  const l = { name: 'a', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } };
  const issues = issuesOf({ listeners: [l, { ...l }] });
  assert.equal(issues[0].path, 'listeners[1].name');
});

test('a listener name with "#" is refused (reserved for the HTTP/3 socket in an upgrade hand-over)', () => {
  const issues = issuesOf({ listeners: [{ name: 'web#h3', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } }] });
  assert.equal(issues[0].path, 'listeners[0].name');
  assert.match(issues[0].message, /"#" is reserved/);
});

test('the embedded default config is valid', () => {
  const c = parseConfig(defaultConfig());
  assert.deepEqual(
    c.listeners.map((l) => l.name),
    ['web', 'secure', 'echo-tcp', 'echo-udp', 'files-tcp', 'chat-tcp', 'admin'],
  );
  // gRPC at its paths on both web listeners, ahead of the static catch-all; h2c on the plain one.
  for (const name of ['web', 'secure']) {
    const l = c.listeners.find((x) => x.name === name);
    assert.ok(l && l.protocol === 'http');
    const paths = l.routes.map((r) => `${r.match.path} ${r.handler.type}`);
    const files = paths.indexOf('/* static');
    for (const grpcRoute of ['/helloworld.Greeter/* grpc', '/grpc.health.v1.Health/* grpc']) {
      assert.ok(paths.includes(grpcRoute) && paths.indexOf(grpcRoute) < files, `${name}: ${paths.join(', ')}`);
    }
    if (name === 'web') assert.equal(l.http2.h2c, true);
  }
});

test('switchyard check: ok for a good file, exit 2 with field paths for a bad one', async () => {
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'listeners:\n  - name: e\n    protocol: tcp\n    address: 127.0.0.1:7000\n    handler: { type: echo }\n');
  const ok = await runCli(['check', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /ok, 1 listener/);

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'listeners:\n  - name: w\n    protocol: http\n    address: 127.0.0.1:8080\n    routes:\n      - match: { path: /x }\n        handler: { type: respond, status: "two hundred" }\n');
  const r = await runCli(['check', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /listeners\[0\]\.routes\[0\]\.handler\.status: .*number/);

  const json = join(dir, 'bad.json');
  writeFileSync(json, JSON.stringify({ listeners: [{ name: 'w', protocol: 'tcp', address: '127.0.0.1:1', handler: { type: 'echo' } }], shutdown: { grace: 'forever' } }));
  const j = await runCli(['check', json]);
  assert.equal(j.code, 2);
  assert.match(j.stderr, /shutdown\.grace: expected a duration/);
});

test('switchyard check: syntax errors name the line; a missing file says so', async () => {
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'listeners:\n  - name: [unclosed\n');
  const r = await runCli(['check', broken]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /line \d+, column \d+: not valid YAML/);
  const missing = await runCli(['check', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /file not found/);
});

test('switchyard --help and --version', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /serve \[options\] \[config\]/);
  assert.match(help.stdout, /check/);
  assert.match(help.stdout, /respond/);
  const version = await runCli(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  const unknown = await runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command/);
});
