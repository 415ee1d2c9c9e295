import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, killDaemon, type Daemon } from './helpers/daemon.ts';
import { run } from './helpers/net.ts';

// The daemon as a user runs it: the CLI in its own process, stopped with real signals.

const dir = mkdtempSync(join(tmpdir(), 'sy-lifecycle-'));
const daemons: Daemon[] = [];
after(async () => {
  for (const d of daemons) await killDaemon(d);
});

const ALL_PORTS_FREE = {
  SWITCHYARD_LISTEN: 'web=127.0.0.1:0,secure=127.0.0.1:0,echo-tcp=127.0.0.1:0,echo-udp=127.0.0.1:0,files-tcp=127.0.0.1:0,chat-tcp=127.0.0.1:0,admin=127.0.0.1:0',
  // The local CA of the https listener goes here, not into the user's data folder.
  SWITCHYARD_DATA_DIR: join(dir, 'data'),
};

test('the embedded default runs every listener it advertises', async () => {
  const d = await startDaemon(['--log-level', 'warn'], { env: ALL_PORTS_FREE, cwd: dir });
  daemons.push(d);
  assert.deepEqual([...d.urls.keys()], ['web', 'secure', 'echo-tcp', 'echo-udp', 'files-tcp', 'chat-tcp', 'admin']);
  assert.match(d.stdout(), /try: curl -i http:\/\/127\.0\.0\.1:\d+\//);
  // The https listener's banner line works as printed (the local CA's root as --cacert).
  const secureLine = /^ {2}secure .*try: (curl .*)$/m.exec(d.stdout())?.[1];
  assert.ok(secureLine?.includes(`--cacert ${join(dir, 'data')}`), d.stdout());
  const secure = await run('bash', ['-c', secureLine!]);
  assert.equal(secure.code, 0, secure.stderr);
  assert.match(secure.stdout, /^HTTP\/(?:1\.1|2) 200/);
  assert.match(d.stdout(), /try: printf 'hello\.txt\\n' \| nc 127\.0\.0\.1 \d+/);

  const web = `http://127.0.0.1:${d.port('web')}`;
  const welcome = await fetch(`${web}/`);
  assert.equal(welcome.status, 200);
  const page = await welcome.text();
  assert.match(page, /Switchyard is running/);
  assert.ok(page.includes(`tcp://127.0.0.1:${d.port('echo-tcp')}`), 'welcome page lists the live echo port');
  assert.ok(page.includes('<a href="/chat/">chat page</a>'), 'welcome page points at the chat page');
  const chatPage = await fetch(`${web}/chat/`);
  assert.equal(chatPage.status, 200);
  assert.match(await chatPage.text(), /<script[^>]+_\/chat\.js/);
  assert.equal(await (await fetch(`${web}/health`)).text(), 'ok\n');
  // No ./public in the cwd: the bundled demo files are served.
  assert.match(await (await fetch(`${web}/hello.txt`)).text(), /Hello from Switchyard/);

  const echo = await run('nc', ['-N', '127.0.0.1', String(d.port('echo-tcp'))], { input: 'tcp echo\n' });
  assert.equal(echo.stdout, 'tcp echo\n');
  const udp = createSocket('udp4');
  const reply = await new Promise<string>((resolve) => {
    udp.on('message', (m) => resolve(m.toString()));
    udp.send('udp echo', d.port('echo-udp'), '127.0.0.1');
  });
  udp.close();
  assert.equal(reply, 'udp echo');
  const file = await run('nc', ['-N', '127.0.0.1', String(d.port('files-tcp'))], { input: 'hello.txt\n' });
  assert.match(file.stdout, /Hello from Switchyard/);
  const metrics = await (await fetch(`http://127.0.0.1:${d.port('admin')}/metrics`)).text();
  assert.match(metrics, /switchyard_total_requests\{listener="web",route="health",status="200"\} 1/);

  d.child.kill('SIGTERM');
  const exit = await d.exited;
  assert.equal(exit.code, 0);
});

test('./public in the working folder is served by the default config', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'sy-public-'));
  const pub = join(cwd, 'public');
  await import('node:fs/promises').then((fs) => fs.mkdir(pub));
  writeFileSync(join(pub, 'mine.txt'), 'my own file\n');
  writeFileSync(join(pub, 'index.html'), '<h1>my site</h1>\n');
  const d = await startDaemon(['--log-level', 'warn'], { env: ALL_PORTS_FREE, cwd });
  daemons.push(d);
  const web = `http://127.0.0.1:${d.port('web')}`;
  assert.equal(await (await fetch(`${web}/mine.txt`)).text(), 'my own file\n');
  // The site's own index keeps `/`; the welcome page moves aside.
  assert.equal(await (await fetch(`${web}/`)).text(), '<h1>my site</h1>\n');
  assert.match(await (await fetch(`${web}/welcome`)).text(), /Switchyard is running/);
  d.child.kill('SIGTERM');
  assert.equal((await d.exited).code, 0);
});

