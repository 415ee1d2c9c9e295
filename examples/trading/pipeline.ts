import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { shmSegmentName } from '../../src/ipc/index.ts';
import { shmUnlink } from '../../src/sys/shm.ts';
import { Control, type KillSource } from './control.ts';
import type { GatewayStats } from './gateway.ts';
import { nowNs } from './message.ts';
import type { TradingOptions } from './options.ts';
import type { RiskKill } from './risk.ts';
import type { Role, RunnerCommand, StageReport, StageSpec, StageStats } from './stage.ts';

// Starts the four stages as processes, wired feed -> strategy -> risk -> gateway by three shm
// ring channels, and follows them: their reports, the kill switch, the end. Owns the control
// block and removes every segment when the run is over, whatever happened to the stages.

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const stageScript = fileURLToPath(new URL(`./stage${ext}`, import.meta.url));

/** The order stages start in: each makes its input before the one upstream opens it as output. */
export const ROLES: Role[] = ['gateway', 'risk', 'strategy', 'feed'];
/** How long every stage gets to start and attach (tsx compiles on first start). */
const READY_TIMEOUT_MS = 60_000;

function nodeArgs(): string[] {
  const args = [...process.execArgv];
  if (ext === '.ts' && !args.some((a) => a.includes('tsx'))) args.unshift('--import', import.meta.resolve('tsx'));
  return args;
}

export interface KillReport {
  source: KillSource;
  /** Seconds after the start. */
  atSeconds: number;
  risk?: RiskKill;
  gateway?: { sent: number };
}

export interface PipelineEvents {
  stats(role: Role, stats: StageStats): void;
  /** The gateway's once-a-second report. */
  gateway(stats: GatewayStats & { role: 'gateway' }): void;
  /** The switch was seen tripped (`what`: 'tripped'), then each of risk and the gateway said where it stopped. */
  killed(report: KillReport, what: 'tripped' | 'risk' | 'gateway'): void;
}

export interface Summary {
  seconds: number;
  ended: string;
  quotes: number;
  orders: number;
  passed: number;
  sent: number;
  held: number;
  rejected: Record<string, number>;
  maxAbsPosition: number;
  maxPosition: number;
  kill?: KillReport;
  latency: GatewayStats['total'];
  hops: GatewayStats['hops'];
  /** Every order accounted for: orders = sent + held + rejected (all reasons). */
  balanced: boolean;
}

export class Pipeline {
  private readonly children = new Map<Role, ChildProcess>();
  private readonly closed = new Map<ChildProcess, Promise<void>>();
  private readonly finals = new Map<Role, StageStats>();
  private readonly control: Control;
  private readonly controlName: string;
  private readonly channels: StageSpec['channels'];
  private startNs = 0n;
  private killReport: KillReport | undefined;
  private failure: string | undefined;
  private cleaned = false;

  constructor(
    private readonly o: TradingOptions,
    private readonly events: PipelineEvents,
  ) {
    const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
    this.channels = { quotes: `trading-${id}-quotes`, orders: `trading-${id}-orders`, checked: `trading-${id}-checked` };
    this.controlName = `/switchyard-trading-${id}-control`;
    this.control = Control.create(this.controlName);
  }

  get pids(): Record<Role, number | undefined> {
    return Object.fromEntries(ROLES.map((r) => [r, this.children.get(r)?.pid])) as Record<Role, number | undefined>;
  }

  /** Starts every stage and waits until all are attached; then the feed is told to go. */
  async start(): Promise<void> {
    const ready = new Set<Role>();
    let readyAll!: () => void;
    let failStart!: (e: Error) => void;
    const allReady = new Promise<void>((resolve, reject) => ((readyAll = resolve), (failStart = reject)));
    for (const role of ROLES) {
      const spec: StageSpec = { role, channels: this.channels, control: this.controlName, options: this.o };
      const child = fork(stageScript, [JSON.stringify(spec)], { execArgv: nodeArgs(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      this.children.set(role, child);
      this.closed.set(child, new Promise<void>((resolve) => child.once('close', () => resolve())));
      child.on('message', (m: StageReport) => {
        if (m.t === 'ready') {
          ready.add(m.role);
          if (ready.size === ROLES.length) readyAll();
        } else this.onReport(m);
      });
      child.once('exit', (code, signal) => {
        if (code !== 0 && !this.failure) {
          this.failure = `the ${role} stage exited with ${signal ?? `code ${code}`}`;
          failStart(new Error(this.failure));
          this.abort(); // the others would only find out when their ring fills or drains
        }
      });
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([allReady, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the stages did not start within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS)))]);
    } finally {
      clearTimeout(timer);
    }
    this.startNs = nowNs();
    const go: RunnerCommand = { t: 'go' };
    for (const c of this.children.values()) c.send(go);
  }

