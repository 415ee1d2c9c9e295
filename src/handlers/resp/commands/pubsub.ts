import type { Connection } from '../connection.ts';
import { command, str, unknownSubcommand, word, type Command } from './types.ts';

// Pub/sub. On RESP2 a connection with subscriptions may only (un)subscribe, PING and QUIT
// (connection.ts enforces it); on RESP3 messages arrive as pushes between ordinary replies.

function confirm(c: Connection, kind: string, name: string | undefined): void {
  c.out.push(3);
  c.out.bulk(kind);
  if (name === undefined) c.out.nil();
  else c.out.key(name);
  c.out.int(c.subscriptions);
}

/** Channels (by name) and patterns (glob): the same four steps on each, with its own set and hub calls. */
interface SubscriptionKind {
  readonly subscribe: string;
  readonly unsubscribe: string;
  names(c: Connection): Set<string>;
  join(c: Connection, name: string): void;
  leave(c: Connection, name: string): void;
}

const CHANNELS: SubscriptionKind = {
  subscribe: 'subscribe',
  unsubscribe: 'unsubscribe',
  names: (c) => c.channels,
  join: (c, name) => c.service.pubsub.subscribe(name, c),
  leave: (c, name) => c.service.pubsub.unsubscribe(name, c),
};

const PATTERNS: SubscriptionKind = {
  subscribe: 'psubscribe',
  unsubscribe: 'punsubscribe',
  names: (c) => c.patterns,
  join: (c, name) => c.service.pubsub.psubscribe(name, c),
  leave: (c, name) => c.service.pubsub.punsubscribe(name, c),
};

function subscribeCommand(kind: SubscriptionKind): Command {
  return command({
    name: kind.subscribe, arity: -2, flags: ['pubsub', 'fast'],
    run(c, args) {
      for (let i = 1; i < args.length; i++) {
        const name = str(args[i]);
        kind.names(c).add(name);
        kind.join(c, name);
        confirm(c, kind.subscribe, name);
      }
    },
  });
}

/** Without arguments: every name the connection holds; with none held, one confirmation naming none. */
function unsubscribeCommand(kind: SubscriptionKind): Command {
  return command({
    name: kind.unsubscribe, arity: -1, flags: ['pubsub', 'fast'],
    run(c, args) {
      const held = kind.names(c);
      const names = args.length > 1 ? args.slice(1).map(str) : [...held];
      if (names.length === 0) return confirm(c, kind.unsubscribe, undefined);
      for (const name of names) {
        held.delete(name);
        kind.leave(c, name);
        confirm(c, kind.unsubscribe, name);
      }
    },
  });
}

const publish = command({
  name: 'publish', arity: 3, flags: ['fast'],
  run(c, args) {
    // Subscribers keep the message past this read buffer's life: copy it once for all of them.
    c.out.int(c.service.pubsub.publish(Buffer.from(args[1]), Buffer.from(args[2])));
  },
});

const pubsubIntrospection = command({
  name: 'pubsub', arity: -2, flags: [],
  run(c, args) {
    const sub = word(args[1]);
    const hub = c.service.pubsub;
    if (sub === 'channels' && args.length <= 3) {
      const names = hub.channelNames(args[2] ? str(args[2]) : undefined);
      c.out.array(names.length);
      for (const n of names) c.out.key(n);
    } else if (sub === 'numsub') {
      c.out.map(args.length - 2);
      for (let i = 2; i < args.length; i++) {
        c.out.bulk(args[i]);
        c.out.int(hub.subscriberCount(str(args[i])));
      }
    } else if (sub === 'numpat' && args.length === 2) c.out.int(hub.patternCount);
    else c.out.error(unknownSubcommand(args[1], 'pubsub'));
  },
});

export const PUBSUB_COMMANDS: Command[] = [
  subscribeCommand(CHANNELS),
  subscribeCommand(PATTERNS),
  unsubscribeCommand(CHANNELS),
  unsubscribeCommand(PATTERNS),
  publish,
  pubsubIntrospection,
];
