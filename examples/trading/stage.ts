// One stage of the pipeline as its own process, started by start.ts with fork():
//   node --import tsx examples/trading/stage.ts '<StageSpec as JSON>'
// It makes its input channel (the creator side of a shm segment), opens its output channel (made
// by the next stage), says ready, and then runs its work in synchronous slices of STEP_MS: it
// blocks in the ring's zero-copy calls while messages flow, and between slices lets the event
// loop run (reports to the runner, the runner's "go"). Every second it reports its counters.
// It ends cleanly when its input's writer closes and everything was read (the feed: when it is
// done), closing its output in turn, so the end travels down the pipeline behind the last message.
import { IpcError, createShmChannel, openShmChannel, type RingChannel, type RingView, type ShmChannel } from '../../src/ipc/index.ts';
import { Control } from './control.ts';
import { Feed } from './feed.ts';
import { Gateway, type GatewayStats } from './gateway.ts';
import { MESSAGE_BYTES } from './message.ts';
import type { TradingOptions } from './options.ts';
import { Risk, type RiskKill } from './risk.ts';
import { Strategy } from './strategy.ts';

export type Role = 'feed' | 'strategy' | 'risk' | 'gateway';

export interface StageSpec {
  role: Role;
  /** Channel names (shm, without the /switchyard- prefix): feed->strategy, strategy->risk, risk->gateway. */
  channels: { quotes: string; orders: string; checked: string };
  /** The control block's POSIX shm name. */
  control: string;
  options: TradingOptions;
}

/** What a stage tells the runner (Node's IPC channel of fork()). */
export type StageReport =
  | { t: 'ready'; role: Role }
  | { t: 'stats'; role: Role; final: boolean; stats: StageStats }
  | { t: 'killed'; role: 'risk'; kill: RiskKill }
  | { t: 'killed'; role: 'gateway'; kill: { sent: number } };

export type StageStats =
  | { role: 'feed'; sent: number; ended?: string }
  | { role: 'strategy'; quotes: number; orders: number }
  | { role: 'risk'; seen: number; passed: number; rejected: Record<string, number>; maxAbsPosition: number }
  | ({ role: 'gateway' } & GatewayStats);

/** What the runner tells a stage. */
export type RunnerCommand = { t: 'go' };

const STEP_MS = 50;
const REPORT_MS = 1000;
const OPEN_TIMEOUT_MS = 30_000;

/** Reports to the runner; a runner that is gone is not waited for. */
const send = (m: StageReport): Promise<void> =>
  new Promise((resolve) => (process.send && process.connected ? process.send(m, () => resolve()) : resolve()));
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function channelOptions(o: TradingOptions) {
  return { syncSpinMicros: o.spinMicros, syncSpinMaxMicros: o.spinMaxMicros, mode: 'futex' as const };
}

function createInput(name: string, o: TradingOptions): ShmChannel {
  return createShmChannel(name, { capacity: o.ringBytes, maxMessageSize: MESSAGE_BYTES, ...channelOptions(o) });
}

/** Opens the channel the next stage makes, waiting for it to exist (stages start in any order). */
async function openOutput(name: string, o: TradingOptions): Promise<ShmChannel> {
  const deadline = Date.now() + OPEN_TIMEOUT_MS;
  for (;;) {
    try {
      return openShmChannel(name, channelOptions(o));
    } catch (err) {
      const waiting = err instanceof IpcError && (err.code === 'SWITCHYARD_IPC_PEER_GONE' || err.code === 'SWITCHYARD_IPC_PROTOCOL');
      if (!waiting || Date.now() > deadline) throw err;
      await sleep(10);
    }
  }
}

/** Reads and handles messages for up to `budgetMs`; false at the clean end of the input. */
function consume(input: RingChannel, budgetMs: number, handle: (v: RingView) => void): boolean {
  const end = performance.now() + budgetMs;
  for (;;) {
    const left = end - performance.now();
    if (left <= 0) return true;
    let v;
    try {
      v = input.receiveViewSync(left);
    } catch (err) {
      if (err instanceof IpcError && err.code === 'SWITCHYARD_IPC_TIMEOUT') return true;
      throw err;
    }
    if (v === undefined) return false;
    try {
      handle(v);
    } finally {
      v.release();
    }
  }
}