function bigFile(name: string, bytes: number): { path: string; sha: string } {
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const block = Buffer.alloc(1024 * 1024);
  for (let off = 0; off < bytes; off += block.length) {
    block.fill(off / block.length);
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  return { path, sha: hash.digest('hex') };
}

function staticDaemon(grace: string): Promise<Daemon> {
  const cfg = join(dir, `static-${grace}.yaml`);
  writeFileSync(
    cfg,
    `listeners:\n  - name: web\n    protocol: http\n    address: 127.0.0.1:0\n    routes:\n      - handler: { type: static, root: ${JSON.stringify(dir)} }\nshutdown: { grace: ${grace} }\nlogging: { level: warn }\n`,
  );
  return startDaemon([cfg]);
}

/** Starts a download, reads its first bytes, then pauses: a transfer in flight. */
function pausedDownload(port: number, path: string) {
  const socket = connect({ port, host: '127.0.0.1' });
  const hash = createHash('sha256');
  let headerDone = false;
  let head = '';
  let bodyBytes = 0;
  const firstBytes = new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      if (!headerDone) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        headerDone = true;
        const body = Buffer.from(head.slice(end + 4), 'latin1');
        hash.update(body);
        bodyBytes += body.length;
        socket.pause();
        resolve();
        return;
      }
      hash.update(d);
      bodyBytes += d.length;
    });
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.on('connect', () => socket.write(`GET /${path} HTTP/1.1\r\nhost: x\r\n\r\n`));
  return { socket, firstBytes, closed, result: () => ({ bodyBytes, sha: hash.digest('hex'), head }) };
}

test('graceful drain: a download in flight at SIGTERM completes; new connections are refused', async () => {
  const file = bigFile('drain.bin', 48 * 1024 * 1024);
  const d = await staticDaemon('20s');
  daemons.push(d);
  const port = d.port('web');
  const dl = pausedDownload(port, 'drain.bin');
  await dl.firstBytes;
  d.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  const refused = await new Promise<string>((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED');
  dl.socket.resume();
  await dl.closed;
  const r = dl.result();
  assert.equal(r.bodyBytes, 48 * 1024 * 1024);
  assert.equal(r.sha, file.sha);
  const exit = await d.exited;
  assert.equal(exit.code, 0);
  assert.match(d.stderr(), /SIGTERM: draining/);
});

test('grace period over: what is still open is cut off and the daemon exits 0', async () => {
  bigFile('stuck.bin', 48 * 1024 * 1024);
  const d = await staticDaemon('500ms');
  daemons.push(d);
  const dl = pausedDownload(d.port('web'), 'stuck.bin');
  await dl.firstBytes;
  d.child.kill('SIGTERM');
  const exit = await d.exited;
  assert.equal(exit.code, 0);
  assert.match(d.stderr(), /1 connection\(s\) cut off/);
  // A paused socket reads nothing, so it would never see the close: read what is left.
  dl.socket.resume();
  await dl.closed;
  assert.ok(dl.result().bodyBytes < 48 * 1024 * 1024);
});

test('a second signal exits at once with status 1', async () => {
  bigFile('second.bin', 48 * 1024 * 1024);
  const d = await staticDaemon('60s');
  daemons.push(d);
  const dl = pausedDownload(d.port('web'), 'second.bin');
  await dl.firstBytes;
  d.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  d.child.kill('SIGINT');
  const exit = await d.exited;
  assert.equal(exit.code, 1);
  assert.match(d.stderr(), /SIGINT again: exiting now/);
  dl.socket.destroy();
});

test('a missing static root is refused before starting, naming the field, exit 2 (as check does)', async () => {
  const cfg = join(dir, 'noroot.yaml');
  writeFileSync(cfg, 'listeners:\n  - name: web\n    protocol: http\n    address: 127.0.0.1:0\n    routes:\n      - handler: { type: static, root: ./does-not-exist }\n');
  const { runCli } = await import('./helpers/daemon.ts');
  const r = await runCli(['serve', cfg]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 2, r.stderr);
  assert.match(r.stderr, /noroot\.yaml: invalid config\n {2}listeners\[0\]\.routes\[0\]\.handler\.root: folder "\.\/does-not-exist" \(.*\) does not exist/);
  const checked = await runCli(['check', cfg]);
  assert.equal(checked.code, 2);
  assert.equal(checked.stderr, r.stderr);
});