  /** Trips the kill switch (once); later calls change nothing. */
  kill(source: KillSource): boolean {
    const tripped = this.control.kill(source, nowNs());
    if (tripped) this.noteKill();
    return tripped;
  }

  /** Asks the feed to stop; the pipeline drains and ends. */
  stop(): void {
    this.control.stop();
  }

  /** Ends every stage at once (a second Ctrl-C, or a failure). */
  abort(): void {
    for (const c of this.children.values()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }

  /** Waits for every stage to exit; the summary, or an error saying which stage failed. */
  async finished(limitMs: number): Promise<Summary> {
    // 'close', not 'exit': 'exit' may come before the last IPC messages (the final reports) are read.
    const exits = [...this.children.values()].map((c) => this.closed.get(c)!);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([Promise.all(exits).then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), limitMs)))]);
    clearTimeout(timer);
    if (timedOut) {
      this.abort();
      this.failure ??= `the pipeline did not finish within ${Math.round(limitMs / 1000)} s`;
    }
    this.cleanup();
    if (this.failure) throw new Error(this.failure);
    return this.summary();
  }

  /** Removes every segment of the run (idempotent; also after a failed start). */
  cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    // The stages remove their own segments when they end cleanly; after a crash nobody did.
    for (const name of Object.values(this.channels)) {
      try {
        shmUnlink(shmSegmentName(name));
      } catch {
        // already gone
      }
    }
    this.control.close();
  }

  private onReport(m: Exclude<StageReport, { t: 'ready' }>): void {
    if (m.t === 'killed') {
      this.noteKill();
      if (m.role === 'risk') this.killReport!.risk = m.kill;
      else this.killReport!.gateway = m.kill;
      this.events.killed(this.killReport!, m.role);
      return;
    }
    if (m.final) this.finals.set(m.role, m.stats);
    this.events.stats(m.role, m.stats);
    if (!m.final && m.stats.role === 'gateway') this.events.gateway(m.stats);
  }

  private noteKill(): void {
    if (this.killReport) return;
    const at = this.control.killTime;
    this.killReport = { source: this.control.killSource, atSeconds: this.startNs ? Number(at - this.startNs) / 1e9 : 0 };
    this.events.killed(this.killReport, 'tripped');
  }

  private summary(): Summary {
    const feed = this.finals.get('feed') as Extract<StageStats, { role: 'feed' }>;
    const strategy = this.finals.get('strategy') as Extract<StageStats, { role: 'strategy' }>;
    const risk = this.finals.get('risk') as Extract<StageStats, { role: 'risk' }>;
    const gateway = this.finals.get('gateway') as Extract<StageStats, { role: 'gateway' }>;
    if (!feed || !strategy || !risk || !gateway) throw new Error('a stage ended without its final report');
    const rejectedTotal = Object.values(risk.rejected).reduce((a, b) => a + b, 0);
    return {
      seconds: Number(nowNs() - this.startNs) / 1e9,
      ended: feed.ended ?? 'stop',
      quotes: feed.sent,
      orders: strategy.orders,
      passed: risk.passed,
      sent: gateway.sent,
      held: gateway.held,
      rejected: risk.rejected,
      maxAbsPosition: gateway.maxAbsPosition,
      maxPosition: this.o.maxPosition,
      kill: this.killReport,
      latency: gateway.total,
      hops: gateway.hops,
      balanced: strategy.orders === risk.seen && risk.seen === risk.passed + rejectedTotal && risk.passed === gateway.received && gateway.received === gateway.sent + gateway.held && strategy.quotes === feed.sent,
    };
  }
}
