import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { makeTree, serveTree, type Tree, type Served } from './fixtures/files.ts';
import { rawExchange, statusOf } from './helpers/net.ts';

// Path traversal corpus. Every payload is written byte for byte on a raw TCP socket, so no
// client library normalises `..` or re-encodes anything first. A secret sits OUTSIDE the root
// (and in dotfiles inside it); no response may contain a byte sequence of it, and every answer
// must be 400, 403 or 404. A control route that follows symlinks anywhere proves the detector
// sees a leak when there is one.

let tree: Tree;
let srv: Served;
let passwdLine: string;

before(async () => {
  tree = await makeTree();
  srv = await serveTree(tree);
  passwdLine = (await readFile('/etc/passwd', 'utf8')).split('\n')[0];
});

after(async () => {
  await srv?.stop();
  await tree?.cleanup();
});

const HTTP_CORPUS = [
  '/files/../outside/secret.txt',
  '/files/%2e%2e/outside/secret.txt',
  '/files/%2E%2e/outside/secret.txt',
  '/files/%2E%2E%2Foutside%2Fsecret.txt',
  '/files/..%2foutside%2fsecret.txt',
  '/files/..%2Foutside/secret.txt',
  '/files/sub/..%2f..%2foutside/secret.txt',
  '/files/sub/../../outside/secret.txt',
  '/files/..\\outside\\secret.txt',
  '/files/..%5coutside%5csecret.txt',
  '/files/%5c..%5coutside%5csecret.txt',
  '/files/a.txt%00',
  '/files/..%00/outside/secret.txt',
  '/files/%00../outside/secret.txt',
  '/files/%c0%ae%c0%ae/outside/secret.txt',
  '/files/%c0%ae%c0%ae%c0%afoutside%c0%afsecret.txt',
  '/files/%e0%80%ae%e0%80%ae/outside/secret.txt',
  '/files/%252e%252e/outside/secret.txt',
  '/files/.%2e/outside/secret.txt',
  '/files/%2e./outside/secret.txt',
  '/files//etc/passwd',
  '/files/%2fetc%2fpasswd',
  '/files/%2Fetc/passwd',
  '//etc/passwd',
  '/etc/passwd',
  '/files/evil-link',
  '/files/evil-dir/secret.txt',
  '/files/passwd-link',
  '/files/.env',
  '/files/%2eenv',
  '/files/.git/config',
  '/files/.git/',
  '/files/sub/../.env',
  '/list/evil-dir/',
  '/list/.git/',
  '/nosendfile/evil-link',
  '/fresh/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
];

function assertNoLeak(what: string, body: Buffer): void {
  const text = body.toString('latin1');
  assert.ok(!text.includes(tree.secret), `${what}: secret leaked`);
  assert.ok(!text.includes(tree.secret.slice(0, 16)), `${what}: part of the secret leaked`);
  assert.ok(!text.includes(passwdLine), `${what}: /etc/passwd leaked`);
}

test('every HTTP traversal payload is refused (400/403/404) and leaks nothing', async () => {
  const failures: string[] = [];
  for (const path of HTTP_CORPUS) {
    const raw = await rawExchange(srv.web, `GET ${path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n`);
    const status = statusOf(raw);
    if (![400, 403, 404].includes(status)) failures.push(`${path} -> ${status}`);
    try {
      assertNoLeak(path, raw);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  assert.deepEqual(failures, []);
});

test('absolute-form and odd request targets leak nothing either', async () => {
  const targets = ['http://t/files/../outside/secret.txt', 'http://t/files/%2e%2e/outside/secret.txt', '*', 'files/../outside/secret.txt'];
  for (const t of targets) {
    const raw = await rawExchange(srv.web, `GET ${t} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n`);
    assert.ok([400, 403, 404].includes(statusOf(raw)), `${t} -> ${statusOf(raw)}`);
    assertNoLeak(t, raw);
  }
});

test('symlinks inside the root still work, and the server is alive after the corpus', async () => {
  const raw = await rawExchange(srv.web, 'GET /files/good-link.txt HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n');
  assert.equal(statusOf(raw), 200);
  assert.ok(raw.toString().endsWith('hello, world\n'));
});

test('control: the detector sees the leak on a route configured to follow symlinks and allow dotfiles', async () => {
  const link = await rawExchange(srv.web, 'GET /open/evil-link HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n');
  assert.equal(statusOf(link), 200);
  assert.throws(() => assertNoLeak('control', link));
  const dot = await rawExchange(srv.web, 'GET /open/.env HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n');
  assert.equal(statusOf(dot), 200);
  assert.throws(() => assertNoLeak('control', dot));
});

const TCP_CORPUS: (string | Buffer)[] = [
  '../outside/secret.txt',
  'sub/../../outside/secret.txt',
  '/etc/passwd',
  '//etc/passwd',
  '..\\outside\\secret.txt',
  'evil-link',
  'evil-dir/secret.txt',
  'passwd-link',
  '.env',
  '.git/config',
  '%2e%2e/outside/secret.txt',
  'sub/',
  '.',
  '',
  Buffer.from('a.txt\0../outside/secret.txt'),
  Buffer.from([0xc0, 0xae, 0xc0, 0xae, 0x2f]),
  Buffer.from('..\r'),
];

test('every file-tcp traversal payload gets one ERR line and leaks nothing', async () => {
  const failures: string[] = [];
  for (const name of TCP_CORPUS) {
    const raw = await rawExchange(srv.files, Buffer.concat([Buffer.from(name), Buffer.from('\n')]));
    const text = raw.toString('latin1');
    if (!/^ERR (not found|bad request)\n$/.test(text)) failures.push(`${JSON.stringify(name.toString())} -> ${JSON.stringify(text.slice(0, 80))}`);
    try {
      assertNoLeak(JSON.stringify(name.toString()), raw);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  assert.deepEqual(failures, []);
});
