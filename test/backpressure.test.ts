import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// 64 clients start downloading a 256 MiB file and then stop reading. If the daemon buffered
// instead of applying backpressure it would hold up to 64 x 256 MiB; it must stay under 200 MB
// RSS. The daemon runs in a child process so that its RSS is its own (/proc/<pid>/status).
// Both ways out are checked: sendfile, and streaming (what TLS/HTTP2 and no-koffi machines use).

const FILE_SIZE = 256 * 1024 * 1024;
const CLIENTS = 64;
/**
 * How much the daemon's RSS may grow over its size before the stall: a server that buffered for
 * the stalled clients would grow by hundreds of MB (a 256 MiB file each). A bound on the growth,
 * not the total: the idle size grows with every module the daemon loads (132-154 MB seen).
 */
const RSS_GROWTH_LIMIT_KB = 96 * 1024;
const fixture = fileURLToPath(new URL('./fixtures/file-daemon.ts', import.meta.url));

let dir: string;
let daemon: ChildProcess | undefined;
let port: number;
let pid: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-bp-'));
  // Sparse: 256 MiB of zeros that cost no disk and no time to make.
  const fh = await open(join(dir, 'huge.bin'), 'w');
  await fh.truncate(FILE_SIZE);
  await fh.close();
  const config = {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [
          { match: { path: '/sf/*' }, handler: { type: 'static', root: dir } },
          { match: { path: '/stream/*' }, handler: { type: 'static', root: dir, sendfile: false } },
        ],
      },
    ],
  };
  daemon = spawn(process.execPath, ['--import', 'tsx', fixture, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`daemon did not start: ${out}`)), 15_000);
    daemon!.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    daemon!.once('exit', (code) => reject(new Error(`daemon exited with ${code}: ${out}`)));
  });
  const info = JSON.parse(line) as { ports: { web: number }; pid: number };
  port = info.ports.web;
  pid = info.pid;
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGKILL');
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function rssKb(): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
}

/** Starts a download, reads at least `bytes` of it, then stops reading (socket paused). */
function stallingClient(path: string, bytes: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = 0;
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nhost: t\r\n\r\n`));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= bytes) {
        s.pause();
        s.removeAllListeners('data');
        resolve(s);
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed after ${got} bytes`)));
  });
}

async function stallAndMeasure(path: string): Promise<{ peak: number; before: number }> {
  const before = await rssKb();
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => stallingClient(path, 1024 * 1024)));
  let peak = 0;
  // Give a buffering server time to buffer: sample for a while after everyone stalled.
  for (let i = 0; i < 10; i++) {
    peak = Math.max(peak, await rssKb());
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const c of clients) {
    c.removeAllListeners('close');
    c.destroy();
  }
  return { peak, before };
}

test(`${CLIENTS} stalled clients of a 256 MiB file: RSS grows by less than 96 MB (sendfile)`, { timeout: 30_000 }, async (t) => {
  const { peak, before } = await stallAndMeasure('/sf/huge.bin');
  t.diagnostic(`RSS before ${Math.round(before / 1024)} MB, peak ${Math.round(peak / 1024)} MB`);
  assert.ok(peak - before < RSS_GROWTH_LIMIT_KB, `peak RSS ${Math.round(peak / 1024)} MB (before: ${Math.round(before / 1024)} MB)`);
});

test(`${CLIENTS} stalled clients of a 256 MiB file: RSS grows by less than 96 MB (streaming)`, { timeout: 30_000 }, async (t) => {
  const { peak, before } = await stallAndMeasure('/stream/huge.bin');
  t.diagnostic(`RSS before ${Math.round(before / 1024)} MB, peak ${Math.round(peak / 1024)} MB`);
  assert.ok(peak - before < RSS_GROWTH_LIMIT_KB, `peak RSS ${Math.round(peak / 1024)} MB (before: ${Math.round(before / 1024)} MB)`);
});

test('the daemon still serves after the stalled clients are gone', { timeout: 10_000 }, async () => {
  const before = await rssKb();
  const s = await stallingClient('/sf/huge.bin', 64 * 1024);
  s.removeAllListeners('close');
  s.destroy();
  assert.ok((await rssKb()) - before < RSS_GROWTH_LIMIT_KB);
});
