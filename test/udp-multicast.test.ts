import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import { cliPath, repoRoot, runCli } from './helpers/daemon.ts';

// Multicast and broadcast need a network where they are routed: each run makes its own network
// namespace (its own loopback, with the MULTICAST flag and a route for 224.0.0.0/4 on it) and
// runs every daemon, sender and receiver inside it, so nothing leaves it and nothing of the
// host's network is changed. Making one needs root; without it the cases are skipped (and under
// CI=1 they fail: CI runs as root).

const NS = `sy-mc-${randomBytes(4).toString('hex')}`;
const tsx = import.meta.resolve('tsx');
let unmet: string | undefined;
/** Linux's loopback carries no IPv6 multicast: IPv6 groups go over a veth pair in the namespace. */
let v6unmet: string | undefined;
let dir = '';
const children: ChildProcess[] = [];

function ip(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sy-multicast-'));
  if (process.getuid?.() !== 0) {
    unmet = 'needs root to create a network namespace (ip netns add)';
    return;
  }
  const made = ip(['netns', 'add', NS]);
  if (!made.ok) {
    unmet = `cannot create a network namespace: ${made.out.trim()}`;
    return;
  }
  for (const step of [
    ['link', 'set', 'lo', 'up'],
    ['link', 'set', 'lo', 'multicast', 'on'],
    ['route', 'add', '224.0.0.0/4', 'dev', 'lo'],
  ]) {
    const r = ip(['netns', 'exec', NS, 'ip', ...step]);
    if (!r.ok) {
      unmet = `cannot set up the namespace (ip ${step.join(' ')}): ${r.out.trim()}`;
      return;
    }
  }
  for (const step of [
    ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'],
    ['link', 'set', 'v1', 'up'],
    ['link', 'set', 'v0', 'up'],
    ['-6', 'addr', 'add', 'fd00:5959::1/64', 'dev', 'v0', 'nodad'],
  ]) {
    const r = ip(['netns', 'exec', NS, 'ip', ...step]);
    if (!r.ok) {
      v6unmet = `cannot make a veth pair for IPv6 multicast (ip ${step.join(' ')}): ${r.out.trim()}`;
      return;
    }
  }
});

after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await new Promise((r) => c.once('exit', r));
    }
  }
  if (!unmet) ip(['netns', 'del', NS]);
  rmSync(dir, { recursive: true, force: true });
});

/** Skips (or under CI fails) when no namespace could be made; true when the case can run. */
function canRun(t: TestContext, ipv6 = false): boolean {
  const reason = unmet ?? (ipv6 ? v6unmet : undefined);
  if (!reason) return true;
  if (process.env.CI) assert.fail(`${reason}: CI must run this test`);
  t.skip(reason);
  return false;
}

