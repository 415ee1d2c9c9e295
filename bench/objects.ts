import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Pool } from 'undici';
import { pickPort, startServer, type RunningServer } from './lib/proc.ts';
import { prepareSwitchyard } from './lib/servers.ts';
import { formatRate, median } from './lib/stats.ts';
import { markdownTable } from './lib/table.ts';
import { runWrk, socketErrorTotal } from './lib/wrk.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- objects`: 1 MiB objects through the `objects` handler, against what the same
// yard does without it.
//
//   GET  wrk on the client core against one daemon on the server core, same file on disk:
//        objects (verifyOnRead stream: read + SHA-256 per request), objects (verifyOnRead none),
//        static with its memory cache (the 1 MiB file fits), static without the cache (sendfile).
//   PUT  an in-process undici loop (1 and 4 in flight), bounded by count and by --duration,
//        against writing the file directly in this process: fs write + fsync of 1 MiB in a loop
//        (what a durable PUT cannot go below; the objects PUT also fsyncs its metadata and the
//        directory, and renames twice).

export const OBJECTS_IDS = ['switchyard'] as const;

const SIZE = 1024 * 1024;
/** Most PUTs (or direct writes) in one measurement; the duration bounds it too. */
const MAX_OPS = 2000;

interface Row {
  readonly what: string;
  readonly values: number[];
  readonly note: string;
}

export async function runObjects(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/objects');
  rmSync(work, { recursive: true, force: true });
  const store = join(work, 'store');
  // The bucket's folder exists before the daemon starts: static checks its root at start.
  mkdirSync(join(store, 'bench'), { recursive: true });
  const port = await pickPort();
  const config = JSON.stringify({
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: `127.0.0.1:${port}`,
        limits: { maxBodySize: '8MiB' },
        routes: [
          { match: { path: '/obj/*' }, handler: { type: 'objects', root: store } },
          { match: { path: '/objnv/*' }, handler: { type: 'objects', root: store, verifyOnRead: 'none' } },
          { match: { path: '/files/*' }, handler: { type: 'static', root: join(store, 'bench') } },
          { match: { path: '/nocache/*' }, handler: { type: 'static', root: join(store, 'bench'), cache: { maxBytes: 0 } } },
        ],
      },
    ],
  });
  const prepared = await prepareSwitchyard({ repo: ctx.repoRoot, work, configName: 'objects.json', config, core: ctx.serverCore, port });
  if (!prepared.ok) {
    console.error(prepared.reason);
    return 1;
  }
  const server: RunningServer = await startServer(prepared.spec);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
  try {
    const body = Buffer.alloc(SIZE);
    for (let i = 0; i < SIZE; i++) body[i] = (i * 31) % 256;
    const base = `http://127.0.0.1:${port}`;
    await expectStatus(pool, 'PUT', '/obj/bench', undefined, 200);
    await expectStatus(pool, 'PUT', '/obj/bench/one', body, 200);
    const meta = JSON.parse(readFileSync(join(store, 'bench', 'one.m'), 'utf8')) as { body: string };
    // The same bytes through both handlers, checked before measuring.
    for (const path of ['/obj/bench/one', '/objnv/bench/one', `/files/${meta.body}`, `/nocache/${meta.body}`]) {
      const r = await pool.request({ method: 'GET', path });
      const got = Buffer.from(await r.body.arrayBuffer());
      if (r.statusCode !== 200 || !got.equals(body)) throw new Error(`GET ${path}: ${r.statusCode}, ${got.length} bytes, not the object`);
    }

    const rows: Row[] = [];
    const gets: [string, string, string][] = [
      ['GET objects (verifyOnRead stream)', '/obj/bench/one', 'read + SHA-256 per request'],
      ['GET objects (verifyOnRead none)', '/objnv/bench/one', 'read only'],
      ['GET static, memory cache', `/files/${meta.body}`, 'no syscall before the write'],
      ['GET static, no cache', `/nocache/${meta.body}`, 'sendfile'],
    ];
    const putRows: Row[] = [
      { what: 'PUT objects, 1 in flight', values: [], note: 'temp + fsync + rename + meta fsync + dir fsync' },
      { what: 'PUT objects, 4 in flight', values: [], note: 'same' },
      { what: 'direct write + fsync, 1 MiB (in-process)', values: [], note: 'the floor for a durable write' },
    ];
    for (const [what, , note] of gets) rows.push({ what, values: [], note });
    for (let run = 0; run < ctx.runs; run++) {
      for (let i = 0; i < gets.length; i++) {
        const url = base + gets[i][1];
        if (ctx.warmupSec > 0) await runWrk({ url, durationSec: ctx.warmupSec, connections: ctx.connections, threads: 1, core: ctx.clientCore });
        const r = await runWrk({ url, durationSec: ctx.durationSec, connections: ctx.connections, threads: 1, core: ctx.clientCore });
        if (r.non2xx3xx > 0 || socketErrorTotal(r) > 0) console.log(`  ${gets[i][0]}: ${r.non2xx3xx} non-2xx, ${socketErrorTotal(r)} socket errors`);
        rows[i].values.push(r.requestsPerSec);
        console.log(`run ${run + 1}/${ctx.runs} ${gets[i][0].padEnd(40)} ${formatRate(r.requestsPerSec)} req/s`);
      }
      putRows[0].values.push(await putLoop(pool, body, 1, ctx.durationSec));
      putRows[1].values.push(await putLoop(pool, body, 4, ctx.durationSec));
      putRows[2].values.push(await directLoop(join(work, 'direct'), body, ctx.durationSec));
      for (const r of putRows) console.log(`run ${run + 1}/${ctx.runs} ${r.what.padEnd(40)} ${formatRate(r.values[run])} ops/s`);
    }
    rows.push(...putRows);
    const check = createHash('sha256').update(body).digest('hex');
    console.log(`\n1 MiB object (sha256 ${check.slice(0, 12)}…), wrk -t1 -c${ctx.connections} -d${ctx.durationSec}s, ${ctx.runs} run(s), median:\n`);
    console.log(markdownTable([{ title: 'operation' }, { title: 'per second', align: 'right' }, { title: 'vs reference', align: 'right' }, { title: 'what it does' }], rows.map((r, i) => {
      const ref = i < gets.length ? median(rows[2].values) : median(rows[rows.length - 1].values);
      return [r.what, formatRate(median(r.values)), `${(median(r.values) / ref).toFixed(2)}x`, r.note];
    })));
    console.log('\nGET rows are compared with static from its memory cache; PUT rows with the direct write.');
    return 0;
  } finally {
    await pool.close();
    await server.stop();
  }
}

