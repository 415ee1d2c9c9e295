import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { clockTicksPerSecond } from './lib/cpu.ts';
import { interleave, prepareAll, printFailures } from './lib/interleave.ts';
import { backgroundLoad, disturbedWarning, formatMs, measureLoad, progressLine, ratio, summarizeRow, type RowSummary } from './lib/measure.ts';
import type { RunningServer } from './lib/proc.ts';
import { caddyGlobalOptions, caddyPeer, nginxMainContext, nginxPeer, nginxTempPaths, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatBytes, formatMicros, formatPercent, formatRate } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import { runWrk, socketErrorTotal } from './lib/wrk.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- compress`: a 100 KB JSON file served as a static file and gzipped on the fly
// for every request (the client sends Accept-Encoding: gzip), Switchyard's `compress` middleware
// vs nginx `gzip on` vs Caddy `encode gzip`, all at the same gzip level. Server on core 0 (all
// its threads: Switchyard's zlib work runs on libuv's pool, counted too), wrk on core 1;
// interleaved runs; median req/s, ratio to nginx and the server core's CPU time per request.

export const COMPRESS_IDS = ['switchyard', 'nginx', 'caddy'] as const;
type PeerId = (typeof COMPRESS_IDS)[number];

/** The level all three compress at: zlib's default, and what nginx users usually pick. */
const GZIP_LEVEL = 6;
/** Every server's threshold below which it does not compress (the file is far above it). */
const MIN_LENGTH = 1024;
const FILE = 'data.json';
const FILE_SIZE = 100 * 1024;
const ACCEPT = 'Accept-Encoding: gzip';

interface Env {
  readonly ctx: BenchContext;
  readonly work: string;
  readonly www: string;
}

interface Peer {
  readonly id: PeerId;
  readonly label: string;
  prepare(env: Env, port: number): Promise<Prepared>;
}

interface Sample {
  readonly peer: PeerId;
  readonly run: number;
  readonly rps: number;
  readonly requests: number;
  readonly cpuUsPerReq: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  readonly p99Ms: number;
  /** Bytes wrk read per response (head included): the compressed size, roughly. */
  readonly bytesPerResponse: number;
  readonly background: number;
  readonly others: number;
  readonly problems: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Peers

const switchyard: Peer = {
  id: 'switchyard',
  label: 'Switchyard',
  prepare(env, port) {
    return prepareSwitchyard({
      repo: env.ctx.repoRoot,
      work: env.work,
      configName: 'switchyard-compress.yaml',
      port,
      core: env.ctx.serverCore,
      config: [
        'listeners:',
        '  - name: web',
        '    protocol: http',
        `    address: 127.0.0.1:${port}`,
        '    middleware:',
        '      accessLog: false',
        '      requestId: false',
        `      compress: { encodings: [gzip], level: { gzip: ${GZIP_LEVEL} }, minSize: ${MIN_LENGTH} }`,
        '    routes:',
        '      - match: { path: /* }',
        `        handler: { type: static, root: ${JSON.stringify(env.www)} }`,
        '',
      ].join('\n'),
    });
  },
};

function nginxConf(dir: string, www: string, port: number, temps: readonly string[]): string {
  return `# Written by bench/compress.ts; one worker process, gzip on the fly, no access log.
${nginxMainContext(dir)}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${nginxTempPaths(dir, temps)}
    types {
        application/json json;
    }
    default_type application/octet-stream;

    gzip on;
    gzip_types application/json;
    gzip_comp_level ${GZIP_LEVEL};
    gzip_min_length ${MIN_LENGTH};
    gzip_vary on;

    server {
        listen 127.0.0.1:${port};
        server_name localhost;
        root ${www};
        location / {
        }
    }
}
`;
}

const nginx: Peer = nginxPeer<Env>('nginx-compress', (env, dir, port, temps) => nginxConf(dir, env.www, port, temps));

function caddyfile(dir: string, www: string, port: number): string {
  return `# Written by bench/compress.ts: admin API off, logs discarded, plain HTTP/1.1 (what wrk speaks),
# file_server behind encode gzip at the benchmark's level.
${caddyGlobalOptions(dir, 'h1')}
http://127.0.0.1:${port} {
	root * ${www}
	encode {
		gzip ${GZIP_LEVEL}
		minimum_length ${MIN_LENGTH}
	}
	file_server
}
`;
}

const caddy: Peer = caddyPeer<Env>('caddy-compress', (env, dir, port) => caddyfile(dir, env.www, port));

const PEERS: readonly Peer[] = [switchyard, nginx, caddy];

// ---------------------------------------------------------------------------------------------
// Measurement

/** 100 KiB of JSON that compresses as API answers do (repeated keys, varied values): about 8x with gzip 6. */
function jsonBody(): Buffer {
  const rows: string[] = [];
  let size = 2;
  // Bounded: each row adds well over 50 bytes.
  for (let i = 0; size < FILE_SIZE - 200 && i < 10_000; i++) {
    const row = JSON.stringify({
      id: i,
      sku: `SKU-${(i * 7919) % 100_000}`,
      name: `Item number ${i}`,
      price: Math.round(((i * 37) % 10_000) * 1.17) / 100,
      inStock: i % 3 !== 0,
      tags: ['alpha', 'beta', 'gamma', 'delta'].slice(0, 1 + (i % 4)),
      updated: new Date(Date.UTC(2026, 0, 1) + i * 3_600_000).toISOString(),
    });
    rows.push(row);
    size += row.length + 1;
  }
  return Buffer.from(`[${rows.join(',')}]`.padEnd(FILE_SIZE, ' '));
}

function ensureFile(www: string): void {
  mkdirSync(www, { recursive: true });
  const p = join(www, FILE);
  try {
    if (statSync(p).size === FILE_SIZE) return;
  } catch {
    // written below
  }
  writeFileSync(p, jsonBody());
}

/** One GET with Accept-Encoding: gzip; the answer must be gzip and decode to the file. */
function verify(port: number, www: string): Promise<string | undefined> {
  const expected = readFileSync(join(www, FILE));
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: `/${FILE}`, headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (b: Buffer) => {
        n += b.length;
        if (n > 2 * FILE_SIZE) req.destroy(new Error('answer larger than twice the file'));
        else chunks.push(b);
      });
      res.once('end', () => {
        if (res.statusCode !== 200) return resolve(`GET /${FILE} answered ${res.statusCode}`);
        if (res.headers['content-encoding'] !== 'gzip') return resolve(`GET /${FILE} with Accept-Encoding: gzip came back with Content-Encoding ${res.headers['content-encoding'] ?? '(none)'}`);
        try {
          if (!gunzipSync(Buffer.concat(chunks)).equals(expected)) return resolve(`GET /${FILE} decodes to bytes that differ from the file`);
        } catch (e) {
          return resolve(`GET /${FILE}: the gzip body does not decode: ${(e as Error).message}`);
        }
        resolve(undefined);
      });
      res.once('error', (e) => resolve(`GET /${FILE} failed: ${e.message}`));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out after 10 s')));
    req.once('error', (e) => resolve(`GET /${FILE} failed: ${e.message}`));
    req.end();
  });
}

