import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { processGroupCpuSeconds } from './lib/cpu.ts';
import { waitQuiet, NOISY } from './lib/measure.ts';
import { pickPort, startServer, type RunningServer } from './lib/proc.ts';
import { prepareSwitchyard } from './lib/servers.ts';
import { formatPercent, median } from './lib/stats.ts';
import { markdownTable } from './lib/table.ts';
import { makeCertificate } from './lib/tls-load.ts';
import { connectQuic } from '../src/quic/index.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- quic`: one bulk stream through Switchyard's echo handler, QUIC vs TLS over
// TCP, in one run. One daemon (compiled build, core 0) serves echo on a tls tcp listener and on
// quic listeners with 1350-byte (the default), 16 KiB and 64 KiB UDP payloads, all with the same
// certificate. The harness (core 1) opens one connection per transfer and writes 64 KiB chunks
// for --duration seconds, reading the echo as it comes; MB/s counts the bytes echoed back over
// the time from the first write to the last echoed byte (so each byte crossed loopback twice).
// CPU ms/MB is the daemon's CPU time (user + system, its whole process group) per MB echoed.
// Goal for QUIC: >= 100 MB/s and >= 0.25x TLS over TCP.
//
// Then small exchanges: 16 at a time for --duration seconds, 100 bytes each way. Over QUIC each
// exchange is a new stream on one connection (as HTTP/3 runs a request); over TLS each of 16
// connections sends its 100 bytes and waits for them back (as HTTP/1.1 keep-alive does).

export const QUIC_IDS = ['tls', 'quic-1350', 'quic-16k', 'quic-64k'] as const;
type Id = (typeof QUIC_IDS)[number];

const CHUNK = Buffer.alloc(64 * 1024, 0x5a);
const PAYLOADS: Record<Exclude<Id, 'tls'>, number> = { 'quic-1350': 1350, 'quic-16k': 16_384, 'quic-64k': 65_507 };
const GOAL_MBPS = 100;
const GOAL_RATIO = 0.25;
const MB = 1024 * 1024;
const SMALL = Buffer.alloc(100, 0x61);
const SMALL_CONCURRENCY = 16;

interface SmallSample {
  rate: number;
  serverUsPerExchange: number;
  disturbed: boolean;
}

interface Sample {
  mbps: number;
  serverMsPerMb: number;
  clientMsPerMb: number;
  lost?: number;
  disturbed: boolean;
}