async function expectStatus(pool: Pool, method: 'PUT' | 'GET', path: string, body: Buffer | undefined, status: number): Promise<void> {
  const r = await pool.request({ method, path, body });
  await r.body.arrayBuffer();
  if (r.statusCode !== status) throw new Error(`${method} ${path}: ${r.statusCode}, expected ${status}`);
}

/** PUTs of `body` under distinct keys, `inFlight` at a time, until MAX_OPS or `seconds`: ops/s. */
async function putLoop(pool: Pool, body: Buffer, inFlight: number, seconds: number): Promise<number> {
  const start = performance.now();
  const stop = start + seconds * 1000;
  let done = 0;
  let issued = 0;
  const worker = async () => {
    while (issued < MAX_OPS && performance.now() < stop) {
      const n = issued++;
      await expectStatus(pool, 'PUT', `/obj/bench/put-${n % 64}`, body, 200);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done / ((performance.now() - start) / 1000);
}

/** Writes + fsyncs `body` into one of 64 files, until MAX_OPS or `seconds`: ops/s. */
async function directLoop(dir: string, body: Buffer, seconds: number): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const start = performance.now();
  const stop = start + seconds * 1000;
  let done = 0;
  while (done < MAX_OPS && performance.now() < stop) {
    const h = await open(join(dir, `f-${done % 64}`), 'w');
    try {
      await h.writeFile(body);
      await h.sync();
    } finally {
      await h.close();
    }
    done++;
  }
  return done / ((performance.now() - start) / 1000);
}
