import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliPath, repoRoot, runCli } from './helpers/daemon.ts';
import { formatTable, type Row } from '../src/cli/ipc/bench.ts';

// `switchyard ipc ...` through the real CLI. No timing assertions: the bench only has to run
// every transport and print numbers (or say why a transport is not available).

const tsx = import.meta.resolve('tsx');
const TRANSPORTS = ['tcp', 'unix', 'pipe', 'fifo', 'worker', 'shm-thread', 'shm', 'shm-futex'];

test('ipc bench --quick: exit 0 and a row per transport and mode, with numbers or a reason', { timeout: 60_000 }, async () => {
  const r = await runCli(['ipc', 'bench', '--quick', '--size', '2MiB'], { timeoutMs: 55_000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  for (const t of TRANSPORTS) {
    for (const mode of ['raw', 'framed']) {
      const row = r.stdout.split('\n').find((l) => l.startsWith(`| ${t} | `) && l.includes(`| ${mode} |`));
      assert.ok(row, `no ${t} ${mode} row in\n${r.stdout}`);
      const cells = row.split('|').map((c) => c.trim());
      const numbers = cells.slice(4, 7);
      if (row.includes('not available:')) assert.deepEqual(numbers, ['—', '—', '—'], row);
      else for (const n of numbers) assert.match(n, /^\d+(\.\d+)?$/, row);
    }
  }
  // The framed rows of tcp/unix/pipe exist in this tree: they must have measured.
  for (const t of ['tcp', 'unix', 'pipe']) {
    const row = r.stdout.split('\n').find((l) => l.startsWith(`| ${t} | `) && l.includes('| framed |'))!;
    assert.ok(!row.includes('not available'), row);
  }
  assert.match(r.stdout, /\| published native latency \| published native throughput \|/);
  // A quick run's ratios are too coarse to judge: it says so instead of a verdict per target.
  const targets = r.stdout.slice(r.stdout.indexOf('\nTargets:'));
  assert.match(targets, /^- not judged on a --quick run: 300 round trips and 2 MiB of bulk are too few/m);
  assert.doesNotMatch(r.stdout, /MISS|PASS|not met|seed|§/);
  // stderr is not a TTY here: plain progress lines, no carriage returns.
  assert.match(r.stderr, /ipc bench \[1\/\d+\] tcp raw: /);
  assert.ok(!r.stderr.includes('\r'));
});

test('ipc bench table of a full run: a verdict per target, "not compared" where there is no raw baseline', () => {
  const figures = (p50us: number, mbps: number) => ({ ok: true as const, figures: { p50us, p99us: p50us * 2, mbps, rounds: 10_000, bytes: 1024 ** 3 } });
  const published = { latency: '1-2 µs', throughput: '10 GB/s' };
  const rows: Row[] = [
    { transport: 'unix', form: 'processes', published, raw: figures(80, 1600), framed: figures(84, 1500) },
    { transport: 'shm', form: 'processes', published, raw: figures(0.3, 15_000), framed: figures(1.8, 4675) },
    { transport: 'shm-futex', form: 'processes', published, raw: { ok: false, unavailable: true, reason: 'no raw baseline' }, framed: figures(2.3, 4298) },
  ];
  const table = formatTable(rows, { warmup: 1000, rounds: 10_000, bytes: 1024 ** 3, chunk: 64 * 1024 }, 3);
  const targets = table.slice(table.indexOf('Targets:')).split('\n').filter((l) => l.startsWith('- '));
  assert.deepEqual(targets, [
    '- unix: framed within 1.2x of raw: met (1.07x)',
    '- shm: framed within 1.2x of raw: not met (6.00x)',
    '- shm-futex: framed within 1.2x of raw: not compared (no raw baseline)',
    '- shm ring round trip <= 1 µs: not met (1.8 µs p50)',
    '- shm ring >= 10 GB/s: not met (4675 MB/s)',
  ]);
  assert.match(table, /^\| unix \| processes \| framed \| 84\.0 \| 168 \| 1500 \| 1\.05x, 1\.07x \| 1-2 µs \| 10 GB\/s \|  \|$/m);
});

function listen(url: string): Promise<{ address: string; done: Promise<{ code: number | null; stdout: string; stderr: string }> }> {
  const child = spawn(process.execPath, ['--import', tsx, cliPath, 'ipc', 'listen', url], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  done.then(() => clearTimeout(timer));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      const had = stdout.includes('\n');
      stdout += d;
      const m = /^listening on (\S+)\n/.exec(stdout);
      if (!had && m) resolve({ address: m[1], done });
    });
    done.then((r) => reject(new Error(`listen exited early: ${r.code}\n${r.stdout}\n${r.stderr}`)));
  });
}

test('ipc listen tcp://127.0.0.1:0 prints its address; ipc send delivers; both exit 0', { timeout: 30_000 }, async () => {
  const l = await listen('tcp://127.0.0.1:0');
  assert.match(l.address, /^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
  const s = await runCli(['ipc', 'send', l.address, 'hello', 'wörld']);
  assert.equal(s.code, 0, s.stderr);
  const r = await l.done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n').slice(1, 3), ['hello', 'wörld']);
});

test('ipc listen/send over a unix socket path', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-ipc-cli-'));
  try {
    const l = await listen(`unix:${dir}/s.sock`);
    assert.equal(l.address, `unix:${dir}/s.sock`);
    const s = await runCli(['ipc', 'send', l.address, 'over unix']);
    assert.equal(s.code, 0, s.stderr);
    const r = await l.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n')[1], 'over unix');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ipc listen/send over a FIFO pair and a shm segment; both cleaned up after', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-ipc-cli-'));
  try {
    for (const url of [`fifo:${dir}/f`, `shm:ipc-cli-test-${process.pid}`]) {
      const l = await listen(url);
      assert.equal(l.address, url);
      const s = await runCli(['ipc', 'send', url, 'by hand', 'twice']);
      assert.equal(s.code, 0, s.stderr);
      const r = await l.done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.split('\n').slice(1, 3), ['by hand', 'twice']);
    }
    assert.deepEqual(readdirSync(dir), []);
    assert.ok(!existsSync(`/dev/shm/switchyard-ipc-cli-test-${process.pid}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad URL is a usage error: exit 2 with a clear message', async () => {
  for (const url of ['bogus:x', 'tcp://127.0.0.1', 'unix:relative.sock']) {
    const r = await runCli(['ipc', 'send', url, 'x']);
    assert.equal(r.code, 2, `${url}: ${r.stderr}`);
    assert.match(r.stderr, /bad transport URL/);
  }
  const r = await runCli(['ipc', 'bench', '--transport', 'carrier-pigeon']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown transport carrier-pigeon/);
});

test('a refused connection exits 1 with one line', async () => {
  const r = await runCli(['ipc', 'send', 'tcp://127.0.0.1:1', 'x']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /switchyard: .*tcp connect to 127\.0\.0\.1:1 failed: ECONNREFUSED/);
});