async function measure(env: Env, server: RunningServer, peer: Peer, run: number, background: number): Promise<Sample> {
  const { ctx } = env;
  const url = `http://127.0.0.1:${server.spec.port}/${FILE}`;
  const m = await measureLoad({
    ctx,
    server,
    run: async (durationSec) => {
      const w = await runWrk({ url, durationSec, connections: ctx.connections, threads: 1, core: ctx.clientCore, headers: [ACCEPT] });
      return { ...w, clientCpuSeconds: w.wrkCpuSeconds };
    },
  });
  const w = m.load;
  const problems = [...m.problems];
  if (w.non2xx3xx > 0) problems.push(`${w.non2xx3xx} non-2xx/3xx responses`);
  if (socketErrorTotal(w) > 0) {
    const e = w.socketErrors;
    problems.push(`socket errors: connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}`);
  }
  const bytesPerResponse = m.requests > 0 ? w.bytesRead / m.requests : Number.NaN;
  // Compressed, the JSON is a fifth of its size; anything near the file size was sent as it is.
  if (bytesPerResponse > FILE_SIZE / 2) problems.push(`${Math.round(bytesPerResponse)} bytes per response: not compressed`);
  return {
    peer: peer.id,
    run,
    rps: m.rps,
    requests: m.requests,
    cpuUsPerReq: m.cpuUsPerReq,
    serverCoreBusy: m.serverCoreBusy,
    clientCoreBusy: m.clientCoreBusy,
    p99Ms: w.latencyMs.p99 ?? Number.NaN,
    bytesPerResponse,
    background,
    others: m.others,
    problems,
  };
}

// ---------------------------------------------------------------------------------------------

