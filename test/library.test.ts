import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from './helpers/daemon.ts';

const exec = promisify(execFile);

// The package as a program that depends on it sees it: `import ... from 'switchyard'` resolved
// through package.json's exports to the compiled build, run by plain node (no tsx).

test("the README's library example runs against the compiled package", async () => {
  await exec('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, timeout: 120_000 });
  const program = `
    import { serve } from 'switchyard';
    const yard = await serve({
      listeners: [{
        name: 'web', protocol: 'http', address: '127.0.0.1:0',
        routes: [
          { match: { path: '/assets/*' }, handler: { type: 'static', root: './public' } },
          { match: { path: '/health' }, handler: { type: 'respond', body: 'ok\\n' } },
        ],
      }],
    }, { logLevel: 'silent' });
    const base = 'http://127.0.0.1:' + yard.address('web').port;
    const health = await (await fetch(base + '/health')).text();
    const asset = await (await fetch(base + '/assets/hello.txt')).text();
    await yard.stop();
    console.log(JSON.stringify({ health, asset }));
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', program], { cwd: repoRoot, timeout: 30_000 });
  const out = JSON.parse(stdout) as { health: string; asset: string };
  assert.equal(out.health, 'ok\n');
  assert.match(out.asset, /Hello from Switchyard/);
});

test('a config error from the library names the field', async () => {
  const program = `
    import { serve, ConfigError } from 'switchyard';
    try {
      await serve({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'static' } }] }] });
    } catch (err) {
      console.log(JSON.stringify({ isConfigError: err instanceof ConfigError, issues: err.issues }));
    }
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', program], { cwd: repoRoot, timeout: 30_000 });
  const out = JSON.parse(stdout) as { isConfigError: boolean; issues: { path: string; message: string }[] };
  assert.equal(out.isConfigError, true);
  assert.deepEqual(out.issues.map((i) => i.path), ['listeners[0].routes[0].handler.root']);
});

test('the IPC toolkit through the compiled package: a tcp Channel round trip and an MPMC channel', async () => {
  await exec('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, timeout: 120_000 });
  const program = `
    import { ipc } from 'switchyard';
    const server = await ipc.listenTcp({ host: '127.0.0.1', port: 0 });
    const accepted = (async () => { for await (const ch of server) { for await (const m of ch) await ch.send(m); return; } })();
    const client = await ipc.connectTcp({ host: '127.0.0.1', port: server.port });
    await client.send(new TextEncoder().encode('ping'));
    const echoed = new TextDecoder().decode(await client.receive());
    await client.close();
    await accepted;
    await server.close();
    const q = new ipc.MpmcChannel(2);
    await q.send(1); await q.send(2);
    const full = q.trySend(3);
    console.log(JSON.stringify({ echoed, first: await q.receive(), full }));
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', program], { cwd: repoRoot, timeout: 30_000 });
  assert.deepEqual(JSON.parse(stdout), { echoed: 'ping', first: 1, full: false });
});

test('real-time pieces through the compiled package: a chat room over WebSocket, the connect and frame clients, a room store', async () => {
  await exec('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, timeout: 120_000 });
  const program = `
    import { serve, connect, encodeFrame, FrameDecoder, MemoryRoomStore } from 'switchyard';
    const yard = await serve({
      listeners: [
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/chat/*' }, handler: { type: 'chat' } }] },
        { name: 'frames', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'frame-echo' } },
      ],
    }, { logLevel: 'silent' });
    const got = [];
    const ws = await connect.connectWs('ws://127.0.0.1:' + yard.address('web').port + '/chat/lib', {
      onMessage: (data) => got.push(JSON.parse(String(data))),
    });
    ws.send(JSON.stringify({ type: 'join', nick: 'lib' }));
    ws.send(JSON.stringify({ type: 'message', text: 'hello' }));
    while (!got.some((m) => m.type === 'message')) await new Promise((r) => setTimeout(r, 10));
    ws.close();
    const frames = [];
    const fc = await connect.connectFrames({ host: '127.0.0.1', port: yard.address('frames').port }, { onFrame: (f) => frames.push(Buffer.from(f).toString()) });
    fc.send(Buffer.from('framed'));
    while (frames.length === 0) await new Promise((r) => setTimeout(r, 10));
    fc.end();
    const dec = new FrameDecoder({ maxFrameSize: 16 });
    const decoded = dec.push(encodeFrame(Buffer.from('x'))).map((f) => Buffer.from(f).toString());
    const store = new MemoryRoomStore();
    const claimed = await store.claim('r', 'n', 'o1');
    const taken = !(await store.claim('r', 'n', 'o2'));
    await yard.stop(500);
    const message = got.find((m) => m.type === 'message');
    console.log(JSON.stringify({ welcome: got[0].type, text: message.text, seq: typeof message.seq, frames, decoded, claimed, taken }));
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', program], { cwd: repoRoot, timeout: 30_000 });
  assert.deepEqual(JSON.parse(stdout), { welcome: 'welcome', text: 'hello', seq: 'number', frames: ['framed'], decoded: ['x'], claimed: true, taken: true });
});

test('QUIC and HTTP/3 through the compiled package: switchyard/quic echo, switchyard/http3 GET', async () => {
  await exec('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, timeout: 120_000 });
  const program = `
    import { mkdtempSync, readFileSync } from 'node:fs';
    import { tmpdir } from 'node:os';
    import { join } from 'node:path';
    import { serve } from 'switchyard';
    import { connectQuic } from 'switchyard/quic';
    import { Http3Client } from 'switchyard/http3';
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-lib-quic-'));
    const tls = { issuer: 'internal' };
    const yard = await serve({
      listeners: [
        { name: 'q', protocol: 'quic', address: '127.0.0.1:0', tls, handler: { type: 'echo' } },
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', tls, http3: true, routes: [{ handler: { type: 'respond', body: 'over h3' } }] },
      ],
    }, { logLevel: 'silent', dataDir });
    const ca = readFileSync(join(dataDir, 'pki', 'local', 'root.crt'), 'utf8');
    const quic = await connectQuic({ host: '127.0.0.1', port: yard.address('q').port, alpn: ['echo'], ca });
    const stream = quic.openBidi();
    stream.end('ping');
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    await quic.close();
    const h3 = await Http3Client.connect({ host: '127.0.0.1', port: yard.address('web').port, ca });
    const res = await h3.request({ path: '/' });
    await h3.close();
    await yard.stop();
    console.log(JSON.stringify({ echo: Buffer.concat(chunks).toString(), status: res.status, body: res.body.toString() }));
  `;
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', program], { cwd: repoRoot, timeout: 60_000 });
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as { echo: string; status: number; body: string };
  assert.deepEqual(out, { echo: 'ping', status: 200, body: 'over h3' });
});
