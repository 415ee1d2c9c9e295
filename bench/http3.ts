import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect as h2Connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { measureLoad, disturbedWarning, isDisturbed, progressLine, ratio, summarizeRow, waitQuiet, type LoadRun, type RowSummary, type RunSample } from './lib/measure.ts';
import { pickPort, startServer, type RunningServer } from './lib/proc.ts';
import { caddyGlobalOptions, prepareCaddy, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatMicros, formatPercent, formatRate, median } from './lib/stats.ts';
import { markdownTable } from './lib/table.ts';
import { makeCertificate } from './lib/tls-load.ts';
import { Http3Client } from '../src/http3/client.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- http3`: small GETs over HTTP/3 and over HTTP/2 (TLS over TCP), Switchyard vs
// Caddy, in one run. Each server alone on core 0 serves a fixed 100-byte response at /small on one
// port: TCP (h1, h2 over TLS) and UDP (h3), with the same certificate. The load client is the
// harness itself on core 1: one connection, REQUESTS_IN_FLIGHT requests at a time, each a new
// request as soon as the previous one's response is read whole. Over HTTP/3 it is the project's
// client (src/http3/client.ts over src/quic); over HTTP/2 it is node:http2, so the client is a
// Node.js process of the same shape on both protocols. Server CPU per request is the server's
// process group's CPU time (/proc/<pid>/stat: user + system) over the requests completed, so it
// leaves out the kernel's softirq work that /proc/stat charges to the core.

export const HTTP3_IDS = ['switchyard', 'caddy'] as const;
type ServerId = (typeof HTTP3_IDS)[number];
type Protocol = 'h3' | 'h2';
const PROTOCOLS: readonly Protocol[] = ['h3', 'h2'];

const REQUESTS_IN_FLIGHT = 16;
const SMALL_BODY = 'switchyard-bench-http3-small-response-0123456789abcdefghijklmnopqrstuvwxyz'.padEnd(100, '.');
const PATH = '/small';
/** A load run stops early after this many failed requests (the notes say so). */
const MAX_ERRORS = 100;
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * SNI on both protocols. Caddy 2.6.2 picks its certificate for a ClientHello without SNI from the
 * connection's local address over TCP, but over QUIC it answers one with TLS alert 80
 * (internal_error): HTTP/3 to Caddy needs a name. The certificate holds localhost and 127.0.0.1.
 */
const SERVER_NAME = 'localhost';

