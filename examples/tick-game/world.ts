import type { Logger } from 'pino';
import { FixedTicker, type TickStats } from './ticker.ts';
import { step, type Rules, type Vec } from './sim.ts';
import type { Input } from './protocol.ts';

// The authoritative game: players, their queued inputs, the tick that applies them and the
// snapshots it sends. One world may be reached through several listeners (WebSocket on an http
// listener, datagrams on a udp one); each player is behind a Transport that hides which.
//
// Snapshots are deltas against the last one a player acknowledged: the world keeps its state of
// the last `history` ticks (one copy for everybody, since everybody sees the same world), so a
// player's delta is "what differs between tick A and now". A player that acknowledged nothing
// yet, or something older than the history, gets a full snapshot. Players on the same baseline
// (most of them, at steady state) share one encoded body.

export interface WorldSettings extends Rules {
  /** Players at once; joins past this are refused. */
  readonly maxPlayers: number;
  /** Inputs waiting per player; more are dropped. */
  readonly maxQueuedInputs: number;
  /** Ticks of state kept as delta baselines; an older acknowledgement gets a full snapshot. */
  readonly history: number;
  /** A UDP player heard from for this long (ms) is removed. */
  readonly udpIdle: number;
}

export interface Transport {
  readonly kind: 'ws' | 'udp';
  /** One message: a snapshot comes as a Buffer of ASCII JSON (a WebSocket sends it as text). */
  send(data: string | Buffer): void;
  /** Ends the player's connection with this reason (the world has already removed the player). */
  kick(reason: string): void;
}

/** Inputs a player may have applied beyond one per tick, to catch up after a late packet. */
const MAX_CREDIT = 3;

export class Player {
  pos: Vec;
  readonly queue: Input[] = [];
  /** Highest seq queued (later duplicates, as UDP clients resend, are ignored). */
  lastQueuedSeq = 0;
  /** Highest seq applied: what the client may drop from its replay list. */
  lastProcessedSeq = 0;
  /** Last snapshot tick the client says it holds (0: none). */
  ackTick = 0;
  credit = 1;
  /** Start (Date.now()) of the second whose inputs `received` counts. */
  windowStart = 0;
  received = 0;
  lastHeard = Date.now();

  constructor(
    readonly id: string,
    readonly transport: Transport,
    start: Vec,
  ) {
    this.pos = start;
  }
}

export interface WorldStats extends TickStats {
  readonly players: number;
  readonly fullSnapshots: number;
  readonly deltaSnapshots: number;
  readonly droppedInputs: number;
  readonly kicked: number;
}

type State = Map<string, Vec>;

export class World {
  private readonly players = new Map<string, Player>();
  private readonly history = new Map<number, State>();
  private readonly ticker: FixedTicker;
  private nextId = 0;
  private fullSnapshots = 0;
  private deltaSnapshots = 0;
  private droppedInputs = 0;
  private kicked = 0;

  constructor(
    readonly name: string,
    readonly settings: WorldSettings,
    private readonly log: Logger,
  ) {
    this.ticker = new FixedTicker(1000 / settings.tickRate, (n) => this.tick(n), Math.max(64, settings.tickRate * 30));
  }

  /** New inputs a player may send within a second before it is kicked. */
  private get floodLimit(): number {
    return 2 * this.settings.tickRate + this.settings.maxQueuedInputs;
  }

  get size(): number {
    return this.players.size;
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
    for (const p of [...this.players.values()]) this.remove(p, 'server shutting down');
  }

  /** A player, or undefined when the world is full. */
  join(transport: Transport): Player | undefined {
    if (this.players.size >= this.settings.maxPlayers) return undefined;
    const id = `p${++this.nextId}`;
    const { width, height } = this.settings;
    const player = new Player(id, transport, { x: Math.round(width * (0.2 + 0.6 * Math.random())), y: Math.round(height * (0.2 + 0.6 * Math.random())) });
    this.players.set(id, player);
    this.welcome(player);
    return player;
  }

  /** Tells a player who it is and the rules its prediction needs (again, when a UDP join is repeated). */
  welcome(player: Player): void {
    const s = this.settings;
    player.transport.send(JSON.stringify({ t: 'w', id: player.id, tickRate: s.tickRate, speed: s.speed, width: s.width, height: s.height, history: s.history }));
  }

  leave(player: Player): void {
    this.players.delete(player.id);
  }

