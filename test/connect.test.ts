import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTlsServer } from 'node:tls';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { WebSocketServer } from 'ws';
import { serve, type Yard } from '../src/index.ts';
import { encodeFrame } from '../src/protocol/index.ts';
import { runCli, cliPath, repoRoot } from './helpers/daemon.ts';

// `switchyard connect` run as a user runs it (a child process, stdin piped in), against real
// listeners: a yard from serve() (echo on tcp/udp/unix, frame-echo, ws-echo, the http echo
// handler), and for what a yard does not serve (TLS with a self-signed certificate, a WebSocket
// server that reports the handshake headers, servers that misbehave) small node servers.

const execFileP = promisify(execFile);

let dir: string;
let yard: Yard;
let cert: Buffer;
let key: Buffer;
const ports: Record<string, number> = {};
const servers: (NetServer | HttpServer | HttpsServer)[] = [];
let unixPath: string;
let abstractName: string;
let framePath: string;
let reporter: WebSocketServer;
let secureWss: WebSocketServer;

async function listen<S extends NetServer | HttpServer | HttpsServer>(server: S): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-connect-'));
  // EC key: quick to make; SAN IP:127.0.0.1 so --ca can verify the address we connect to.
  await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  key = await readFile(join(dir, 'key.pem'));
  cert = await readFile(join(dir, 'cert.pem'));

  unixPath = join(dir, 'echo.sock');
  framePath = join(dir, 'frames.sock');
  abstractName = `switchyard-connect-${process.pid}`;
  yard = await serve(
    {
      listeners: [
        { name: 'tcp', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } },
        { name: 'udp', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'echo' } },
        { name: 'unix', protocol: 'unix', path: unixPath, handler: { type: 'echo' } },
        { name: 'abstract', protocol: 'unix', path: `@${abstractName}`, handler: { type: 'echo' } },
        { name: 'frames', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'frame-echo', maxFrameSize: 64 } },
        { name: 'frames-unix', protocol: 'unix', path: framePath, handler: { type: 'frame-echo' } },
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/ws' }, handler: { type: 'ws-echo' } },
            { match: { path: '/echo/*' }, handler: { type: 'echo' } },
          ],
        },
      ],
    } as never,
    { logLevel: 'silent' },
  );
  for (const n of ['tcp', 'udp', 'frames', 'web']) ports[n] = yard.address(n).port;

  // https: a plain answer, and a WebSocket echo on the same server for wss.
  const https = createHttpsServer({ key, cert }, (_req, res) => res.end('secure hello\n'));
  secureWss = new WebSocketServer({ server: https });
  secureWss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
  ports.https = await listen(https);

  // A WebSocket server that tells the client what its handshake carried, then sends binary.
  const plain = createHttpServer();
  reporter = new WebSocketServer({ server: plain });
  reporter.on('connection', (ws, req) => {
    ws.send(JSON.stringify({ token: req.headers['x-token'] ?? null, origin: req.headers.origin ?? null }));
    ws.send(Buffer.from([0, 1, 2, 255]), { binary: true });
  });
  ports.reporter = await listen(plain);

  // Accepts and never says a word: handshakes against it can only time out.
  ports.silent = await listen(createNetServer((s) => s.on('error', () => {})));

  // Answers only once the client half-closes: the number of bytes it got.
  ports.counter = await listen(
    createNetServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('end', () => s.end(`${n}\n`));
    }),
  );

  // Echoes, and keeps its side open after the client's FIN.
  ports.lingering = await listen(
    createNetServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.on('data', (d: Buffer) => s.write(d));
    }),
  );

  // Sends a binary frame and a text frame, then closes.
  ports.binaryFrames = await listen(
    createNetServer((s) => {
      s.on('error', () => {});
      s.end(Buffer.concat([encodeFrame(Buffer.from([0, 1, 2, 255])), encodeFrame(Buffer.from('text frame'))]));
    }),
  );
});

after(async () => {
  reporter?.close();
  secureWss?.close();
  for (const s of servers) {
    (s as HttpServer).closeAllConnections?.();
    s.close();
  }
  await yard?.stop(1000);
  await rm(dir, { recursive: true, force: true });
});

