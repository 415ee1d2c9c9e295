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
