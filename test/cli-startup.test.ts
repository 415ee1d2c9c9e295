import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/daemon.ts';
import { VERSION } from '../src/version.ts';
import { HANDLER_CATALOGUE } from '../src/cli/handler-catalogue.ts';
import { TRANSPORT_NAMES } from '../src/cli/ipc/transport-names.ts';
import { TRANSPORTS } from '../src/cli/ipc/bench.ts';
import { registerBuiltinHandlers, handlerModules } from '../src/handlers/index.ts';
import { kindsOf } from '../src/handlers/types.ts';

// The CLI loads a command's module only when that command runs: `--version`, `--help` and every
// command's `--help` load commander and the option parsers, never the daemon (listeners, the yard,
// handlers), the config schema (zod) or a client. Checked by logging every ES module the child
// process loads (helpers/module-log.mjs), not by timing. The light copies the command line keeps
// (handler summaries, ipc transport names) are checked against the originals.

const moduleLog = import.meta.resolve('./helpers/module-log.mjs');
const dir = mkdtempSync(join(tmpdir(), 'sy-cli-startup-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const src = new URL('../src/', import.meta.url).href;
/** Module folders (under src/) that only a running command may load. */
const DAEMON_PARTS = ['listeners/', 'yard/', 'handlers/', 'middleware/', 'upstream/config', 'config/schema', 'config/load', 'observe/'];

let runs = 0;

/** Runs the CLI with the module log on; resolves with its output and the module URLs it loaded. */
async function runLogged(args: string[], options: { input?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string; modules: string[] }> {
  const logFile = join(dir, `modules-${++runs}.txt`);
  const r = await runCli(args, { ...options, env: { SWITCHYARD_MODULE_LOG: logFile }, nodeArgs: ['--import', moduleLog], timeoutMs: 30_000 });
  let modules: string[] = [];
  try {
    modules = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  } catch {
    // no log: asserted below (every run loads main.ts at least)
  }
  return { ...r, modules };
}

/** The daemon's (and zod's) modules among those loaded. */
function heavy(modules: string[]): string[] {
  return modules.filter((url) => (url.startsWith(src) && DAEMON_PARTS.some((part) => url.slice(src.length).startsWith(part))) || /\/node_modules\/(zod|pino|jose|undici|ws|@grpc)\//.test(url));
}

function assertLight(args: string[], modules: string[]): void {
  assert.ok(modules.some((url) => url === new URL('cli/main.ts', src).href), `the module log of "${args.join(' ')}" does not list main.ts:\n${modules.join('\n')}`);
  assert.deepEqual(heavy(modules), [], `switchyard ${args.join(' ')} loaded the daemon's modules`);
}

test('--version prints the version and loads none of the daemon', async () => {
  for (const flag of ['--version', '-v']) {
    const r = await runLogged([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${VERSION}\n`);
    assertLight([flag], r.modules);
  }
});

test('--help lists every handler type, and it and every command\'s --help load none of the daemon', async () => {
  const top = await runLogged(['--help']);
  assert.equal(top.code, 0, top.stderr);
  assertLight(['--help'], top.modules);
  for (const h of HANDLER_CATALOGUE) assert.match(top.stdout, new RegExp(`^  ${h.type.padEnd(10)} ${h.kinds.join(', ').padEnd(22)} `, 'm'));
  const commands = ['serve', 'file-server', 'reverse-proxy', 'reload', 'upgrade', 'check', 'config', 'config default', 'config adapt', 'ipc', 'ipc bench', 'ipc listen', 'ipc send', 'connect', 'bench', 'scan', 'ca', 'hash-password'];
  for (const command of commands) {
    const args = [...command.split(' '), '--help'];
    const r = await runLogged(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: switchyard ${command} `), args.join(' '));
    assertLight(args, r.modules);
  }
});

test('bad options are refused by the light parsers, before any command module loads', async () => {
  const cases: Array<{ args: string[]; says: RegExp }> = [
    { args: ['serve', '--grace', 'soon'], says: /expected a duration like 10s or 500ms/ },
    { args: ['serve', '-l', 'web'], says: /--listen expects NAME=ADDRESS/ },
    { args: ['reverse-proxy', '--to', '127.0.0.1:9001', '--lb', 'random'], says: /Allowed choices are round-robin, weighted-round-robin/ },
    { args: ['ipc', 'bench', '--transport', 'carrier-pigeon'], says: /unknown transport carrier-pigeon; expected: tcp, unix/ },
    { args: ['connect', 'gopher://x'], says: /invalid for argument 'url'/ },
    { args: ['bench', 'http://127.0.0.1:1/', '-c', '0'], says: /expected a whole number from 1 to/ },
    { args: ['scan', '-p', '70000', '127.0.0.1'], says: /invalid/ },
  ];
  for (const c of cases) {
    const r = await runLogged(c.args);
    assert.equal(r.code, 2, `${c.args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, c.says, c.args.join(' '));
    assertLight(c.args, r.modules);
  }
});

test('a command loads its own module when it runs: ca loads the CA, not the daemon; check loads the config schema', async () => {
  const dataDir = join(dir, 'data');
  const ca = await runLogged(['ca', '--pem', '--data-dir', dataDir]);
  assert.equal(ca.code, 0, ca.stderr);
  assert.match(ca.stdout, /^-----BEGIN CERTIFICATE-----\n/);
  assert.ok(ca.modules.includes(new URL('tls/ca.ts', src).href), 'ca did not load src/tls/ca.ts');
  assertLight(['ca'], ca.modules);

  const check = await runLogged(['check', join(dir, 'does-not-exist.yaml')]);
  assert.equal(check.code, 2, check.stderr);
  assert.ok(check.modules.includes(new URL('config/load.ts', src).href), 'check did not load src/config/load.ts');
});

test('the command line\'s light lists agree with the modules they stand for', () => {
  registerBuiltinHandlers();
  assert.deepEqual(
    HANDLER_CATALOGUE.map((h) => ({ type: h.type, kinds: [...h.kinds], summary: h.summary })),
    handlerModules().map((m) => ({ type: m.type, kinds: kindsOf(m), summary: m.summary })),
    'src/cli/handler-catalogue.ts differs from the registered handler modules: update it',
  );
  assert.deepEqual([...TRANSPORT_NAMES], TRANSPORTS.map((t) => t.name), 'src/cli/ipc/transport-names.ts differs from the transports of src/cli/ipc/bench.ts');
});
