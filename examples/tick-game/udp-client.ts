// A native client over UDP, in the same protocol as the page: joins, sends one input a tick
// (repeating its unacknowledged ones, since datagrams get lost), acknowledges snapshots and
// keeps the world state by applying deltas to the snapshot they name.
//   node --import tsx examples/tick-game/udp-client.ts [host:port] [seconds]
// It walks right, then down, and prints its position as the server says it is.
import { createSocket, type Socket } from 'node:dgram';
import { pathToFileURL } from 'node:url';

export interface UdpGameClientEvents {
  onWelcome?(id: string): void;
  onSnapshot?(snap: { tick: number; base: number; ack: number; bytes: number; players: Map<string, { x: number; y: number }> }): void;
  onKick?(reason: string): void;
}

interface Welcome {
  id: string;
  tickRate: number;
  history: number;
}

/** Inputs repeated in each datagram: enough to ride out a few lost ones. */
const REDUNDANCY = 4;

export class UdpGameClient {
  readonly socket: Socket;
  id: string | undefined;
  tickRate = 30;
  private seq = 0;
  private pending: [number, number, number][] = [];
  private lastTick = 0;
  private readonly states = new Map<number, Map<string, { x: number; y: number }>>();
  private historyKeep = 64;
  private joinTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly events: UdpGameClientEvents = {},
  ) {
    this.socket = createSocket('udp4');
    this.socket.on('message', (data) => this.receive(data));
  }

  /** Sends join until the welcome comes (at most `tries` times). */
  join(tries = 20): void {
    let left = tries;
    const send = () => {
      if (this.id !== undefined || left-- <= 0) return;
      this.raw({ t: 'join' });
      this.joinTimer = setTimeout(send, 250);
    };
    send();
  }

  /** One input for one tick. */
  input(dx: number, dy: number): void {
    this.pending.push([++this.seq, dx, dy]);
    if (this.pending.length > 64) this.pending.shift();
    this.raw({ t: 'i', ack: this.lastTick, in: this.pending.slice(-REDUNDANCY) });
  }

  /** Says bye (when joined) and closes the socket once that datagram is out. */
  close(): Promise<void> {
    clearTimeout(this.joinTimer);
    return new Promise((resolve) => {
      const done = () => this.socket.close(() => resolve());
      if (this.id !== undefined) this.raw({ t: 'bye' }, done);
      else done();
    });
  }

  private raw(msg: unknown, sent?: () => void): void {
    this.socket.send(JSON.stringify(msg), this.port, this.host, sent);
  }

  private receive(data: Buffer): void {
    const msg = JSON.parse(data.toString('utf8')) as { t: string } & Record<string, unknown>;
    if (msg.t === 'w') {
      const w = msg as unknown as Welcome;
      this.id = w.id;
      this.tickRate = w.tickRate;
      this.historyKeep = w.history;
      this.events.onWelcome?.(w.id);
    } else if (msg.t === 'k') {
      this.events.onKick?.(String(msg.m));
    } else if (msg.t === 's') {
      const s = msg as unknown as { tick: number; base: number; ack: number; p: [string, number, number][]; g: string[] };
      if (s.tick <= this.lastTick) return; // late or repeated
      const base = s.base === 0 ? new Map() : this.states.get(s.base);
      if (!base) return; // a baseline this client no longer has: the server sends a full one once the ack is too old
      const state = new Map(base);
      for (const [id, x, y] of s.p) state.set(id, { x, y });
      for (const id of s.g) state.delete(id);
      this.states.set(s.tick, state);
      this.states.delete(s.tick - this.historyKeep - 1);
      this.lastTick = s.tick;
      this.pending = this.pending.filter(([seq]) => seq > s.ack);
      this.events.onSnapshot?.({ tick: s.tick, base: s.base, ack: s.ack, bytes: data.length, players: state });
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [host, port] = (process.argv[2] ?? '127.0.0.1:8091').split(':');
  const seconds = Number(process.argv[3] ?? 3);
  let last = '';
  const client = new UdpGameClient(host, Number(port), {
    onWelcome: (id) => console.log(`joined as ${id}`),
    onKick: (reason) => {
      console.log(`kicked: ${reason}`);
      process.exit(1);
    },
    onSnapshot: ({ tick, players, ack }) => {
      const me = client.id ? players.get(client.id) : undefined;
      if (me) last = `tick ${tick}: at (${me.x}, ${me.y}), inputs applied up to #${ack}, ${players.size} players`;
    },
  });
  client.join();
  const started = Date.now();
  const timer = setInterval(() => {
    const t = (Date.now() - started) / 1000;
    if (t > seconds) {
      clearInterval(timer);
      console.log(last || 'no snapshot received: is the server running?');
      void client.close();
      return;
    }
    if (client.id) client.input(t < seconds / 2 ? 1 : 0, t < seconds / 2 ? 0 : 1);
    if (last && Math.round(t * client.tickRate) % client.tickRate === 0) console.log(last);
  }, 1000 / client.tickRate);
}