interface Env {
  readonly ctx: BenchContext;
  readonly work: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

interface Server {
  readonly id: ServerId;
  readonly label: string;
  prepare(env: Env, port: number): Promise<Prepared>;
}

const switchyard: Server = {
  id: 'switchyard',
  label: 'Switchyard',
  prepare(env, port) {
    return prepareSwitchyard({
      repo: env.ctx.repoRoot,
      work: env.work,
      configName: 'switchyard.yaml',
      port,
      core: env.ctx.serverCore,
      config: [
        '# Written by bench/http3.ts.',
        'listeners:',
        '  - name: web',
        '    protocol: http',
        `    address: 127.0.0.1:${port}`,
        `    tls: { certificates: [{ cert: ${JSON.stringify(env.cert)}, key: ${JSON.stringify(env.key)} }] }`,
        '    http3: true',
        '    middleware: { accessLog: false, requestId: false }',
        '    routes:',
        `      - match: { path: ${PATH} }`,
        `        handler: { type: respond, body: ${JSON.stringify(SMALL_BODY)}, contentType: text/plain }`,
        '',
      ].join('\n'),
    });
  },
};

const caddy: Server = {
  id: 'caddy',
  label: 'Caddy',
  prepare(env, port) {
    return prepareCaddy({
      name: 'Caddy',
      dir: join(env.work, 'caddy'),
      port,
      core: env.ctx.serverCore,
      caddyfile: (dir) => `# Written by bench/http3.ts: admin API off, logs discarded, HTTP/1.1, HTTP/2 and HTTP/3
# (UDP on the site's port), the benchmark's certificate, no automatic HTTPS.
${caddyGlobalOptions(dir, 'h1 h2 h3')}
https://127.0.0.1:${port}, https://localhost:${port} {
	tls ${env.cert} ${env.key}
	handle ${PATH} {
		header Content-Type text/plain
		respond "${SMALL_BODY}" 200
	}
}
`,
    });
  },
};

const SERVERS: readonly Server[] = [switchyard, caddy];

interface ClientRun extends LoadRun {
  readonly errors: number;
  readonly firstError: string | undefined;
  /** The harness's (= the load client's) CPU seconds during the run. */
  readonly harnessCpuSeconds: number;
}

interface Sample extends RunSample {
  readonly server: ServerId;
  readonly protocol: Protocol;
  readonly background: number;
  /** Server process group CPU (user + system) per request, µs. */
  readonly processUsPerReq: number;
  /** The load client's CPU per request, µs. */
  readonly clientUsPerReq: number;
}

/** Runs `one` with REQUESTS_IN_FLIGHT workers until `seconds` pass (or MAX_ERRORS failures). */
async function drive(seconds: number, one: () => Promise<void>): Promise<ClientRun> {
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  let requests = 0;
  let errors = 0;
  let firstError: string | undefined;
  await Promise.all(
    Array.from({ length: REQUESTS_IN_FLIGHT }, async () => {
      // Bounded by the clock and by the error count.
      while (performance.now() < stopAt && errors < MAX_ERRORS) {
        try {
          await one();
          requests++;
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { requests, requestsPerSec: requests / elapsed, clientCpuSeconds: undefined, errors, firstError, harnessCpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

function checkBody(status: number, body: Buffer): void {
  if (status !== 200) throw new Error(`status ${status}`);
  if (body.length !== SMALL_BODY.length) throw new Error(`body of ${body.length} bytes, expected ${SMALL_BODY.length}`);
}

async function openH3(port: number, ca: string): Promise<Http3Client> {
  return Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: SERVER_NAME, timeout: REQUEST_TIMEOUT_MS, maxBody: 1 << 20 });
}

async function loadH3(port: number, ca: string, seconds: number): Promise<ClientRun> {
  const client = await openH3(port, ca);
  try {
    return await drive(seconds, async () => {
      // Stream credit comes back as the server retires streams: wait a moment when it is out.
      for (let i = 0; i < 1_000 && client.quic.streamsLeft('bidi') <= 0; i++) await sleep(1);
      const r = await client.request({ path: PATH });
      checkBody(r.status, r.body);
    });
  } finally {
    await client.close().catch(() => {});
  }
}

async function openH2(port: number, ca: string): Promise<ClientHttp2Session> {
  const session = h2Connect(`https://127.0.0.1:${port}`, { ca, servername: SERVER_NAME });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('HTTP/2 connect timed out after 10 s')), 10_000);
    session.once('connect', () => (clearTimeout(timer), resolve()));
    session.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
  session.on('error', () => {}); // each request sees its own failure
  if (session.alpnProtocol !== 'h2') throw new Error(`ALPN picked ${String(session.alpnProtocol)}, not h2`);
  return session;
}

function h2Get(session: ClientHttp2Session): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': PATH }, { endStream: true });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.close());
    let status = 0;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) req.close();
      else chunks.push(c);
    });
    req.once('end', () => resolve({ status, body: Buffer.concat(chunks) }));
    req.once('error', reject);
    req.once('close', () => (status === 0 ? reject(new Error('stream closed without a response')) : undefined));
  });
}

async function loadH2(port: number, ca: string, seconds: number): Promise<ClientRun> {
  const session = await openH2(port, ca);
  try {
    return await drive(seconds, async () => {
      const r = await h2Get(session);
      checkBody(r.status, r.body);
    });
  } finally {
    session.close();
    session.destroy();
  }
}

