import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { clockTicksPerSecond, coreUsage, processGroupCpuSeconds, sampleCpu, totalBusySeconds, type CpuSnapshot } from './lib/cpu.ts';
import { interleave, prepareAll, printFailures } from './lib/interleave.ts';
import { backgroundLoad, disturbedWarning, formatMs, isDisturbed, NOISY, ratio, readPackageVersion, summarizeRow, type RowSummary } from './lib/measure.ts';
import type { RunningServer } from './lib/proc.ts';
import { prepareNodePeer, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatMicros, formatPercent, formatRate, median } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import {
  chatRoom,
  checkEcho,
  checkRoom,
  rawEcho,
  rawRoom,
  runEcho,
  runFanout,
  socketIoEcho,
  socketIoRoom,
  type ClientKind,
  type EchoProtocol,
  type LoadResult,
  type LoadTiming,
  type RoomProtocol,
  type WindowHooks,
} from './lib/ws-load.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- ws`: WebSocket echo and room fan-out, Switchyard (ws-echo and chat
// handlers) against a bare `ws` server, uWebSockets.js (uws-pack) and socket.io, in one run.
// Each server alone on the server core, the load generator (this process, `ws` clients) on the
// client core; interleaved runs, a fresh server per run, both scenarios per start.

export const WS_IDS = ['switchyard', 'ws', 'uws', 'socketio'] as const;
type PeerId = (typeof WS_IDS)[number];
type Scenario = 'echo' | 'echo-ws' | 'fanout';

interface ScenarioDef {
  readonly id: Scenario;
  readonly kind: 'echo' | 'fanout';
  readonly client: ClientKind;
}

/**
 * In this order for every server start. The lean client (lib/ws-client.ts) is the load generator
 * of record: the `ws` client costs the load generator as much per message as a `ws` server
 * costs the server, so the fastest servers would be measured against the client. Echo is also
 * run with the `ws` client, which is how the echo goal was first measured.
 */
const SCENARIOS: readonly ScenarioDef[] = [
  { id: 'echo', kind: 'echo', client: 'lean' },
  { id: 'echo-ws', kind: 'echo', client: 'ws' },
  { id: 'fanout', kind: 'fanout', client: 'lean' },
];
const scenarioDef = (id: Scenario): ScenarioDef => SCENARIOS.find((d) => d.id === id) ?? SCENARIOS[0];

/** Payload bytes of every message (the envelopes of socket.io and chat come on top). */
const SIZE = 64;
/** (a) echo: messages outstanding on the one connection. */
const ECHO_WINDOW = 100;
/** (b) fan-out: receivers in the room (plus one sender). */
const RECEIVERS = 100;
/** (b) fan-out: messages sent but not yet delivered to all receivers, at most. */
const FANOUT_WINDOW = 16;
const ROOM = 'bench';

/** Issue targets: Switchyard over the named peer, per scenario. */
const TARGETS: readonly { readonly scenario: Scenario; readonly peer: PeerId; readonly target: number }[] = [
  { scenario: 'echo', peer: 'ws', target: 1.0 },
  { scenario: 'echo-ws', peer: 'ws', target: 1.0 },
  { scenario: 'fanout', peer: 'ws', target: 1.0 },
  { scenario: 'fanout', peer: 'socketio', target: 2.0 },
];

/**
 * Client core at least this busy while the server core is below it: the load generator, not the
 * server, set the rate. With both saturated the server is at its capacity (it had no core time
 * left), so the rate is the server's.
 */
const CLIENT_BOUND = 0.95;
const clientBound = (r: { readonly clientCoreBusy: number; readonly serverCoreBusy: number }) => r.clientCoreBusy >= CLIENT_BOUND && r.serverCoreBusy < CLIENT_BOUND;

/**
 * Neither core this busy: the window, not CPU, set the rate. A server that batches its writes
 * answers a burst of the window at once, and both sides then wait for each other's next burst.
 */
const WINDOW_BOUND = 0.9;
const windowBound = (r: { readonly clientCoreBusy: number; readonly serverCoreBusy: number }) => r.clientCoreBusy < WINDOW_BOUND && r.serverCoreBusy < WINDOW_BOUND;