function spawnInNs(args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', NS, ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

interface Yard {
  child: ChildProcess;
  output(): string;
  /** Resolves once `pattern` shows in its output (stdout or stderr), failing after `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
}

function collect(child: ChildProcess): { text(): string; waitFor(pattern: RegExp, ms?: number): Promise<void> } {
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    text += d.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return {
    text: () => text,
    waitFor(pattern, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pattern.test(text)) return;
          done();
          resolve();
        };
        const onExit = () => {
          done();
          reject(new Error(`exited before ${pattern} showed:\n${text}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${pattern} did not show within ${ms} ms:\n${text}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', onExit);
        };
        waiters.add(check);
        child.once('exit', onExit);
        check();
      });
    },
  };
}

let configs = 0;
function writeConfig(listener: Record<string, unknown>, file = join(dir, `yard-${++configs}.json`)): string {
  writeFileSync(file, JSON.stringify({ listeners: [{ protocol: 'udp', handler: { type: 'echo' }, ...listener }], logging: { level: 'info' } }));
  return file;
}

/** `switchyard serve FILE` inside the namespace, once its banner is out. */
async function startYard(file: string): Promise<Yard> {
  const child = spawnInNs([process.execPath, '--import', tsx, cliPath, 'serve', file]);
  child.stdin!.end();
  const out = collect(child);
  await out.waitFor(/Stop with Ctrl-C/);
  return { child, output: out.text, waitFor: out.waitFor };
}

/** `switchyard connect ...` inside the namespace with `input` on stdin, bounded. */
function connect(args: string[], input: string): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const child = spawnInNs([process.execPath, '--import', tsx, cliPath, 'connect', ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.on('error', () => {});
  child.stdin!.end(input);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`connect ${args.join(' ')} did not exit within 20 s\n${stdout}\n${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, lines: stdout.split('\n').filter((l) => l !== ''), stderr });
    });
  });
}

/** socat as a group member that is not Switchyard: prints what it receives on the port. */
async function socatMember(group: string, port: number): Promise<{ text(): string; waitFor(pattern: RegExp, ms?: number): Promise<void> }> {
  const child = spawnInNs(['socat', '-u', `UDP4-RECV:${port},reuseaddr,ip-add-membership=${group}:127.0.0.1`, 'STDOUT']);
  child.stdin!.end();
  const out = collect(child);
  // Ready once a probe sent to the group reaches it (bounded: 20 tries).
  for (let i = 0; i < 20 && !out.text().includes('probe'); i++) {
    await connect([`udp://${group}:${port}`, '--multicast', '--wait', '100ms'], 'probe\n');
  }
  assert.match(out.text(), /probe/, 'socat joined the group');
  return out;
}

test('two members of one group (two daemons, one on 0.0.0.0 and one on the group address) and socat each get a datagram sent to the group', { timeout: 120_000 }, async (t) => {
  if (!canRun(t)) return;
  const group = '239.7.7.7';
  const port = 7400;
  const witness = await socatMember(group, port);
  await startYard(writeConfig({ name: 'mc-any', address: `0.0.0.0:${port}`, reuseAddr: true, multicast: { group, interface: 'lo' } }));
  await startYard(writeConfig({ name: 'mc-group', address: `${group}:${port}`, reuseAddr: true, multicast: [{ group, interface: '127.0.0.1' }] }));
  const sent = await connect([`udp://${group}:${port}`, '--multicast', group, '--wait', '500ms'], 'to-the-group\n');
  assert.equal(sent.code, 0, sent.stderr);
  // One echo from each daemon; our own copy (looped back to our member socket) is not printed.
  assert.deepEqual(sent.lines, ['to-the-group', 'to-the-group']);
  await witness.waitFor(/to-the-group/, 5000);
});

test('a daemon reloaded onto another group leaves the old one: it no longer answers there, socat still receives it, the new group is answered', { timeout: 120_000 }, async (t) => {
  if (!canRun(t)) return;
  const [oldGroup, newGroup] = ['239.7.8.1', '239.7.8.2'];
  const port = 7401;
  const witness = await socatMember(oldGroup, port);
  const file = writeConfig({ name: 'mc', address: `0.0.0.0:${port}`, reuseAddr: true, multicast: { group: oldGroup } });
  const yard = await startYard(file);
  const before = await connect([`udp://${oldGroup}:${port}`, '--multicast', '--wait', '500ms'], 'before\n');
  assert.deepEqual(before.lines, ['before'], before.stderr);

  writeConfig({ name: 'mc', address: `0.0.0.0:${port}`, reuseAddr: true, multicast: { group: newGroup } }, file);
  yard.child.kill('SIGHUP');
  await yard.waitFor(/reconfigured/);

  const old = await connect([`udp://${oldGroup}:${port}`, '--multicast', '--wait', '500ms'], 'after-reload\n');
  assert.equal(old.code, 0, old.stderr);
  // socat (still a member, on the same port) got it: the datagram was there to be received.
  await witness.waitFor(/after-reload/, 5000);
  assert.deepEqual(old.lines, [], 'the daemon left the old group');
  const fresh = await connect([`udp://${newGroup}:${port}`, '--multicast', '--wait', '500ms'], 'new-group\n');
  assert.deepEqual(fresh.lines, ['new-group'], fresh.stderr);

  // Stopped, it is in no group at all: socat still receives, nothing answers.
  yard.child.kill('SIGTERM');
  await new Promise((r) => yard.child.once('exit', r));
  const gone = await connect([`udp://${oldGroup}:${port}`, '--multicast', '--wait', '300ms'], 'after-stop\n');
  await witness.waitFor(/after-stop/, 5000);
  assert.deepEqual(gone.lines, []);
});

test('IPv6: a daemon on [::] in group ff15::1:2 on an interface named in the config answers a datagram sent to the group', { timeout: 120_000 }, async (t) => {
  if (!canRun(t, true)) return;
  const group = 'ff15::1:2';
  const port = 7403;
  await startYard(writeConfig({ name: 'mc6', address: `[::]:${port}`, reuseAddr: true, multicast: { group, interface: 'v0' } }));
  // Bounded retries: the veth pair's IPv6 multicast route may come up a moment after the link.
  let sent = { code: null as number | null, lines: [] as string[], stderr: '' };
  for (let i = 0; i < 10 && sent.lines.length === 0; i++) {
    sent = await connect([`udp://[${group}]:${port}`, '--multicast', '--interface', 'v0', '--wait', '300ms'], 'hello-v6\n');
  }
  assert.equal(sent.code, 0, sent.stderr);
  assert.deepEqual(sent.lines, ['hello-v6']);
});

test('broadcast: a daemon on 0.0.0.0 answers a datagram sent to 127.255.255.255 with --broadcast; without the flag the client says to add it', { timeout: 120_000 }, async (t) => {
  if (!canRun(t)) return;
  const port = 7402;
  await startYard(writeConfig({ name: 'bc', address: `0.0.0.0:${port}`, broadcast: true }));
  const sent = await connect([`udp://127.255.255.255:${port}`, '--broadcast', '--wait', '500ms'], 'hello-everyone\n');
  assert.equal(sent.code, 0, sent.stderr);
  assert.deepEqual(sent.lines, ['hello-everyone']);
  const refused = await connect([`udp://127.255.255.255:${port}`, '--wait', '300ms'], 'hello\n');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /add --broadcast/);
});

test('a multicast listener config is checked: group, bind address, interface, families', { timeout: 60_000 }, async () => {
  const file = join(dir, 'bad.json');
  writeFileSync(
    file,
    JSON.stringify({
      listeners: [
        { name: 'a', protocol: 'udp', address: '0.0.0.0:7500', multicast: { group: '10.1.2.3' }, handler: { type: 'echo' } },
        { name: 'b', protocol: 'udp', address: '127.0.0.1:7501', multicast: { group: '239.1.1.1' }, handler: { type: 'echo' } },
        { name: 'c', protocol: 'udp', address: '0.0.0.0:7502', multicast: { group: '239.1.1.1', interface: 'nosuch0' }, handler: { type: 'echo' } },
        { name: 'd', protocol: 'udp', address: '0.0.0.0:7503', multicast: { group: '239.1.1.1', interface: '203.0.113.77' }, handler: { type: 'echo' } },
        { name: 'e', protocol: 'udp', address: '0.0.0.0:7504', multicast: [{ group: '239.1.1.1' }, { group: 'ff02::1:3' }], handler: { type: 'echo' } },
        { name: 'f', protocol: 'udp', address: '0.0.0.0:7505', multicast: { group: '239.1.1.1', interface: '::1' }, handler: { type: 'echo' } },
      ],
    }),
  );
  const r = await runCli(['check', file]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  const out = r.stdout + r.stderr;
  assert.match(out, /listeners\[0\]\.multicast\.group: expected a multicast group address/);
  assert.match(out, /listeners\[1\]\.address: a socket bound to 127\.0\.0\.1 does not receive datagrams sent to a group; bind 0\.0\.0\.0/);
  assert.match(out, /listeners\[2\]\.multicast\.interface: this host has no interface "nosuch0"/);
  assert.match(out, /listeners\[3\]\.multicast\.interface: 203\.0\.113\.77 is not an address of this host/);
  assert.match(out, /listeners\[4\]\.multicast: the groups of one listener are all IPv4 or all IPv6/);
  assert.match(out, /listeners\[5\]\.multicast\.interface: the group 239\.1\.1\.1 is IPv4/);

  // serve refuses the same config before binding anything.
  const serve = await runCli(['serve', file], { timeoutMs: 20_000 });
  assert.notEqual(serve.code, 0);
  assert.match(serve.stdout + serve.stderr, /listeners\[2\]\.multicast\.interface/);
});

test('connect: --multicast and --broadcast are for udp, a group needs --multicast, --ttl needs --multicast', { timeout: 60_000 }, async () => {
  const cases: [string[], RegExp][] = [
    [['udp://239.1.1.1:7600'], /is a multicast group: add --multicast/],
    [['udp://127.0.0.1:7600', '--multicast'], /127\.0\.0\.1 is not a multicast group/],
    [['udp://239.1.1.1:7600', '--multicast', '239.1.1.2'], /give the group there \(udp:\/\/239\.1\.1\.2:7600\)/],
    [['udp://127.0.0.1:7600', '--ttl', '4'], /--ttl applies with --multicast only/],
    [['tcp://127.0.0.1:7600', '--broadcast'], /--broadcast applies to udp URLs only/],
    [['udp://239.1.1.1:7600', '--multicast', '--interface', 'nosuch0'], /--interface nosuch0: this host has no interface "nosuch0"/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(['connect', ...args], { input: 'x\n' });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
