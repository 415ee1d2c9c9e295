import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { pickPort, startServer } from './lib/proc.ts';
import { markdownTable } from './lib/table.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- tick-game`: how many players one core's tick-game world serves at 30 Hz.
// The server (examples/tick-game/start.ts) runs alone on the server core; the simulated players
// are `ws` clients in this process, on the client core. Players are added in steps; at each step
// the world's own tick stats (GET /game/stats, samples of the measured window only) give the tick
// duration and how late ticks started. It stops at the first step whose p99 tick duration is over
// half the period: past that, a slower tick or a GC pause makes ticks late.
//
// Each bot sends one input a tick (acknowledging the last snapshot it got), walking in a random
// direction for a second and standing still the next, so about half the world moves at any time
// and deltas carry about half the players.

export const TICK_GAME_IDS = ['switchyard'] as const;

const TICK_RATE = 30;
const PERIOD_MS = 1000 / TICK_RATE;
const STEPS_QUICK = [25, 50, 100, 200, 300, 400, 500, 600, 800];
const STEPS = [25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1600];
/** Connections opened at once while adding players. */
const CONNECT_BATCH = 25;

interface Stats {
  tick: number;
  samples: number;
  skipped: number;
  players: number;
  durationP50Ms: number;
  durationP99Ms: number;
  jitterP50Ms: number;
  jitterP99Ms: number;
}

class Bot {
  readonly ws: WebSocket;
  private lastTick = 0;
  private seq = 0;
  private dx = 0;
  private dy = 0;
  snapshots = 0;
  ready: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.on('error', () => {});
    this.ready = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('message', (data: Buffer) => {
      // Only the tick is needed (for the ack): read it without parsing the whole snapshot.
      if (data[6] !== 0x73) return; // {"t":"s"
      const at = data.indexOf('"tick":') + 7;
      let n = 0;
      for (let i = at; i < data.length && data[i] >= 0x30 && data[i] <= 0x39; i++) n = n * 10 + data[i] - 0x30;
      this.lastTick = n;
      this.snapshots++;
    });
  }

  /** One input: a second walking one way, a second standing still. */
  input(second: number): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.seq % TICK_RATE === 0) {
      const walking = second % 2 === 0;
      const a = Math.random() * 2 * Math.PI;
      this.dx = walking ? Math.round(Math.cos(a) * 100) / 100 : 0;
      this.dy = walking ? Math.round(Math.sin(a) * 100) / 100 : 0;
    }
    this.ws.send(`{"t":"i","ack":${this.lastTick},"in":[[${++this.seq},${this.dx},${this.dy}]]}`);
  }
}

async function stats(port: number, since = 0): Promise<Stats> {
  const res = await fetch(`http://127.0.0.1:${port}/game/stats?since=${since}`, { signal: AbortSignal.timeout(5_000) });
  return (await res.json()) as Stats;
}

export async function runTickGame(ctx: BenchContext): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-tick-game-'));
  const port = await pickPort();
  const configFile = join(dir, 'tick-game.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      logging: { level: 'warn' },
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: `127.0.0.1:${port}`,
          routes: [{ match: { path: '/game/*' }, handler: { type: 'tick-game', world: 'bench', tickRate: TICK_RATE, maxPlayers: 100_000, websocket: { maxConnections: 100_000 } } }],
        },
      ],
    }),
  );
  const server = await startServer({
    name: 'tick-game',
    command: 'taskset',
    args: ['-c', ctx.serverCore, process.execPath, '--import', 'tsx', join(ctx.repoRoot, 'examples/tick-game/start.ts'), configFile],
    cwd: ctx.repoRoot,
    logFile: join(dir, 'server.log'),
    port,
    startTimeoutMs: 30_000,
  });
  const quick = ctx.runs === 1 && ctx.durationSec <= 2;
  const steps = quick ? STEPS_QUICK : STEPS;
  const bots: Bot[] = [];
  const started = Date.now();
  const driver = setInterval(() => {
    const second = Math.floor((Date.now() - started) / 1000);
    for (const b of bots) b.input(second);
  }, PERIOD_MS);
  const rows: string[][] = [];
  let maxPlayers = 0;
  let stoppedBy = `the last step (${steps.at(-1)} players) was still under the limit`;
  console.log(`tick-game at ${TICK_RATE} Hz (period ${PERIOD_MS.toFixed(1)} ms), server on core ${ctx.serverCore}, players (ws clients) on core ${ctx.clientCore}; ${ctx.durationSec}s measured per step after ${ctx.warmupSec}s\n`);
  try {
    for (const target of steps) {
      while (bots.length < target) {
        const batch = Array.from({ length: Math.min(CONNECT_BATCH, target - bots.length) }, () => new Bot(`ws://127.0.0.1:${port}/game/ws`));
        bots.push(...batch);
        await Promise.race([Promise.all(batch.map((b) => b.ready)), sleep(10_000).then(() => Promise.reject(new Error('players did not connect within 10s')))]);
      }
      // The first step also waits for the server's own start-up (compiling, first GCs) to pass.
      await sleep((target === steps[0] ? Math.max(3, ctx.warmupSec) : ctx.warmupSec) * 1000);
      const before = await stats(port);
      const received0 = bots.reduce((n, b) => n + b.snapshots, 0);
      await sleep(ctx.durationSec * 1000);
      const after = await stats(port, before.tick);
      const received = bots.reduce((n, b) => n + b.snapshots, 0) - received0;
      const expected = bots.length * (after.tick - before.tick);
      const ok = after.durationP99Ms <= PERIOD_MS / 2;
      rows.push([
        String(after.players),
        after.durationP50Ms.toFixed(2),
        after.durationP99Ms.toFixed(2),
        after.jitterP99Ms.toFixed(2),
        String(after.skipped - before.skipped),
        expected > 0 ? `${((100 * received) / expected).toFixed(1)}%` : '-',
        ok ? 'yes' : 'no',
      ]);
      if (!ok) {
        stoppedBy = `p99 tick duration ${after.durationP99Ms.toFixed(2)} ms > ${(PERIOD_MS / 2).toFixed(1)} ms at ${after.players} players`;
        break;
      }
      maxPlayers = after.players;
      if (server.exitInfo) throw new Error(`the server stopped: ${server.logTail()}`);
    }
  } finally {
    clearInterval(driver);
    for (const b of bots) b.ws.terminate();
    await server.stop();
  }
  console.log(
    markdownTable(
      [
        { title: 'players', align: 'right' },
        { title: 'tick p50 ms', align: 'right' },
        { title: 'tick p99 ms', align: 'right' },
        { title: 'jitter p99 ms', align: 'right' },
        { title: 'ticks skipped', align: 'right' },
        { title: 'snapshots received', align: 'right' },
        { title: 'p99 ≤ ½ period', align: 'right' },
      ],
      rows,
    ),
  );
  console.log(`\nmax players per core at ${TICK_RATE} Hz with p99 tick ≤ ${(PERIOD_MS / 2).toFixed(1)} ms: ${maxPlayers} (stopped: ${stoppedBy})`);
  console.log('"snapshots received" under 100% means the clients (one core) fell behind: the server is then not the limit being measured.');
  return 0;
}