interface Env {
  readonly ctx: BenchContext;
  readonly work: string;
}

interface Peer {
  readonly id: PeerId;
  readonly label: string;
  readonly echo: EchoProtocol;
  readonly room: RoomProtocol;
  prepare(env: Env, port: number): Promise<Prepared>;
}

interface Sample {
  readonly peer: PeerId;
  readonly scenario: Scenario;
  readonly run: number;
  /** Echoes per second (a); deliveries to receivers per second (b). */
  readonly rps: number;
  /** Fan-out: messages per second that reached every receiver. */
  readonly completedPerSec: number;
  /** Server core busy time per counted message, µs. */
  readonly cpuUsPerReq: number;
  /**
   * The server's own CPU time (its process group's user+system) per counted message, µs. Leaves
   * out the kernel's softirq work on its core, but also any other process that ran there: the
   * figure to read when a run was disturbed.
   */
  readonly procUsPerMsg: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  /** CPU time of this process (the load generator) as a share of one core. */
  readonly clientCpu: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly background: number;
  readonly others: number;
  readonly problems: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Servers

/** Scenarios a prepared server cannot run, and why (Switchyard before its chat handler exists). */
const unavailable = new Map<PeerId, Map<'echo' | 'fanout', string>>();

function switchyardConfig(port: number, withChat: boolean): string {
  // Limits generous enough that the benchmark's own traffic never trips them: no per-connection
  // rate limit (the echo client sends 100k+ messages a second); ping interval and send queue at
  // their defaults.
  return [
    '# Written by bench/ws.ts.',
    'listeners:',
    '  - name: web',
    '    protocol: http',
    `    address: 127.0.0.1:${port}`,
    '    middleware: { accessLog: false, requestId: false }',
    '    routes:',
    '      - match: { path: /echo }',
    '        handler: { type: ws-echo, websocket: { rateLimit: false } }',
    ...(withChat ? ['      - match: { path: /chat/* }', '        handler: { type: chat, websocket: { rateLimit: false } }'] : []),
    '',
  ].join('\n');
}

const switchyard: Peer = {
  id: 'switchyard',
  label: 'Switchyard',
  echo: rawEcho('/echo'),
  room: chatRoom(ROOM),
  async prepare(env, port) {
    const base = { repo: env.ctx.repoRoot, work: env.work, configName: 'switchyard.yaml', port, core: env.ctx.serverCore };
    const full = await prepareSwitchyard({ ...base, config: switchyardConfig(port, true) });
    if (full.ok) return full;
    // Without a chat handler (not built yet, or broken) the echo scenarios can still run.
    const echoOnly = await prepareSwitchyard({ ...base, config: switchyardConfig(port, false) });
    if (!echoOnly.ok) return full;
    unavailable.set('switchyard', new Map([['fanout', `the config with the chat route is rejected: ${full.reason.split('\n').slice(1).join(' ').trim().slice(0, 300)}`]]));
    return { ...echoOnly, info: `${echoOnly.info} (echo only: fan-out needs the chat handler)` };
  },
};

/** A peer script in bench/peers run with tsx: `<script> <port>`. */
function nodePeer(
  id: PeerId,
  label: string,
  script: string,
  packages: readonly string[],
  protocols: Pick<Peer, 'echo' | 'room'>,
  describe: (versions: string) => string,
  loads?: () => Promise<string | undefined>,
): Peer {
  return {
    id,
    label,
    ...protocols,
    async prepare(env, port) {
      const why = await loads?.();
      if (why) return { ok: false, reason: why };
      return prepareNodePeer({ repo: env.ctx.repoRoot, work: env.work, id, label, script, packages, describe, port, core: env.ctx.serverCore });
    },
  };
}

/**
 * uws-pack is a native addon that bench/install.sh installs (not a devDependency: see there):
 * whether it is installed and loads here decides whether its row exists.
 */
async function uwsLoads(): Promise<string | undefined> {
  try {
    const m = await import('uws-pack');
    return typeof m.App === 'function' ? undefined : 'uws-pack loaded but has no App()';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return 'uws-pack (uWebSockets.js) is not installed: run `bash bench/install.sh`';
    return `uws-pack (uWebSockets.js) does not load on node ${process.version}: ${(e as Error).message}`;
  }
}

const PEERS: readonly Peer[] = [
  switchyard,
  nodePeer('ws', 'bare ws', 'ws-server.ts', ['ws'], { echo: rawEcho('/echo'), room: rawRoom('/room') }, (v) => `${v} WebSocketServer on node:http, echo and raw broadcast`),
  nodePeer('uws', 'uWS', 'uws-server.ts', ['uws-pack'], { echo: rawEcho('/echo'), room: rawRoom('/room') }, (v) => `${v} (uWebSockets.js), echo and app.publish to one topic`, uwsLoads),
  nodePeer('socketio', 'socket.io', 'socketio-server.ts', ['socket.io'], { echo: socketIoEcho, room: socketIoRoom(ROOM) }, (v) => `${v}, websocket transport, emit back and io.to(room).emit`),
];

// ---------------------------------------------------------------------------------------------
// Measurement

/** CPU accounting around the measured window (as measureWrk does around wrk). */
class CpuWindow implements WindowHooks {
  #before: CpuSnapshot | undefined;
  #after: CpuSnapshot | undefined;
  #server0 = 0;
  #server1 = 0;
  #self0: NodeJS.CpuUsage | undefined;
  #self = 0;
  #t0 = 0;
  #wall = 0;