const connect = (url: string, args: string[] = [], input?: string | Buffer) => runCli(['connect', url, ...args], { input, timeoutMs: 30_000 });

/** A port nothing listens on: bound, then released. */
async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The head and body of what `connect http://...` printed (curl -i style). */
function splitResponse(stdout: string): { status: string; headers: Record<string, string>; body: string } {
  const end = stdout.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no blank line after the head:\n${stdout}`);
  const [status, ...lines] = stdout.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(': ');
    headers[l.slice(0, i)] = l.slice(i + 2);
  }
  return { status, headers, body: stdout.slice(end + 4) };
}

describe('switchyard connect', { concurrency: 4 }, () => {
  // ---- byte streams ---------------------------------------------------------------------------

  test('tcp: piped stdin goes out as it is, the echo comes back, exit 0', async () => {
    const r = await connect(`tcp://127.0.0.1:${ports.tcp}`, [], 'hello\nworld\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\nworld\n');
    assert.equal(r.stderr, '');
  });

  test('tcp: 2 MiB of input comes back intact', async () => {
    const input = randomBytes(1536 * 1024).toString('base64');
    const r = await connect(`tcp://127.0.0.1:${ports.tcp}`, [], input);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, input.length);
    assert.ok(r.stdout === input);
  });

  test('tcp: stdin EOF half-closes, and the answer that follows it still arrives', async () => {
    const r = await connect(`tcp://127.0.0.1:${ports.counter}`, [], 'abcdef');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '6\n');
  });

  test('tcp: a server that keeps its side open is left after --wait, exit 0', async () => {
    const r = await connect(`tcp://127.0.0.1:${ports.lingering}`, ['--wait', '300ms'], 'still here\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'still here\n');
  });

  test('unix: a socket file and an abstract name', async () => {
    const file = await connect(`unix:${unixPath}`, [], 'over a file\n');
    assert.equal(file.code, 0, file.stderr);
    assert.equal(file.stdout, 'over a file\n');
    const abstract = await connect(`unix:@${abstractName}`, [], 'over an abstract name\n');
    assert.equal(abstract.code, 0, abstract.stderr);
    assert.equal(abstract.stdout, 'over an abstract name\n');
    const missing = await connect(`unix:${join(dir, 'nothing.sock')}`);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `switchyard connect: cannot connect to unix:${join(dir, 'nothing.sock')}: no such socket file\n`);
  });

  // ---- messages -------------------------------------------------------------------------------

  test('udp: one datagram per line, each reply printed as a line', async () => {
    const r = await connect(`udp://127.0.0.1:${ports.udp}`, ['--wait', '500ms'], 'one\ntwo\nthree\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'one\ntwo\nthree\n');
  });

  test('udp: nothing listening is reported as connection refused, exit 1', async () => {
    const port = await freePort();
    const r = await connect(`udp://127.0.0.1:${port}`, ['--wait', '2s'], 'anyone?\n');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `switchyard connect: udp://127.0.0.1:${port}: connection refused\n`);
  });

  test('frame+tcp against frame-echo: one frame per line, and the server\'s error frame past its limit', async () => {
    const r = await connect(`frame+tcp://127.0.0.1:${ports.frames}`, ['--wait', '300ms'], 'alpha\n\nbeta\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'alpha\n\nbeta\n');
    // The listener allows 64 bytes: a longer line is answered with the error frame, then closed.
    const long = 'x'.repeat(100);
    const refused = await connect(`frame+tcp://127.0.0.1:${ports.frames}`, ['--wait', '2s'], `short\n${long}\nnever sent\n`);
    assert.equal(refused.code, 0, refused.stderr);
    const lines = refused.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'short');
    assert.deepEqual(JSON.parse(lines[1]), { type: 'error', code: 'FRAME_TOO_LARGE', message: 'frame of 100 bytes is over the limit of 64' });
    assert.equal(lines.length, 2);
  });

  test('frame+unix, binary frames as <binary N bytes> or raw with --raw', async () => {
    const r = await connect(`frame+unix:${framePath}`, ['--wait', '300ms'], 'over unix\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'over unix\n');
    const shown = await connect(`frame+tcp://127.0.0.1:${ports.binaryFrames}`);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdout, '<binary 4 bytes>\ntext frame\n');
    const raw = await connect(`frame+tcp://127.0.0.1:${ports.binaryFrames}`, ['--raw']);
    assert.equal(raw.code, 0);
    assert.deepEqual(Buffer.from(raw.stdout, 'utf8').subarray(0, 3), Buffer.from([0, 1, 2]));
    assert.match(raw.stdout, /\ntext frame\n$/);
  });

  test('frame+tcp: a frame over the client\'s --max-frame-size is an error, exit 1', async () => {
    const r = await connect(`frame+tcp://127.0.0.1:${ports.frames}`, ['--max-frame-size', '4', '--wait', '300ms'], 'hello\n');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^switchyard connect: frame\+tcp:\/\/127\.0\.0\.1:\d+: the server sent a frame of 5 bytes, over this client's limit of 4/);
  });

  test('ws against the yard\'s ws-echo route: one text message per line', async () => {
    const r = await connect(`ws://127.0.0.1:${ports.web}/ws`, ['--wait', '300ms'], 'hi\nthere\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hi\nthere\n');
  });

  test('ws: -H and --origin reach the handshake; binary messages shown as <binary N bytes>', async () => {
    const r = await connect(`ws://127.0.0.1:${ports.reporter}/`, ['-H', 'X-Token: s3cret', '--origin', 'https://app.example', '--wait', '500ms']);
    assert.equal(r.code, 0, r.stderr);
    const [json, binary] = r.stdout.split('\n');
    assert.deepEqual(JSON.parse(json), { token: 's3cret', origin: 'https://app.example' });
    assert.equal(binary, '<binary 4 bytes>');
  });

  test('ws: a path that answers 404 is a refused handshake naming the status, exit 1', async () => {
    const r = await connect(`ws://127.0.0.1:${ports.web}/nowhere`);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `switchyard connect: cannot connect to ws://127.0.0.1:${ports.web}/nowhere: WebSocket handshake refused: HTTP 404 Not Found\n`);
  });

  test('ws: a server that never answers the handshake times out after --connect-timeout', async () => {
    const r = await connect(`ws://127.0.0.1:${ports.silent}/`, ['--connect-timeout', '300ms']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `switchyard connect: cannot connect to ws://127.0.0.1:${ports.silent}/: timed out after 300ms\n`);
  });

  test('wss: --insecure, --ca, and neither (a TLS error, exit 1)', async () => {
    const url = `wss://127.0.0.1:${ports.https}/`;
    const insecure = await connect(url, ['--insecure', '--wait', '300ms'], 'secure ws\n');
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.equal(insecure.stdout, 'secure ws\n');
    const ca = await connect(url, ['--ca', join(dir, 'cert.pem'), '--wait', '300ms'], 'trusted ws\n');
    assert.equal(ca.code, 0, ca.stderr);
    assert.equal(ca.stdout, 'trusted ws\n');
    const neither = await connect(url, [], 'x\n');
    assert.equal(neither.code, 1);
    assert.match(neither.stderr, new RegExp(`^switchyard connect: cannot connect to wss://127\\.0\\.0\\.1:${ports.https}/: TLS: the server's certificate is self-signed`));
  });

  // ---- http -----------------------------------------------------------------------------------

  test('http GET: status line, headers, blank line, body', async () => {
    const r = await connect(`http://127.0.0.1:${ports.web}/echo/get?q=1`, ['-H', 'X-Test: yes']);
    assert.equal(r.code, 0, r.stderr);
    const res = splitResponse(r.stdout);
    assert.equal(res.status, 'HTTP/1.1 200 OK');
    assert.match(res.headers['content-type'], /^application\/json/);
    const echoed = JSON.parse(res.body);
    assert.equal(echoed.method, 'GET');
    assert.equal(echoed.url, '/echo/get?q=1');
    assert.equal(echoed.headers['x-test'], 'yes');
  });

  test('http: --json POSTs JSON; -X PUT -d sends a form body; the status of a missing route is printed, exit 0', async () => {
    const json = await connect(`http://127.0.0.1:${ports.web}/echo/json`, ['--json', '{"a":1}']);
    assert.equal(json.code, 0, json.stderr);
    const j = JSON.parse(splitResponse(json.stdout).body);
    assert.equal(j.method, 'POST');
    assert.equal(j.headers['content-type'], 'application/json');
    assert.equal(j.body, '{"a":1}');
    const put = await connect(`http://127.0.0.1:${ports.web}/echo/put`, ['-X', 'put', '-d', 'a=1&b=2', '-H', 'content-type: text/plain']);
    const p = JSON.parse(splitResponse(put.stdout).body);
    assert.equal(p.method, 'PUT');
    assert.equal(p.headers['content-type'], 'text/plain');
    assert.equal(p.body, 'a=1&b=2');
    const missing = await connect(`http://127.0.0.1:${ports.web}/nothing-here`);
    assert.equal(missing.code, 0);
    assert.equal(splitResponse(missing.stdout).status, 'HTTP/1.1 404 Not Found');
  });

  test('http: --data-file streams a file as the body', async () => {
    const file = join(dir, 'body.bin');
    const content = randomBytes(300 * 1024);
    await writeFile(file, content);
    const r = await connect(`http://127.0.0.1:${ports.web}/echo/upload`, ['--data-file', file]);
    assert.equal(r.code, 0, r.stderr);
    const echoed = JSON.parse(splitResponse(r.stdout).body);
    assert.equal(echoed.method, 'POST');
    assert.equal(echoed.bodyLength, content.length);
    assert.equal(echoed.headers['content-length'], String(content.length));
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(Buffer.from(echoed.body, echoed.bodyEncoding)), sha(content));
  });

  test('http: the body is printed as it arrives, not when it ends', async () => {
    let finish: () => void = () => {};
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part\n');
      finish = () => res.end('second part\n');
    });
    const port = await listen(server);
    const child = spawn(process.execPath, ['--import', 'tsx', cliPath, 'connect', `http://127.0.0.1:${port}/`], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('first part')) {
        assert.ok(Date.now() < deadline, `the first part never showed up before the end of the body: ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(!out.includes('second part'));
      finish();
      assert.equal(await exited, 0);
      assert.match(out, /\r\n\r\nfirst part\nsecond part\n$/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('https: --insecure, --ca, and neither (a TLS error, exit 1)', async () => {
    const url = `https://127.0.0.1:${ports.https}/`;
    const insecure = await connect(url, ['--insecure']);
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.equal(splitResponse(insecure.stdout).body, 'secure hello\n');
    const ca = await connect(url, ['--ca', join(dir, 'cert.pem')]);
    assert.equal(ca.code, 0, ca.stderr);
    assert.equal(splitResponse(ca.stdout).body, 'secure hello\n');
    const neither = await connect(url);
    assert.equal(neither.code, 1);
    assert.equal(neither.stdout, '');
    assert.match(neither.stderr, new RegExp(`^switchyard connect: cannot connect to ${url.replace(/\./g, '\\.')}: TLS: the server's certificate is self-signed .*--ca FILE.*--insecure\\n$`));
  });

  test('https: a server that never finishes the TLS handshake times out after --connect-timeout', async () => {
    const r = await connect(`https://127.0.0.1:${ports.silent}/`, ['--connect-timeout', '300ms']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `switchyard connect: cannot connect to https://127.0.0.1:${ports.silent}/: timed out after 300ms\n`);
  });

  // ---- errors ---------------------------------------------------------------------------------

  test('a refused port: one line naming the URL and the cause, exit 1', async () => {
    const port = await freePort();
    for (const scheme of ['tcp', 'frame+tcp']) {
      const r = await connect(`${scheme}://127.0.0.1:${port}`);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `switchyard connect: cannot connect to ${scheme}://127.0.0.1:${port}: connection refused\n`);
    }
    const http = await connect(`http://127.0.0.1:${port}/`);
    assert.equal(http.code, 1);
    assert.equal(http.stderr, `switchyard connect: cannot connect to http://127.0.0.1:${port}/: connection refused\n`);
  });

  test('bad URLs and options that do not fit the scheme: exit 2', async () => {
    for (const [url, why] of [
      ['ftp://example.com', /unsupported scheme "ftp:"/],
      ['tcp://127.0.0.1', /needs a port/],
      ['tcp://127.0.0.1:99999', /not a valid URL/],
      ['unix:', /needs a socket path/],
      ['127.0.0.1:80', /unsupported scheme|not a URL/],
    ] as const) {
      const r = await connect(url);
      assert.equal(r.code, 2, `${url}: ${r.stderr}`);
      assert.match(r.stderr, why, url);
    }
    const misuse = await connect(`tcp://127.0.0.1:${ports.tcp}`, ['--json', '{}']);
    assert.equal(misuse.code, 2);
    assert.match(misuse.stderr, /--json applies to http\(s\) URLs only/);
    const badWait = await connect(`udp://127.0.0.1:${ports.udp}`, ['--wait', 'soon']);
    assert.equal(badWait.code, 2);
  });
});

