import { globMatch } from './glob.ts';

// Channels and patterns to subscribers. A subscriber is anything that can take a message; the
// connection (connection.ts) encodes it as RESP2 array or RESP3 push and applies its backlog
// limit.

export interface Subscriber {
  /** A message on `channel`; `pattern` is set when it came through PSUBSCRIBE. */
  deliver(channel: Buffer, message: Buffer, pattern?: string): void;
}

export class PubSubHub {
  private readonly channels = new Map<string, Set<Subscriber>>();
  private readonly patterns = new Map<string, Set<Subscriber>>();

  subscribe(channel: string, s: Subscriber): void {
    add(this.channels, channel, s);
  }

  unsubscribe(channel: string, s: Subscriber): void {
    remove(this.channels, channel, s);
  }

  psubscribe(pattern: string, s: Subscriber): void {
    add(this.patterns, pattern, s);
  }

  punsubscribe(pattern: string, s: Subscriber): void {
    remove(this.patterns, pattern, s);
  }

  /** Delivers to every subscriber of the channel and of every matching pattern; returns how many got it. */
  publish(channel: Buffer, message: Buffer): number {
    const name = channel.toString('latin1');
    let n = 0;
    const direct = this.channels.get(name);
    if (direct) {
      for (const s of [...direct]) {
        s.deliver(channel, message);
        n++;
      }
    }
    for (const [pattern, subs] of [...this.patterns]) {
      if (!globMatch(pattern, name)) continue;
      for (const s of [...subs]) {
        s.deliver(channel, message, pattern);
        n++;
      }
    }
    return n;
  }

  /** Channels with at least one subscriber, optionally matching a glob. */
  channelNames(pattern?: string): string[] {
    const out: string[] = [];
    for (const c of this.channels.keys()) if (pattern === undefined || globMatch(pattern, c)) out.push(c);
    return out;
  }

  subscriberCount(channel: string): number {
    return this.channels.get(channel)?.size ?? 0;
  }

  get patternCount(): number {
    return this.patterns.size;
  }
}

function add(map: Map<string, Set<Subscriber>>, name: string, s: Subscriber): void {
  let set = map.get(name);
  if (!set) map.set(name, (set = new Set()));
  set.add(s);
}

function remove(map: Map<string, Set<Subscriber>>, name: string, s: Subscriber): void {
  const set = map.get(name);
  if (!set) return;
  set.delete(s);
  if (set.size === 0) map.delete(name);
}