async function main(spec: StageSpec): Promise<void> {
  const o = spec.options;
  // Ctrl-C in a terminal reaches the whole process group: the runner decides, through STOP.
  process.on('SIGINT', () => undefined);
  const control = Control.open(spec.control);
  let controlOpen = true;
  // The runner never disconnects first: a disconnect before our own end means it died (killed,
  // crashed) and cannot stop the run. Stop it from here, so the feed ends and every stage drains,
  // closes and removes its segments instead of running on unwatched; and remove the control
  // block's name, as the runner would have (harmless when another stage already did).
  process.on('disconnect', () => {
    if (!controlOpen) return;
    control.stop();
    control.unlink();
  });
  let input: ShmChannel | undefined;
  let output: ShmChannel | undefined;
  let pump: (budgetMs: number) => boolean;
  let stats: () => StageStats;
  let reportKill = (): void => undefined;
  /** True while the stage has nothing to do until the runner says go (the feed before "go"). */
  let idle = (): boolean => false;
  switch (spec.role) {
    case 'gateway': {
      input = createInput(spec.channels.checked, o);
      const g = new Gateway(control, o.instruments);
      pump = (ms) => consume(input!, ms, (v) => g.handle(v));
      stats = () => ({ role: 'gateway', ...g.stats() });
      let told = false;
      reportKill = () => {
        // Seen here too when no order arrives after the switch: the report must not wait for one.
        if (control.killed) g.kill ??= { sent: g.sent };
        if (g.kill && !told) {
          told = true;
          void send({ t: 'killed', role: 'gateway', kill: g.kill });
        }
      };
      break;
    }
    case 'risk': {
      input = createInput(spec.channels.orders, o);
      output = await openOutput(spec.channels.checked, o);
      const r = new Risk(output, control, o);
      pump = (ms) => consume(input!, ms, (v) => r.handle(v));
      stats = () => ({ role: 'risk', ...r.stats() });
      let told = false;
      reportKill = () => {
        if (control.killed) r.kill ??= { seen: r.seen, passed: r.passed };
        if (r.kill && !told) {
          told = true;
          void send({ t: 'killed', role: 'risk', kill: r.kill });
        }
      };
      break;
    }
    case 'strategy': {
      input = createInput(spec.channels.quotes, o);
      output = await openOutput(spec.channels.orders, o);
      const s = new Strategy(output, o.instruments);
      pump = (ms) => consume(input!, ms, (v) => s.handle(v));
      stats = () => ({ role: 'strategy', ...s.stats() });
      break;
    }
    case 'feed': {
      output = await openOutput(spec.channels.quotes, o);
      const f = new Feed(output, control, o);
      process.on('message', (m: RunnerCommand) => {
        if (m.t === 'go' && !f.started) f.start();
      });
      pump = (ms) => f.pump(ms);
      stats = () => ({ role: 'feed', ...f.stats() });
      idle = () => !f.started;
      break;
    }
  }
  // Reports are counted from the runner's "go", so every stage's second ends at about the same time.
  let nextReport = Infinity;
  process.on('message', (m: RunnerCommand) => {
    if (m.t === 'go' && nextReport === Infinity) nextReport = performance.now() + REPORT_MS;
  });
  await send({ t: 'ready', role: spec.role });
  for (;;) {
    const more = pump(STEP_MS);
    reportKill();
    if (!more) break;
    if (performance.now() >= nextReport) {
      nextReport += REPORT_MS;
      void send({ t: 'stats', role: spec.role, final: false, stats: stats() });
    }
    if (idle()) await sleep(5);
    else await tick();
  }
  // Close the output first: the next stage then drains what is left and ends too.
  await output?.close();
  await send({ t: 'stats', role: spec.role, final: true, stats: stats() });
  await input?.close();
  controlOpen = false;
  control.close();
  if (process.connected) process.disconnect();
}

main(JSON.parse(process.argv[2] ?? '{}') as StageSpec).catch((err: unknown) => {
  process.stderr.write(`trading ${(JSON.parse(process.argv[2] ?? '{}') as Partial<StageSpec>).role ?? 'stage'}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