export async function runQuic(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/quic');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const made = await makeCertificate(work);
  if (typeof made === 'string') {
    console.error(made);
    return 1;
  }
  const ca = readFileSync(made.cert, 'utf8');
  const tcpPort = await pickPort();
  const udpPorts: Record<string, number> = {};
  const taken = new Set([tcpPort]);
  for (const id of Object.keys(PAYLOADS)) taken.add((udpPorts[id] = await pickPort(taken)));
  const tls = { certificates: [{ cert: made.cert, key: made.key }] };
  const config = JSON.stringify({
    listeners: [
      { name: 'tls', protocol: 'tcp', address: `127.0.0.1:${tcpPort}`, tls, handler: { type: 'echo' } },
      ...Object.entries(PAYLOADS).map(([id, payload]) => ({
        name: id,
        protocol: 'quic',
        address: `127.0.0.1:${udpPorts[id]}`,
        tls,
        limits: { maxUdpPayload: payload },
        handler: { type: 'echo' },
      })),
    ],
  });
  const prepared = await prepareSwitchyard({ repo: ctx.repoRoot, work, configName: 'quic.json', config, core: ctx.serverCore, port: tcpPort });
  if (!prepared.ok) {
    console.error(`Switchyard: ${prepared.reason}`);
    return 1;
  }
  const want = QUIC_IDS.filter((id) => !ctx.servers || ctx.servers.has(id));
  const samples = new Map<Id, Sample[]>(want.map((id) => [id, []]));
  const small = new Map<'tls' | 'quic', SmallSample[]>([
    ['tls', []],
    ['quic', []],
  ]);
  for (let run = 0; run < ctx.runs; run++) {
    const background = await waitQuiet(ctx);
    const server: RunningServer = await startServer(prepared.spec);
    try {
      for (const id of want) {
        const open = (): Promise<{ stream: Duplex; close: () => Promise<void>; lost?: () => number }> =>
          id === 'tls' ? openTls(tcpPort, ca) : openQuic(udpPorts[id], ca, PAYLOADS[id]);
        if (ctx.warmupSec > 0) await transfer(await open(), ctx.warmupSec);
        const cpu0 = processGroupCpuSeconds(server.pid);
        const self0 = process.cpuUsage();
        const r = await transfer(await open(), ctx.durationSec);
        const serverCpu = processGroupCpuSeconds(server.pid) - cpu0;
        const self = process.cpuUsage(self0);
        const mb = r.bytes / MB;
        const sample: Sample = {
          mbps: mb / r.seconds,
          serverMsPerMb: (serverCpu * 1000) / mb,
          clientMsPerMb: (self.user + self.system) / 1000 / mb,
          lost: r.lost,
          disturbed: background > NOISY,
        };
        samples.get(id)!.push(sample);
        console.log(
          `run ${run + 1}/${ctx.runs} ${id.padEnd(10)} ${sample.mbps.toFixed(1).padStart(7)} MB/s  server ${sample.serverMsPerMb.toFixed(2)} ms/MB  client ${sample.clientMsPerMb.toFixed(2)} ms/MB` +
            (r.lost !== undefined ? `  lost packets ${r.lost}` : '') +
            (sample.disturbed ? `  (background load ${formatPercent(background)})` : ''),
        );
      }
      for (const kind of ['tls', 'quic'] as const) {
        if (ctx.servers && !ctx.servers.has(kind === 'tls' ? 'tls' : 'quic-1350')) continue;
        const exchange = kind === 'tls' ? () => smallTls(tcpPort, ca, ctx.durationSec) : () => smallQuic(udpPorts['quic-1350'], ca, ctx.durationSec);
        if (ctx.warmupSec > 0) await (kind === 'tls' ? smallTls(tcpPort, ca, ctx.warmupSec) : smallQuic(udpPorts['quic-1350'], ca, ctx.warmupSec));
        const cpu0 = processGroupCpuSeconds(server.pid);
        const r = await exchange();
        const serverCpu = processGroupCpuSeconds(server.pid) - cpu0;
        const sample = { rate: r.count / r.seconds, serverUsPerExchange: (serverCpu * 1e6) / Math.max(1, r.count), disturbed: background > NOISY };
        small.get(kind)!.push(sample);
        console.log(`run ${run + 1}/${ctx.runs} small ${kind.padEnd(5)} ${sample.rate.toFixed(0).padStart(7)} exchanges/s  server ${sample.serverUsPerExchange.toFixed(0)} µs each`);
      }
    } finally {
      await server.stop();
    }
  }

  const tlsRuns = samples.get('tls') ?? [];
  console.log(`\nOne bulk stream through the echo handler, 64 KiB writes, ${ctx.durationSec}s per transfer, ${ctx.runs} run(s), medians:\n`);
  const rows = want.map((id) => {
    const s = samples.get(id)!;
    const mbps = median(s.map((x) => x.mbps));
    const ratios = id === 'tls' ? [] : s.map((x, i) => (tlsRuns[i] ? x.mbps / tlsRuns[i].mbps : NaN)).filter((x) => !Number.isNaN(x));
    const ratioText = ratios.length ? `${median(ratios).toFixed(2)}x` : '-';
    const goal = id === 'tls' || !ratios.length ? '-' : mbps >= GOAL_MBPS && median(ratios) >= GOAL_RATIO ? 'met' : 'not met';
    const disturbed = s.filter((x) => x.disturbed).length;
    return [
      id === 'tls' ? 'TLS 1.3 over TCP' : `QUIC, ${PAYLOADS[id]}-byte UDP payloads`,
      mbps.toFixed(1),
      ratioText,
      median(s.map((x) => x.serverMsPerMb)).toFixed(2),
      median(s.map((x) => x.clientMsPerMb)).toFixed(2),
      s[0]?.lost !== undefined ? String(median(s.map((x) => x.lost ?? 0))) : '-',
      goal,
      disturbed ? `${disturbed} of ${s.length} runs with background load` : '',
    ];
  });
  console.log(
    markdownTable(
      [
        { title: 'transport' },
        { title: 'MB/s', align: 'right' },
        { title: 'vs TLS/TCP', align: 'right' },
        { title: 'daemon CPU ms/MB', align: 'right' },
        { title: 'client CPU ms/MB', align: 'right' },
        { title: 'lost packets', align: 'right' },
        { title: `goal (>= ${GOAL_MBPS} MB/s, >= ${GOAL_RATIO}x)` },
        { title: 'notes' },
      ],
      rows,
    ),
  );
  const tlsSmall = small.get('tls')!;
  const quicSmall = small.get('quic')!;
  if (tlsSmall.length && quicSmall.length) {
    console.log(`\nSmall exchanges, 100 bytes each way, ${SMALL_CONCURRENCY} at a time (QUIC: a new stream each on one connection, 1350-byte payloads; TLS: ${SMALL_CONCURRENCY} keep-alive connections), medians:\n`);
    const row = (name: string, xs: SmallSample[], ratioText: string) => [
      name,
      median(xs.map((x) => x.rate)).toFixed(0),
      ratioText,
      median(xs.map((x) => x.serverUsPerExchange)).toFixed(0),
      xs.some((x) => x.disturbed) ? `${xs.filter((x) => x.disturbed).length} of ${xs.length} runs with background load` : '',
    ];
    const ratios = quicSmall.map((q, i) => (tlsSmall[i] ? q.rate / tlsSmall[i].rate : NaN)).filter((x) => !Number.isNaN(x));
    console.log(
      markdownTable(
        [{ title: 'transport' }, { title: 'exchanges/s', align: 'right' }, { title: 'vs TLS/TCP', align: 'right' }, { title: 'daemon CPU µs each', align: 'right' }, { title: 'notes' }],
        [row('TLS 1.3 over TCP', tlsSmall, '-'), row('QUIC, a stream per exchange', quicSmall, ratios.length ? `${median(ratios).toFixed(2)}x` : '-')],
      ),
    );
  }
  return 0;
}