  constructor(private readonly serverPid: number) {}

  onStart(): void {
    this.#before = sampleCpu();
    this.#server0 = processGroupCpuSeconds(this.serverPid);
    this.#self0 = process.cpuUsage();
    this.#t0 = performance.now();
  }

  onEnd(): void {
    this.#wall = (performance.now() - this.#t0) / 1000;
    const self = process.cpuUsage(this.#self0);
    this.#self = (self.user + self.system) / 1e6;
    this.#server1 = processGroupCpuSeconds(this.serverPid);
    this.#after = sampleCpu();
  }

  result(ctx: BenchContext): { serverCore: { busySeconds: number; busyFraction: number }; serverCpu: number; clientCoreBusy: number; clientCpu: number; others: number } {
    if (!this.#before || !this.#after) throw new Error('CPU window never opened');
    const serverCpu = this.#server1 - this.#server0;
    const others = totalBusySeconds(this.#before, this.#after) - serverCpu - this.#self;
    return {
      serverCore: coreUsage(this.#before, this.#after, Number(ctx.serverCore)),
      serverCpu,
      clientCoreBusy: coreUsage(this.#before, this.#after, Number(ctx.clientCore)).busyFraction,
      clientCpu: this.#wall > 0 ? this.#self / this.#wall : 0,
      others: this.#wall > 0 ? Math.max(0, others) / this.#wall : 0,
    };
  }
}

function timing(ctx: BenchContext): LoadTiming {
  return { warmupMs: ctx.warmupSec * 1000, measureMs: ctx.durationSec * 1000, setupTimeoutMs: 10_000, stallMs: 3_000 };
}

async function measure(env: Env, server: RunningServer, peer: Peer, scenario: Scenario, run: number, background: number): Promise<Sample> {
  const { ctx } = env;
  const cpu = new CpuWindow(server.pid);
  const def = scenarioDef(scenario);
  const common = { client: def.client, port: server.spec.port, size: SIZE, timing: timing(ctx), hooks: cpu };
  let r: LoadResult;
  try {
    r =
      def.kind === 'echo'
        ? await runEcho({ ...common, protocol: peer.echo, window: ECHO_WINDOW })
        : await runFanout({ ...common, protocol: peer.room, receivers: RECEIVERS, window: FANOUT_WINDOW });
  } catch (e) {
    throw new Error(`${scenario}: ${(e as Error).message}`);
  }
  const c = cpu.result(ctx);
  const problems = [...r.problems];
  if (r.count === 0) problems.push('no messages counted');
  if (server.exitInfo) problems.push('server died during the run');
  return {
    peer: peer.id,
    scenario,
    run,
    rps: r.seconds > 0 ? r.count / r.seconds : 0,
    completedPerSec: r.seconds > 0 ? r.completed / r.seconds : 0,
    cpuUsPerReq: r.count > 0 ? (c.serverCore.busySeconds * 1e6) / r.count : Number.NaN,
    procUsPerMsg: r.count > 0 ? (c.serverCpu * 1e6) / r.count : Number.NaN,
    serverCoreBusy: c.serverCore.busyFraction,
    clientCoreBusy: c.clientCoreBusy,
    clientCpu: c.clientCpu,
    p50Ms: r.latency.quantileMs(0.5),
    p99Ms: r.latency.quantileMs(0.99),
    background,
    others: c.others,
    problems,
  };
}

function progress(s: Sample, runs: number, label: string): string {
  const fanout = scenarioDef(s.scenario).kind === 'fanout';
  const unit = fanout ? 'deliveries/s' : 'msg/s';
  return (
    `  run ${s.run}/${runs}  ${s.scenario.padEnd(9)} ${label.padEnd(10)} ${Math.round(s.rps).toLocaleString('en-US').padStart(9)} ${unit}  ` +
    (fanout ? `(${Math.round(s.completedPerSec).toLocaleString('en-US')} msg/s to all)  ` : '') +
    `${formatMicros(s.cpuUsPerReq)} µs/msg (process ${formatMicros(s.procUsPerMsg)})  server core ${formatPercent(s.serverCoreBusy)}  client core ${formatPercent(s.clientCoreBusy)} ` +
    `(load gen ${formatPercent(s.clientCpu)})  p50 ${formatMs(s.p50Ms)} ms  p99 ${formatMs(s.p99Ms)} ms  others ${formatPercent(s.others)}` +
    (s.background > NOISY ? `  (background before: ${formatPercent(s.background)})` : '') +
    (s.problems.length ? `  SUSPICIOUS: ${s.problems.join('; ')}` : '')
  );
}

// ---------------------------------------------------------------------------------------------

export async function runWs(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/ws');
  mkdirSync(work, { recursive: true });
  const env: Env = { ctx, work };

  const wanted = PEERS.filter((p) => !ctx.servers || ctx.servers.has(p.id));
  const { ready, skipped } = await prepareAll(wanted, env, new Set<number>());
  if (ready.length === 0) {
    console.error('\nNo server can run; nothing to measure.');
    return 1;
  }

  console.log(
    `\nServer core ${ctx.serverCore}; load generator (this process: the lean client of bench/lib/ws-client.ts, and node \`ws\` ` +
      `${readPackageVersion(ctx.repoRoot, 'ws')} for the second echo) on core ${ctx.clientCore}. ` +
      `Per start: (a) echo, 1 connection, ${ECHO_WINDOW} x ${SIZE}-byte messages outstanding; (b) fan-out, ${RECEIVERS} receivers + 1 sender, ` +
      `at most ${FANOUT_WINDOW} messages not yet delivered to all. Warm-up ${ctx.warmupSec}s, measured ${ctx.durationSec}s each, ` +
      `${ctx.runs} interleaved run(s), USER_HZ ${clockTicksPerSecond()}`,
  );
  console.log(`Before: ${(await backgroundLoad(ctx)).text}\n`);

  const samples: Sample[] = [];
  const failures = await interleave({
    ctx,
    ready,
    async verify(server, { peer }) {
      const room = !unavailable.get(peer.id)?.has('fanout');
      for (const client of ['lean', 'ws'] as const) {
        const bad = (await checkEcho(client, server.spec.port, peer.echo, SIZE, 10_000)) ?? (room ? await checkRoom(client, server.spec.port, peer.room, SIZE, 10_000) : undefined);
        if (bad) return `${client} client: ${bad}`;
      }
      return undefined;
    },
    async measure(server, { peer }, run, background) {
      for (const { id, kind } of SCENARIOS) {
        if (server.exitInfo) break;
        if (unavailable.get(peer.id)?.has(kind)) continue;
        const s = await measure(env, server, peer, id, run, background);
        samples.push(s);
        console.log(progress(s, ctx.runs, peer.label));
      }
    },
  });
  console.log(`after: ${(await backgroundLoad(ctx)).text}`);

  printTables(ctx, ready.map((r) => r.peer), samples, skipped);
  printFailures(failures);
  return samples.length > 0 ? 0 : 1;
}

interface Row extends RowSummary<Sample> {
  readonly peer: Peer;
  readonly scenario: Scenario;
  readonly p50Ms: number;
  readonly clientCpu: number;
  readonly completedPerSec: number;
  readonly procUs: number;
  /** (max - min) / median of the undisturbed runs' rates. */
  readonly spread: number;
}

function printTables(ctx: BenchContext, peers: readonly Peer[], samples: readonly Sample[], skipped: readonly { peer: Peer; reason: string }[]): void {
  const rows: Row[] = [];
  for (const { id: scenario } of SCENARIOS) {
    for (const peer of peers) {
      const summary = summarizeRow(
        samples.filter((s) => s.peer === peer.id && s.scenario === scenario),
        ctx.runs,
      );
      const rates = summary.used.map((s) => s.rps);
      rows.push({
        ...summary,
        peer,
        scenario,
        p50Ms: median(summary.used.map((s) => s.p50Ms)),
        clientCpu: median(summary.used.map((s) => s.clientCpu)),
        completedPerSec: median(summary.used.map((s) => s.completedPerSec)),
        procUs: median(summary.used.map((s) => s.procUsPerMsg)),
        spread: rates.length > 1 ? (Math.max(...rates) - Math.min(...rates)) / median(rates) : Number.NaN,
      });
    }
  }
  const find = (scenario: Scenario, id: PeerId) => rows.find((r) => r.scenario === scenario && r.peer.id === id);

  for (const { id: scenario, kind, client } of SCENARIOS) {
    const echo = kind === 'echo';
    const bare = find(scenario, 'ws');
    const sio = find(scenario, 'socketio');
    const columns: Column[] = [
      { title: 'Server' },
      { title: echo ? 'msg/s (median)' : 'deliveries/s (median)', align: 'right' },
      ...(echo ? [] : [{ title: 'msg/s to all 100', align: 'right' as const }]),
      { title: 'per run' },
      { title: 'spread', align: 'right' },
      { title: 'vs bare ws', align: 'right' },
      { title: 'vs socket.io', align: 'right' },
      { title: echo ? 'CPU µs/msg' : 'CPU µs/delivery', align: 'right' },
      { title: 'process µs', align: 'right' },
      { title: echo ? 'RTT p50 ms' : 'p50 ms', align: 'right' },
      { title: echo ? 'RTT p99 ms' : 'p99 ms', align: 'right' },
      { title: 'server core', align: 'right' },
      { title: 'client core', align: 'right' },
      { title: 'load gen CPU', align: 'right' },
      { title: 'notes' },
    ];
    const body = rows
      .filter((r) => r.scenario === scenario)
      .map((r) => [
        r.peer.label,
        formatRate(r.rps),
        ...(echo ? [] : [formatRate(r.completedPerSec)]),
        r.perRun,
        Number.isFinite(r.spread) ? formatPercent(r.spread) : '—',
        ratio(r.rps, bare?.rps ?? Number.NaN),
        ratio(r.rps, sio?.rps ?? Number.NaN),
        formatMicros(r.cpu),
        formatMicros(r.procUs),
        formatMs(r.p50Ms),
        formatMs(r.p99Ms),
        formatPercent(r.serverCoreBusy),
        formatPercent(r.clientCoreBusy),
        formatPercent(r.clientCpu),
        [
          ...(clientBound(r) ? ['client-bound: the rate is a lower bound'] : []),
          ...(windowBound(r) ? ['window-bound: neither core saturated, the rate is what the window allows at this latency'] : []),
          ...r.notes,
        ].join('; '),
      ]);
    console.log(
      (echo
        ? `\n## (a) Echo: 1 connection, ${ECHO_WINDOW} x ${SIZE}-byte messages outstanding`
        : `\n## (b) Fan-out: 1 sender, ${RECEIVERS} receivers in one room, at most ${FANOUT_WINDOW} messages in flight`) +
        (client === 'ws' ? ', node `ws` client\n' : ', lean client\n'),
    );
    console.log(markdownTable(columns, body));
    console.log(
      echo
        ? `\nEchoes received per second over one connection (a new message sent per echo). Bare ws and uWS echo raw frames; ` +
            `socket.io emits each "echo" event straight back (no ack), ${SIZE} bytes inside its \`42["echo","..."]\` envelope; ` +
            'Switchyard runs its `ws-echo` handler. "CPU µs/msg": server core busy time per echo; "process µs": the server process\'s own CPU time per echo (no softirq, no other processes). RTT: send to echo, in the client.'
        : `\nDeliveries: messages received by the ${RECEIVERS} receivers per second, all together ("msg/s to all": messages that reached every ` +
            `receiver). A message counts as delivered once all ${RECEIVERS} have it; the sender keeps at most ${FANOUT_WINDOW} undelivered. Every ` +
            'server also sends each message back to the sender (Switchyard\'s chat does so as confirmation; the others were set up to match), ' +
            'so each message costs the server 101 sends. "CPU µs/delivery" and "process µs" as for echo, per delivery. ' +
            'Latency: receipt minus send time, per delivery, one clock (same process). ' +
            'Bare ws forwards the raw payload to every client; uWS publishes it to one topic; socket.io uses io.to(room).emit ' +
            '(`42["m","..."]`). Switchyard\'s chat wraps it in its JSON envelope (`{"type":"message","room","seq","ts","nick","text"}`, ' +
            `about ${SIZE + 80} bytes) and keeps a room sequence number and history: more work than the bare floor does.`,
    );
  }
  console.log(
    `\nServer on core ${ctx.serverCore}, load generator on core ${ctx.clientCore}; median of ${ctx.runs} interleaved run(s), each server started ` +
      'fresh per run. "spread": (max - min) / median over the runs used. "client core" is core ' +
      `${ctx.clientCore} busy (the load generator and the kernel's work there); "load gen CPU" is this process alone. A row with ` +
      `the client core at ${formatPercent(CLIENT_BOUND)} or more and the server core below that is client-bound (the server had ` +
      `time to spare); with both saturated the server ran at its capacity; with both below ${formatPercent(WINDOW_BOUND)} the window ` +
      'of outstanding messages and the round-trip time set the rate (window-bound). Medians are over the undisturbed runs (see notes).',
  );
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning}`);
  for (const s of skipped) console.log(`\nNot measured: ${s.peer.label}: ${s.reason}`);
  for (const [id, m] of unavailable) for (const [kind, why] of m) console.log(`\nNot measured: ${id} ${kind}: ${why}`);

  console.log('\n### Targets: Switchyard vs the peers\n');
  for (const t of TARGETS) {
    const sy = find(t.scenario, 'switchyard');
    const peer = find(t.scenario, t.peer);
    const def = scenarioDef(t.scenario);
    const label = `- (${def.kind === 'echo' ? 'a' : 'b'}) ${def.kind}, ${def.client === 'ws' ? 'node `ws`' : 'lean'} client: >= ${t.target.toFixed(1)}x ${peer?.peer.label ?? t.peer}:`;
    if (!sy || !peer || !Number.isFinite(sy.rps) || !Number.isFinite(peer.rps) || peer.rps <= 0) {
      console.log(`${label} n/a (${!sy || !Number.isFinite(sy.rps) ? 'Switchyard' : t.peer} not measured)`);
      continue;
    }
    const r = sy.rps / peer.rps;
    const flags =
      (sy.used.some((s) => s.problems.length > 0) || peer.used.some((s) => s.problems.length > 0) ? ' (SUSPICIOUS row, see notes)' : '') +
      (sy.used.some(isDisturbed) || peer.used.some(isDisturbed) ? ' (DISTURBED, see notes)' : '') +
      (clientBound(peer) ? ` (${peer.peer.label} was client-bound: its rate is a lower bound)` : '') +
      (clientBound(sy) ? ' (Switchyard was client-bound: its rate is a lower bound)' : '');
    const cpu = Number.isFinite(sy.cpu) && Number.isFinite(peer.cpu) && peer.cpu > 0 ? `; CPU per message ${(sy.cpu / peer.cpu).toFixed(2)}x ${peer.peer.label}'s` : '';
    console.log(`${label} ${r.toFixed(2)}x ${r >= t.target ? 'met' : 'not met'}${flags}${cpu}`);
  }
}