// ---- tls:// (raw TLS streams) -----------------------------------------------------------------

describe('switchyard connect tls://', () => {
  let tlsPort: number;
  let alpnPort: number;

  before(async () => {
    // An echo over TLS with the self-signed certificate (SAN IP:127.0.0.1 and localhost).
    tlsPort = await listen(
      createTlsServer({ cert, key }, (s) => {
        s.on('error', () => s.destroy());
        s.pipe(s);
      }),
    );
    // Says which ALPN protocol and SNI it saw, then ends.
    alpnPort = await listen(
      createTlsServer({ cert, key, ALPNProtocols: ['x-one', 'x-two'] }, (s) => {
        s.on('error', () => s.destroy());
        s.end(`alpn=${s.alpnProtocol} sni=${(s as unknown as { servername?: string }).servername}\n`);
      }),
    );
  });

  test('--ca and --insecure echo through TLS; neither is a TLS error naming the URL (exit 1)', async () => {
    const url = `tls://127.0.0.1:${tlsPort}`;
    const ca = await connect(url, ['--ca', join(dir, 'cert.pem'), '--wait', '300ms'], 'over tls\n');
    assert.equal(ca.code, 0, ca.stderr);
    assert.equal(ca.stdout, 'over tls\n');
    const insecure = await connect(url, ['--insecure', '--wait', '300ms'], 'anyway\n');
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.equal(insecure.stdout, 'anyway\n');
    const neither = await connect(url, [], 'x\n');
    assert.equal(neither.code, 1);
    assert.equal(neither.stdout, '');
    assert.match(neither.stderr, new RegExp(`^switchyard connect: cannot connect to tls://127\\.0\\.0\\.1:${tlsPort}: TLS: the server's certificate is self-signed .*--ca FILE.*--insecure\\n$`));
  });

  test('--servername: the SNI sent and the name verified; a name the certificate lacks is refused', async () => {
    const ok = await connect(`tls://127.0.0.1:${alpnPort}`, ['--ca', join(dir, 'cert.pem'), '--servername', 'localhost', '--alpn', 'x-two,x-three']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'alpn=x-two sni=localhost\n');
    const wrong = await connect(`tls://127.0.0.1:${alpnPort}`, ['--ca', join(dir, 'cert.pem'), '--servername', 'elsewhere.test']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^switchyard connect: cannot connect to tls:\/\/127\.0\.0\.1:\d+: TLS: the server's certificate does not name this host .*elsewhere\.test/);
    const misuse = await connect(`tcp://127.0.0.1:${tlsPort}`, ['--servername', 'localhost']);
    assert.equal(misuse.code, 2);
    assert.match(misuse.stderr, /--servername applies to tls and quic URLs only/);
  });

  test('a yard tcp listener with tls: { issuer: internal }, trusted with --ca of the root the yard made', async () => {
    const dataDir = join(dir, 'data');
    const y = await serve(
      { listeners: [{ name: 'secure-echo', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' }, tls: { issuer: 'internal' } }] },
      { logLevel: 'silent', dataDir },
    );
    try {
      const url = `tls://127.0.0.1:${y.address('secure-echo').port}`;
      const root = join(dataDir, 'pki', 'local', 'root.crt');
      const r = await runCli(['connect', url, '--ca', root, '--wait', '300ms'], { input: 'from the local CA\n', env: { SWITCHYARD_DATA_DIR: dataDir }, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'from the local CA\n');
      const untrusted = await runCli(['connect', url, '--wait', '300ms'], { input: 'x\n', timeoutMs: 30_000 });
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /cannot connect to tls:\/\/127\.0\.0\.1:\d+: TLS: /);
    } finally {
      await y.stop(100);
    }
  });
});
