import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Summary } from '../examples/trading/pipeline.ts';

// The trading example run as its one command, for a bounded number of quotes: every order is
// sent or rejected with a counted reason, the position limit holds at the gateway, the kill
// switch (by order count, by SIGUSR1, by file) stops orders, and the latency histogram is
// printed live. No timing is asserted; each run is bounded by its quote count and a kill timer.

const START = fileURLToPath(new URL('../examples/trading/start.ts', import.meta.url));
const RUN_LIMIT_MS = 90_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs start.ts; `onLine` may act on the output as it comes (send a signal, make a file). */
function runTrading(args: string[], onLine: (line: string, pid: number) => void = () => undefined): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', START, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    partial += d;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      onLine(partial.slice(0, i), child.pid!);
      partial = partial.slice(i + 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

function summaryOf(r: Run): Summary {
  const line = r.stdout.split('\n').find((l) => l.startsWith('{"summary":'));
  assert.ok(line, `no JSON summary in\n${r.stdout}\n${r.stderr}`);
  return (JSON.parse(line) as { summary: Summary }).summary;
}

function rejectedTotal(s: Summary): number {
  return Object.values(s.rejected).reduce((a, b) => a + b, 0);
}

/** No shm segment of a trading run is left behind. */
function leftovers(): string[] {
  return existsSync('/dev/shm') ? readdirSync('/dev/shm').filter((f) => f.startsWith('switchyard-trading-')) : [];
}

test('a bounded run: every order sent or rejected with a reason, limits enforced, histogram printed live', { timeout: 120_000 }, async () => {
  const before = new Set(leftovers());
  const r = await runTrading(['--count', '30000', '--rate', '10000', '--max-position', '200', '--max-qty', '80', '--max-order-rate', '50', '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const s = summaryOf(r);
  assert.equal(s.ended, 'count');
  assert.equal(s.quotes, 30_000);
  assert.ok(s.orders > 100, `the strategy made orders (${s.orders})`);
  assert.equal(s.balanced, true, 'every stage agrees on the counts');
  assert.equal(s.orders, s.sent + s.held + rejectedTotal(s), 'every order sent, held or rejected');
  assert.equal(s.passed, s.sent, 'no kill switch: everything risk passed was sent');
  assert.ok(s.rejected.position > 0, 'the position limit rejected orders');
  assert.ok(s.rejected.size > 0, 'the size limit rejected orders');
  assert.ok(s.rejected.rate > 0, 'the rate limit rejected orders');
  assert.equal(s.rejected['kill-switch'], 0);
  assert.ok(s.maxAbsPosition <= 200, `largest position at the gateway ${s.maxAbsPosition}`);
  assert.equal(s.kill, undefined);
  assert.equal(s.latency.count, s.sent, 'one latency sample per order sent');
  assert.ok(s.latency.p50us > 0 && s.latency.p50us <= s.latency.p99us && s.latency.p99us <= s.latency.p999us);
  // Live: at least one line a second with the histogram's figures; the summary's too.
  assert.match(r.stdout, /^trading: +\d+s +quotes [\d,]+ +orders [\d,]+ +sent [\d,]+ +rejected [\d,]+ \(kill-switch [\d,]+, size [\d,]+, position [\d,]+, rate [\d,]+\) +held [\d,]+ +\| feed->gateway (p50 \S+ \S+ +p99 \S+ \S+ +p99\.9 \S+ \S+ +max \S+ \S+|no orders)$/m);
  assert.match(r.stdout, /^ {2}latency {4}feed->gateway, [\d,]+ orders sent: p50 .* p99 .* p99\.9 .* max /m);
  assert.deepEqual(leftovers().filter((f) => !before.has(f)), [], 'segments removed');
});

test('kill switch after N orders: nothing passes risk or leaves the gateway after it, and it is reported', { timeout: 120_000 }, async () => {
  const r = await runTrading(['--count', '20000', '--rate', '10000', '--kill-after-orders', '300', '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const s = summaryOf(r);
  assert.ok(s.kill, 'the switch tripped');
  assert.equal(s.kill.source, 'order count');
  assert.equal(s.kill.risk?.seen, 300, 'risk saw it on the 300th order');
  assert.equal(s.passed, s.kill.risk?.passed, 'risk passed nothing after the switch');
  assert.equal(s.sent, s.kill.gateway?.sent, 'the gateway sent nothing after the switch');
  assert.ok(s.orders > 300, 'the strategy kept making orders');
  assert.ok(s.rejected['kill-switch'] >= s.orders - 300, 'every later order rejected for the kill switch');
  assert.equal(s.orders, s.sent + s.held + rejectedTotal(s));
  assert.match(r.stdout, /^trading: KILL SWITCH tripped by order count at [\d.]+ s/m);
  assert.match(r.stdout, /^trading: kill switch: risk stopped passing orders after [\d,]+ passed of 300 seen$/m);
  assert.match(r.stdout, /^trading: kill switch: the gateway stopped at [\d,]+ orders sent$/m);
});

test('kill switch by SIGUSR1 and by a file; Ctrl-C (SIGINT) then drains and ends cleanly', { timeout: 200_000 }, async () => {
  // SIGUSR1 once the first live line is out; SIGINT after the kill is reported.
  let signalled = false;
  let interrupted = false;
  const r = await runTrading(['--count', '2000000', '--rate', '5000', '--json'], (line, pid) => {
    if (!signalled && /^trading: +\d+s /.test(line)) {
      signalled = true;
      process.kill(pid, 'SIGUSR1');
    }
    if (signalled && !interrupted && line.startsWith('trading: kill switch: the gateway stopped')) {
      interrupted = true;
      process.kill(pid, 'SIGINT');
    }
  });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const s = summaryOf(r);
  assert.equal(s.ended, 'stop', 'stopped by Ctrl-C, not by the count');
  assert.equal(s.kill?.source, 'SIGUSR1');
  assert.equal(s.sent, s.kill?.gateway?.sent);
  assert.equal(s.passed, s.kill?.risk?.passed);
  assert.equal(s.balanced, true);
  assert.match(r.stdout, /^trading: KILL SWITCH tripped by SIGUSR1 at /m);
  assert.match(r.stdout, /^trading: stopping \(Ctrl-C again to end at once\)$/m);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-trading-'));
  try {
    const file = path.join(dir, 'KILL');
    let made = false;
    const f = await runTrading(['--count', '20000', '--rate', '5000', '--kill-file', file, '--json'], (line) => {
      if (!made && /^trading: +\d+s /.test(line)) {
        made = true;
        writeFileSync(file, '');
      }
    });
    assert.equal(f.code, 0, f.stderr + f.stdout);
    const fs = summaryOf(f);
    assert.equal(fs.kill?.source, 'kill file');
    assert.equal(fs.sent, fs.kill?.gateway?.sent);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a runner killed mid-run: its stages stop by themselves and every segment is removed', { timeout: 120_000 }, async () => {
  let stagePids: number[] = [];
  let runnerPid = 0;
  const r = await runTrading(['--count', '2000000', '--rate', '5000'], (line, pid) => {
    const m = /^trading: feed (\d+) -> strategy (\d+) -> risk (\d+) -> gateway (\d+),/.exec(line);
    if (m) stagePids = m.slice(1).map(Number);
    if (!runnerPid && /^trading: +\d+s /.test(line)) {
      runnerPid = pid;
      process.kill(pid, 'SIGKILL');
    }
  });
  assert.equal(r.code, null, 'the runner was killed');
  assert.equal(stagePids.length, 4, r.stdout);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 200 && stagePids.some(alive); i++) await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(stagePids.filter(alive), [], 'every stage ended');
  assert.deepEqual(leftovers().filter((f) => f.startsWith(`switchyard-trading-${runnerPid}-`)), [], 'no segment of the run left');
});

test('a bad flag is one line naming it and exit 2', { timeout: 60_000 }, async () => {
  const r = await runTrading(['--max-position', 'lots']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^trading: --max-position must be a whole number from 1 to \d+ \(got "lots"\)$/m);
  const u = await runTrading(['--ring-bytes', '5000']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--ring-bytes must be a power of two/);
});
