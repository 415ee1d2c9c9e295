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
