import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { makeTree, serveTree, sha256, type Tree, type Served } from './fixtures/files.ts';
import { rawExchange, run } from './helpers/net.ts';

// The raw file protocol: name + `\n` in, file bytes out, connection closed. Clients: net and nc.

let tree: Tree;
let srv: Served;

before(async () => {
  tree = await makeTree();
  srv = await serveTree(tree, { readTimeout: '300ms' });
});

after(async () => {
  await srv?.stop();
  await tree?.cleanup();
});

/** Sends `data` and resolves with everything received and whether the server closed first. */
function exchange(data: string | Buffer, opts: { end?: boolean } = {}): Promise<{ body: Buffer; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port: srv.files, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ body: Buffer.concat(chunks), closedByServer: false });
    }, 5000);
    s.on('connect', () => {
      s.write(data);
      if (opts.end) s.end();
    });
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => {
      clearTimeout(timer);
      s.end();
      resolve({ body: Buffer.concat(chunks), closedByServer: true });
    });
    s.on('error', reject);
  });
}

test('net: a small file, then the server closes', async () => {
  const r = await exchange('a.txt\n');
  assert.equal(r.body.toString(), 'hello, world\n');
  assert.ok(r.closedByServer);
});

test('net: a large file arrives whole (sendfile path), CRLF names work too', async () => {
  const r = await exchange('big.bin\r\n');
  assert.equal(r.body.length, tree.big.length);
  assert.equal(sha256(r.body), sha256(tree.big));
  const sub = await exchange('sub/index.html\n');
  assert.equal(sub.body.toString(), '<p>sub index</p>\n');
});

test('nc -N: the documented one-liner works, for small and large files', async () => {
  const small = await run('sh', ['-c', `printf 'a.txt\\n' | nc -N 127.0.0.1 ${srv.files}`]);
  assert.equal(small.code, 0, small.stderr);
  assert.equal(small.stdout, 'hello, world\n');
  // nc half-closes right after the name; the server must still send the whole file.
  const big = await new Promise<Buffer>((resolve, reject) => {
    const child = spawn('sh', ['-c', `printf 'big.bin\\n' | nc -N 127.0.0.1 ${srv.files}`]);
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('error', reject);
    child.on('close', () => resolve(Buffer.concat(chunks)));
  });
  assert.equal(sha256(big), sha256(tree.big));
});

test('a name without newline followed by EOF is still served', async () => {
  const r = await exchange('a.txt', { end: true });
  assert.equal(r.body.toString(), 'hello, world\n');
});

test('missing file, directory and refused names: ERR not found, then close', async () => {
  for (const name of ['nope.txt', 'sub', 'sub/', '../outside/secret.txt', '.env', 'evil-link']) {
    const r = await exchange(`${name}\n`);
    assert.equal(r.body.toString(), 'ERR not found\n', name);
    assert.ok(r.closedByServer, name);
  }
});

test('bad requests: empty name, NUL, invalid UTF-8, backslash', async () => {
  const names = [Buffer.from(''), Buffer.from('a\0b'), Buffer.from([0xff, 0xfe]), Buffer.from('a\\b')];
  for (const n of names) {
    const raw = await rawExchange(srv.files, Buffer.concat([n, Buffer.from('\n')]));
    assert.equal(raw.toString(), 'ERR bad request\n', JSON.stringify(n.toString('latin1')));
  }
});

test('a name longer than the limit: ERR name too long, even without a newline', async () => {
  const r = await exchange('a'.repeat(5000));
  assert.equal(r.body.toString(), 'ERR name too long\n');
  assert.ok(r.closedByServer);
});

test('a client that never finishes its name: ERR timeout after readTimeout', async () => {
  const r = await exchange('a.t');
  assert.equal(r.body.toString(), 'ERR timeout\n');
  assert.ok(r.closedByServer);
});

test('requests are counted by status', async () => {
  await exchange('a.txt\n');
  await exchange('nope\n');
  const text = await srv.yard.metrics.text();
  const count = (status: string) => Number(new RegExp(`switchyard_total_requests\\{[^}]*listener="files"[^}]*status="${status}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0);
  assert.ok(count('ok') >= 1, text.split('\n').filter((l) => l.includes('files')).join('\n'));
  assert.ok(count('not_found') >= 1);
});
