import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { request } from 'undici';
import { cliPath, repoRoot, runCli } from './helpers/daemon.ts';

// The commands that run without a config file (file-server, reverse-proxy) and the ones that
// print configs (config default, config adapt), through the real CLI in a child process.

const run = promisify(execFile);
const tsx = import.meta.resolve('tsx');
const dir = mkdtempSync(join(tmpdir(), 'sy-oneliners-'));
const children: ChildProcess[] = [];
const servers: Server[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** Starts `switchyard ...args` and resolves with the first listener's URL once the banner is out. */
function start(args: string[]): Promise<{ url: string; child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, ['--import', tsx, cliPath, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switchyard ${args.join(' ')} did not start within 20 s\n${out}`));
    }, 20_000);
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^ {2}\S+\s+http\s+(http:\/\/\S+)/m.exec(out);
      if (!m || !/Stop with Ctrl-C/.test(out)) return;
      clearTimeout(timer);
      resolve({ url: m[1], child, output: () => out });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`switchyard ${args.join(' ')} exited with ${code} before it was ready\n${out}`));
    });
  });
}

async function curl(url: string): Promise<{ status: number; body: string }> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', url]);
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

test('file-server serves a folder; without --browse a folder without index.html is 404, with it a listing', async () => {
  const site = join(dir, 'site');
  mkdirSync(join(site, 'docs'), { recursive: true });
  writeFileSync(join(site, 'hello.txt'), 'hello from the file server\n');
  writeFileSync(join(site, 'docs', 'guide.md'), '# guide\n');
  writeFileSync(join(site, '.secret'), 'no\n');

  const plain = await start(['file-server', site, '--listen', '127.0.0.1:0']);
  assert.match(plain.output(), /running \(file-server .*site\)/);
  assert.deepEqual(await curl(`${plain.url}hello.txt`), { status: 200, body: 'hello from the file server\n' });
  assert.equal((await curl(`${plain.url}docs/`)).status, 404);
  assert.equal((await curl(`${plain.url}.secret`)).status, 404, 'dotfiles stay hidden');
  assert.equal(await stop(plain.child), 0);

  const browse = await start(['file-server', site, '--listen', '127.0.0.1:0', '--browse']);
  const listing = await curl(`${browse.url}docs/`);
  assert.equal(listing.status, 200);
  assert.match(listing.body, /guide\.md/);
  const top = await curl(browse.url);
  assert.match(top.body, /hello\.txt/);
  assert.doesNotMatch(top.body, /\.secret/);
  assert.equal(await stop(browse.child), 0);
});

test('file-server refuses a folder that is not there and a bad --listen, exit 2', async () => {
  const missing = await runCli(['file-server', join(dir, 'nothing-here')]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /DIR: cannot serve .*nothing-here: no such folder/);
  const badListen = await runCli(['file-server', dir, '--listen', 'localhost']);
  assert.equal(badListen.code, 2, badListen.stderr);
  assert.match(badListen.stderr, /expected an address like 127\.0\.0\.1:8080/);
});

test('serve of a folder says serve takes a config file and suggests file-server', async () => {
  const r = await runCli(['serve', dir]);
  assert.equal(r.code, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /EISDIR/);
  assert.match(r.stderr, /is a folder, not a config file \(YAML or JSON\); to serve the files in it, run: switchyard file-server /);
});

async function backend(name: string): Promise<string> {
  const s = createServer((req, res) => res.end(`${name} ${req.url}`));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(s.address() as { port: number }).port}`;
}

test('reverse-proxy --to a,b: bare host:port targets are HTTP backends, taken in turn', async () => {
  const [a, b] = [await backend('a'), await backend('b')];
  const proxy = await start(['reverse-proxy', '--to', `${a},${b}`, '--from', '127.0.0.1:0', '--log-format', 'json']);
  const seen: string[] = [];
  for (let i = 0; i < 6; i++) {
    const res = await request(`${proxy.url}path/${i}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    assert.equal(res.statusCode, 200);
    seen.push(await res.body.text());
  }
  // Round robin: each request goes to the other backend, with the path intact.
  seen.forEach((body, i) => assert.match(body, new RegExp(` /path/${i}$`)));
  const names = seen.map((s) => s.split(' ')[0]);
  for (let i = 1; i < names.length; i++) assert.notEqual(names[i], names[i - 1], names.join(','));
  assert.deepEqual(new Set(names), new Set(['a', 'b']));
  assert.equal(await stop(proxy.child), 0);
});

test('reverse-proxy refuses a target it cannot read and a policy it does not know, exit 2', async () => {
  const bad = await runCli(['reverse-proxy', '--to', 'tls://127.0.0.1:1']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /tls:\/\/ is a TCP target/);
  const lb = await runCli(['reverse-proxy', '--to', '127.0.0.1:1', '--lb', 'random']);
  assert.equal(lb.code, 2, lb.stderr);
  assert.match(lb.stderr, /Allowed choices are round-robin/);
});

test('config default prints YAML that parses and passes check', async () => {
  const r = await runCli(['config', 'default']);
  assert.equal(r.code, 0, r.stderr);
  const parsed = parseYaml(r.stdout) as { listeners: { name: string }[] };
  assert.ok(parsed.listeners.some((l) => l.name === 'web'));
  assert.doesNotMatch(r.stdout, /[&*]a\d/, 'no YAML anchors or aliases');
  const file = join(dir, 'default.yaml');
  writeFileSync(file, r.stdout);
  const checked = await runCli(['check', file]);
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stdout, /ok, 7 listener\(s\)/);
});

test('config adapt prints the config with every default filled in and secrets redacted; an invalid one is refused', async () => {
  const file = join(dir, 'small.yaml');
  writeFileSync(
    file,
    [
      'listeners:',
      '  - name: admin',
      '    protocol: http',
      '    address: 127.0.0.1:0',
      '    routes: [{ handler: { type: admin, token: a-token-of-sixteen-chars-or-more } }]',
      'upstreams:',
      '  api: { targets: [http://127.0.0.1:9001] }',
      '',
    ].join('\n'),
  );
  const json = await runCli(['config', 'adapt', file, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const c = JSON.parse(json.stdout) as {
    listeners: { limits: { maxConnections: number; headerTimeout: number }; mergeSlashes: boolean; routes: { match: { path: string }; handler: { token: string } }[] }[];
    upstreams: { api: { balance: string } };
    shutdown: { grace: number };
  };
  assert.equal(c.listeners[0].limits.maxConnections, 10_000);
  assert.equal(c.listeners[0].limits.headerTimeout, 10_000);
  assert.equal(c.listeners[0].mergeSlashes, true);
  assert.equal(c.listeners[0].routes[0].match.path, '/*');
  assert.equal(c.listeners[0].routes[0].handler.token, '[redacted]');
  assert.equal(c.upstreams.api.balance, 'round-robin');
  assert.equal(c.shutdown.grace, 10_000);

  const yaml = await runCli(['config', 'adapt', file]);
  assert.equal(yaml.code, 0, yaml.stderr);
  assert.deepEqual(parseYaml(yaml.stdout), c);

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'listeners: []\n');
  const refused = await runCli(['config', 'adapt', bad]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /listeners: needs at least one entry|at least one listener is needed/);
});