/**
 * One GET over each protocol, checked byte for byte. The UDP side may come up a moment after the
 * TCP port accepts, so HTTP/3 is tried up to 20 times, 250 ms apart.
 */
async function verify(port: number, ca: string): Promise<string | undefined> {
  let lastH3 = '';
  let h3ok = false;
  for (let i = 0; i < 20 && !h3ok; i++) {
    try {
      const c = await openH3(port, ca);
      try {
        const r = await c.request({ path: PATH });
        if (r.status !== 200 || r.body.toString() !== SMALL_BODY) return `HTTP/3 GET ${PATH}: status ${r.status}, ${r.body.length}-byte body that is not the expected response`;
        h3ok = true;
      } finally {
        await c.close().catch(() => {});
      }
    } catch (err) {
      lastH3 = (err as Error).message;
      await sleep(250);
    }
  }
  if (!h3ok) return `HTTP/3 GET ${PATH} failed 20 times over 5 s: ${lastH3}`;
  try {
    const s = await openH2(port, ca);
    try {
      const r = await h2Get(s);
      if (r.status !== 200 || r.body.toString() !== SMALL_BODY) return `HTTP/2 GET ${PATH}: status ${r.status}, ${r.body.length}-byte body that is not the expected response`;
    } finally {
      s.close();
      s.destroy();
    }
  } catch (err) {
    return `HTTP/2 GET ${PATH} failed: ${(err as Error).message}`;
  }
  return undefined;
}