/** 100 bytes out, 100 back, on SMALL_CONCURRENCY keep-alive TLS connections, for `seconds`. */
async function smallTls(port: number, ca: string, seconds: number): Promise<{ count: number; seconds: number }> {
  const conns = await Promise.all(Array.from({ length: SMALL_CONCURRENCY }, () => openTls(port, ca)));
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  let count = 0;
  await Promise.all(
    conns.map(async ({ stream }) => {
      while (performance.now() < stopAt) {
        await new Promise<void>((resolve, reject) => {
          let got = 0;
          const onData = (d: Buffer) => {
            got += d.length;
            if (got >= SMALL.length) {
              stream.off('data', onData);
              stream.off('error', reject);
              resolve();
            }
          };
          stream.on('data', onData);
          stream.once('error', reject);
          stream.write(SMALL);
        });
        count++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  for (const c of conns) await c.close();
  return { count, seconds: elapsed };
}

/** 100 bytes out and back on a new stream each, SMALL_CONCURRENCY at a time on one QUIC connection, for `seconds`. */
async function smallQuic(port: number, ca: string, seconds: number): Promise<{ count: number; seconds: number }> {
  const conn = await connectQuic({ host: '127.0.0.1', port, alpn: ['echo'], ca });
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: SMALL_CONCURRENCY }, async () => {
      while (performance.now() < stopAt) {
        // Stream credit comes back as the server finishes streams: wait a moment when it is out.
        if (conn.streamsLeft('bidi') <= 0) {
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        const s = conn.openBidi();
        await new Promise<void>((resolve, reject) => {
          let got = 0;
          s.on('data', (d: Buffer) => (got += d.length));
          s.once('end', () => (got >= SMALL.length ? resolve() : reject(new Error(`short echo: ${got} bytes`))));
          s.once('error', reject);
          s.end(SMALL);
        });
        count++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await conn.close();
  return { count, seconds: elapsed };
}

async function openTls(port: number, ca: string): Promise<{ stream: Duplex; close: () => Promise<void> }> {
  const socket = await new Promise<Duplex>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
  return { stream: socket, close: async () => void socket.destroy() };
}

async function openQuic(port: number, ca: string, payload: number): Promise<{ stream: Duplex; close: () => Promise<void>; lost: () => number }> {
  const conn = await connectQuic({ host: '127.0.0.1', port, alpn: ['echo'], ca, limits: { maxUdpPayload: payload } });
  return { stream: conn.openBidi(), close: async () => void (await conn.close()), lost: () => conn.stats().lost };
}

/** Writes for `seconds`, ends, and waits for every byte to come back. */
async function transfer(t: { stream: Duplex; close: () => Promise<void>; lost?: () => number }, seconds: number): Promise<{ bytes: number; seconds: number; lost?: number }> {
  const { stream } = t;
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  let sent = 0;
  let received = 0;
  const echoed = new Promise<void>((resolve, reject) => {
    stream.on('data', (d: Buffer) => {
      received += d.length;
      if (writingDone && received >= sent) resolve();
    });
    stream.once('error', reject);
    stream.once('close', () => (received >= sent ? resolve() : reject(new Error(`the stream closed with ${sent - received} bytes not echoed`))));
  });
  let writingDone = false;
  await new Promise<void>((resolve) => {
    const pump = () => {
      // Bounded by the clock: one check per chunk.
      while (performance.now() < stopAt) {
        sent += CHUNK.length;
        if (!stream.write(CHUNK)) return void stream.once('drain', pump);
      }
      resolve();
    };
    pump();
  });
  writingDone = true;
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the echo did not finish within 60s')), 60_000).unref());
  await Promise.race([received >= sent ? Promise.resolve() : echoed, timeout]);
  const elapsed = (performance.now() - started) / 1000;
  const lost = t.lost?.();
  await t.close();
  return { bytes: received, seconds: elapsed, lost };
}