  /** Queues a player's inputs in seq order; an ack moves its baseline forward. */
  receive(player: Player, ack: number, inputs: readonly Input[]): void {
    player.lastHeard = Date.now();
    if (ack > player.ackTick && ack <= this.ticker.currentTick) player.ackTick = ack;
    const now = player.lastHeard;
    if (now - player.windowStart >= 1000) {
      player.windowStart = now;
      player.received = 0;
    }
    for (const input of inputs) {
      if (input.seq <= player.lastQueuedSeq) continue;
      // A client sends one input a tick; a burst after a stall may double that, a flood is more.
      // Counted on arrival, so a server falling behind never takes its players for flooders.
      if (++player.received > this.floodLimit) {
        this.remove(player, 'input flood');
        return;
      }
      if (player.queue.length >= this.settings.maxQueuedInputs) {
        this.droppedInputs++;
        player.lastQueuedSeq = input.seq;
        continue;
      }
      player.lastQueuedSeq = input.seq;
      player.queue.push(input);
    }
  }

  stats(sinceTick = 0): WorldStats {
    return {
      ...this.ticker.stats(sinceTick),
      players: this.players.size,
      fullSnapshots: this.fullSnapshots,
      deltaSnapshots: this.deltaSnapshots,
      droppedInputs: this.droppedInputs,
      kicked: this.kicked,
    };
  }

  private remove(player: Player, reason: string): void {
    if (!this.players.delete(player.id)) return;
    if (reason !== 'server shutting down') {
      this.kicked++;
      this.log.info({ world: this.name, player: player.id, reason }, 'tick-game: player removed');
    }
    player.transport.kick(reason);
  }

  private tick(n: number): void {
    const s = this.settings;
    const idleBefore = Date.now() - s.udpIdle;
    const state: State = new Map();
    for (const p of this.players.values()) {
      if (p.transport.kind === 'udp' && p.lastHeard < idleBefore) {
        this.remove(p, 'idle');
        continue;
      }
      // One input per tick on average, a few more to catch up: sending faster does not move faster.
      p.credit = Math.min(MAX_CREDIT, p.credit + 1);
      while (p.credit >= 1 && p.queue.length > 0) {
        const input = p.queue.shift() as Input;
        p.pos = step(p.pos, input.dx, input.dy, s);
        p.lastProcessedSeq = input.seq;
        p.credit--;
      }
      state.set(p.id, p.pos);
    }
    this.history.set(n, state);
    this.history.delete(n - s.history - 1);
    const bodies = new Map<number, Buffer>();
    for (const p of this.players.values()) {
      const base = p.ackTick > 0 && n - p.ackTick <= s.history && this.history.has(p.ackTick) ? p.ackTick : 0;
      let body = bodies.get(base);
      if (body === undefined) {
        body = this.encode(n, base, state);
        bodies.set(base, body);
      }
      if (base === 0) this.fullSnapshots++;
      else this.deltaSnapshots++;
      // The body is shared; only the ack differs, so each player's message is a copy plus a few digits.
      const ack = `${p.lastProcessedSeq}}`;
      const message = Buffer.allocUnsafe(body.length + ack.length);
      body.copy(message, 0);
      message.write(ack, body.length, 'latin1');
      p.transport.send(message);
    }
  }

  /** A snapshot body up to its `ack` value: what changed since tick `base` (everything when 0). */
  private encode(n: number, base: number, state: State): Buffer {
    const baseline = base === 0 ? undefined : this.history.get(base);
    const changed: string[] = [];
    for (const [id, v] of state) {
      const b = baseline?.get(id);
      if (b && b.x === v.x && b.y === v.y) continue;
      changed.push(`["${id}",${v.x},${v.y}]`);
    }
    const gone: string[] = [];
    if (baseline) for (const id of baseline.keys()) if (!state.has(id)) gone.push(`"${id}"`);
    return Buffer.from(`{"t":"s","tick":${n},"base":${base},"p":[${changed.join(',')}],"g":[${gone.join(',')}],"ack":`, 'latin1');
  }
}

// Worlds by name, shared by the handlers that name them (one per listener), alive while any
// handler holds them.
const worlds = new Map<string, { world: World; holders: number }>();

/** The world of that name, started with these settings if it is not running yet. */
export function acquireWorld(name: string, settings: WorldSettings, log: Logger): World {
  const held = worlds.get(name);
  if (held) {
    if (JSON.stringify(held.world.settings) !== JSON.stringify(settings)) {
      throw new Error(`world "${name}" already runs with other settings (${JSON.stringify(held.world.settings)}); give every handler of one world the same settings`);
    }
    held.holders++;
    return held.world;
  }
  const world = new World(name, settings, log);
  worlds.set(name, { world, holders: 1 });
  world.start();
  return world;
}

export function releaseWorld(world: World): void {
  const held = worlds.get(world.name);
  if (!held || held.world !== world) return;
  if (--held.holders > 0) return;
  worlds.delete(world.name);
  world.stop();
}