export async function runHttp3(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/http3');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const made = await makeCertificate(work);
  if (typeof made === 'string') {
    console.error(made);
    return 1;
  }
  const env: Env = { ctx, work, cert: made.cert, key: made.key, ca: readFileSync(made.cert, 'utf8') };
  const port = await pickPort();
  const ready: { server: Server; prepared: Extract<Prepared, { ok: true }> }[] = [];
  const failures = new Map<ServerId, string>();
  for (const server of SERVERS) {
    if (ctx.servers && !ctx.servers.has(server.id)) continue;
    const prepared = await server.prepare(env, port);
    if (prepared.ok) {
      ready.push({ server, prepared });
      console.log(`${server.label}: ${prepared.info}`);
    } else failures.set(server.id, prepared.reason);
  }
  console.log(
    `\nGET ${PATH} (${SMALL_BODY.length}-byte body), ${REQUESTS_IN_FLIGHT} requests in flight on one connection, ` +
      `${ctx.warmupSec}s warm-up + ${ctx.durationSec}s measured, ${ctx.runs} interleaved run(s); server on core ${ctx.serverCore}, client (this process) on core ${ctx.clientCore}\n`,
  );

  const samples: Sample[] = [];
  for (let run = 1; run <= ctx.runs; run++) {
    for (const { server, prepared } of ready) {
      if (failures.has(server.id)) continue;
      const background = await waitQuiet(ctx);
      let running: RunningServer | undefined;
      try {
        running = await startServer(prepared.spec);
        const bad = await verify(port, env.ca);
        if (bad) {
          failures.set(server.id, bad);
          console.log(`  ${server.label}: ${bad}`);
          continue;
        }
        for (const protocol of PROTOCOLS) {
          const m = await measureLoad<ClientRun>({
            ctx,
            server: running,
            run: (seconds) => (protocol === 'h3' ? loadH3(port, env.ca, seconds) : loadH2(port, env.ca, seconds)),
          });
          const problems = [...m.problems];
          if (m.load.errors > 0) problems.push(`${m.load.errors} failed requests (first: ${m.load.firstError})`);
          const requests = Math.max(1, m.requests);
          const sample: Sample = {
            run,
            server: server.id,
            protocol,
            background,
            rps: m.rps,
            cpuUsPerReq: m.cpuUsPerReq,
            serverCoreBusy: m.serverCoreBusy,
            clientCoreBusy: m.clientCoreBusy,
            p99Ms: Number.NaN,
            others: m.others,
            problems,
            processUsPerReq: (m.serverCpuSeconds * 1e6) / requests,
            clientUsPerReq: (m.load.harnessCpuSeconds * 1e6) / requests,
          };
          samples.push(sample);
          console.log(
            progressLine(sample, ctx.runs, `${server.label.padEnd(10)} ${protocol}`, {
              clientCoreName: 'client core',
              latency: `server process ${formatMicros(sample.processUsPerReq)} µs/req  client ${formatMicros(sample.clientUsPerReq)} µs/req`,
            }),
          );
        }
      } catch (err) {
        console.log(`  run ${run}: ${server.label} failed: ${(err as Error).message}`);
      } finally {
        await running?.stop();
      }
    }
  }

  const rows = new Map<string, RowSummary<Sample>>();
  for (const { server } of ready) {
    for (const protocol of PROTOCOLS) {
      const all = samples.filter((s) => s.server === server.id && s.protocol === protocol);
      if (all.length) rows.set(`${server.id}/${protocol}`, summarizeRow(all, ctx.runs));
    }
  }
  // A ratio whose two medians rest on disturbed runs (either side) is marked: it compares a
  // loaded machine with a quiet one, or two loaded moments.
  const mixed = (a: RowSummary<Sample>, b: RowSummary<Sample>) => (a.used.some(isDisturbed) || b.used.some(isDisturbed) ? '*' : '');
  const table: string[][] = [];
  for (const protocol of PROTOCOLS) {
    for (const { server } of ready) {
      const row = rows.get(`${server.id}/${protocol}`);
      if (!row) continue;
      const caddyRow = rows.get(`caddy/${protocol}`);
      const h2Row = rows.get(`${server.id}/h2`);
      table.push([
        server.label,
        protocol === 'h3' ? 'HTTP/3 (QUIC)' : 'HTTP/2 (TLS/TCP)',
        formatRate(row.rps),
        row.perRun,
        server.id === 'caddy' || !caddyRow ? '—' : ratio(row.rps, caddyRow.rps) + mixed(row, caddyRow),
        protocol === 'h2' || !h2Row ? '—' : ratio(row.rps, h2Row.rps) + mixed(row, h2Row),
        formatMicros(median(row.used.map((s) => s.processUsPerReq))),
        formatMicros(row.cpu),
        server.id === 'caddy' || !caddyRow
          ? '—'
          : ratio(median(row.used.map((s) => s.processUsPerReq)), median(caddyRow.used.map((s) => s.processUsPerReq))) + mixed(row, caddyRow),
        formatMicros(median(row.used.map((s) => s.clientUsPerReq))),
        formatPercent(row.serverCoreBusy),
        formatPercent(row.clientCoreBusy),
        row.notes.join('; '),
      ]);
    }
  }
  console.log('');
  if (table.length) {
    console.log(
      markdownTable(
        [
          { title: 'server' },
          { title: 'protocol' },
          { title: 'req/s (median)', align: 'right' },
          { title: 'req/s per run' },
          { title: 'vs Caddy', align: 'right' },
          { title: 'vs own h2', align: 'right' },
          { title: 'server CPU µs/req (process)', align: 'right' },
          { title: 'core 0 µs/req', align: 'right' },
          { title: 'CPU vs Caddy', align: 'right' },
          { title: 'client CPU µs/req', align: 'right' },
          { title: 'server core', align: 'right' },
          { title: 'client core', align: 'right' },
          { title: 'notes' },
        ],
        table,
      ),
    );
  }
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning} A ratio marked * rests on disturbed runs on at least one side.`);
  console.log(
    `\nserver CPU µs/req (process): the server's process group, user + system, per request; core 0 µs/req: core 0's busy time ` +
      'per request (adds softirq and other processes on that core). With the client core near 100% the client limits req/s; compare CPU per request then.',
  );
  for (const [id, reason] of failures) console.log(`\n${SERVERS.find((s) => s.id === id)?.label ?? id} not measured: ${reason}`);
  return 0;
}