export async function runCompress(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work');
  const env: Env = { ctx, work, www: join(work, 'www-compress') };
  mkdirSync(work, { recursive: true });
  ensureFile(env.www);

  const wanted = PEERS.filter((p) => !ctx.servers || ctx.servers.has(p.id));
  const { ready, skipped } = await prepareAll(wanted, env, new Set<number>());
  if (ready.length === 0) {
    console.error('\nNo server can run; nothing to measure.');
    return 1;
  }

  console.log(
    `\nServer core ${ctx.serverCore}, wrk core ${ctx.clientCore} (wrk -t1 -c${ctx.connections} -d${ctx.durationSec}s -H '${ACCEPT}', ` +
      `warm-up ${ctx.warmupSec}s), ${ctx.runs} interleaved run(s), USER_HZ ${clockTicksPerSecond()}`,
  );
  console.log(`Before: ${(await backgroundLoad(ctx)).text}\n`);

  const samples: Sample[] = [];
  const failures = await interleave({
    ctx,
    ready,
    verify: (server) => verify(server.spec.port, env.www),
    async measure(server, { peer }, run, background) {
      const s = await measure(env, server, peer, run, background);
      samples.push(s);
      console.log(progressLine(s, ctx.runs, peer.label.padEnd(10), { extra: `  ${formatBytes(Math.round(s.bytesPerResponse))}/resp` }));
    },
  });

  console.log(`after: ${(await backgroundLoad(ctx)).text}`);

  interface Row extends RowSummary<Sample> {
    readonly peer: Peer;
    readonly bytes: number;
  }
  const rows: Row[] = ready.map(({ peer }) => {
    const ss = samples.filter((s) => s.peer === peer.id);
    const summary = summarizeRow(ss, ctx.runs);
    const sizes = summary.used.map((s) => s.bytesPerResponse).sort((a, b) => a - b);
    return { peer, bytes: sizes.length ? sizes[Math.floor(sizes.length / 2)] : Number.NaN, ...summary };
  });
  const nginxRow = rows.find((r) => r.peer.id === 'nginx');
  const caddyRow = rows.find((r) => r.peer.id === 'caddy');

  const columns: Column[] = [
    { title: 'Server' },
    { title: 'req/s (median)', align: 'right' },
    { title: 'req/s per run' },
    { title: 'vs nginx', align: 'right' },
    { title: 'vs Caddy', align: 'right' },
    { title: 'CPU µs/req', align: 'right' },
    { title: 'CPU vs nginx', align: 'right' },
    { title: 'bytes/resp', align: 'right' },
    { title: 'server core', align: 'right' },
    { title: 'wrk core', align: 'right' },
    { title: 'p99 ms', align: 'right' },
    { title: 'notes' },
  ];
  const body = rows.map((r) => [
    r.peer.label,
    formatRate(r.rps),
    r.perRun,
    r.peer.id === 'nginx' ? (Number.isFinite(r.rps) ? '1.00x' : '—') : ratio(r.rps, nginxRow?.rps ?? Number.NaN),
    r.peer.id === 'caddy' ? (Number.isFinite(r.rps) ? '1.00x' : '—') : ratio(r.rps, caddyRow?.rps ?? Number.NaN),
    formatMicros(r.cpu),
    r.peer.id === 'nginx' ? (Number.isFinite(r.cpu) ? '1.00x' : '—') : ratio(r.cpu, nginxRow?.cpu ?? Number.NaN),
    formatBytes(Math.round(r.bytes)),
    formatPercent(r.serverCoreBusy),
    formatPercent(r.clientCoreBusy),
    formatMs(r.p99Ms),
    r.notes.join('; '),
  ]);

  console.log(`\n## On-the-fly gzip of a ${formatBytes(FILE_SIZE)} JSON file: ${ready.map((r) => r.peer.label).join(' vs ')}\n`);
  console.log(markdownTable(columns, body));
  console.log(
    `\ngzip level ${GZIP_LEVEL} for all (Switchyard compress level.gzip, nginx gzip_comp_level, Caddy encode gzip ${GZIP_LEVEL}), ` +
      `minimum length ${MIN_LENGTH} bytes; every request sends "${ACCEPT}" and gets a gzip body (checked once per server start ` +
      `by decoding it; "bytes/resp" is what wrk read per response, head included). ` +
      `wrk -t1 -c${ctx.connections} -d${ctx.durationSec}s on core ${ctx.clientCore}, server on core ${ctx.serverCore} (all its threads, ` +
      `Switchyard's zlib pool too); median of ${ctx.runs} interleaved run(s). "CPU µs/req": busy time of the server core per ` +
      `completed request — lower is better; "CPU vs nginx" above 1.00x means more CPU than nginx.`,
  );
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning}`);
  for (const s of skipped) console.log(`\nNot measured: ${s.peer.label}: ${s.reason}`);
  printFailures(failures);
  return samples.length > 0 ? 0 : 1;
}
