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

const subscribe = command({
  name: 'subscribe', arity: -2, flags: ['pubsub', 'fast'],
  run(c, args) {
    for (let i = 1; i < args.length; i++) {
      const ch = str(args[i]);
      c.channels.add(ch);
      c.service.pubsub.subscribe(ch, c);
      confirm(c, 'subscribe', ch);
    }
  },
});

const psubscribe = command({
  name: 'psubscribe', arity: -2, flags: ['pubsub', 'fast'],
  run(c, args) {
    for (let i = 1; i < args.length; i++) {
      const p = str(args[i]);
      c.patterns.add(p);
      c.service.pubsub.psubscribe(p, c);
      confirm(c, 'psubscribe', p);
    }
  },
});

const unsubscribe = command({
  name: 'unsubscribe', arity: -1, flags: ['pubsub', 'fast'],
  run(c, args) {
    const names = args.length > 1 ? args.slice(1).map(str) : [...c.channels];
    if (names.length === 0) return confirm(c, 'unsubscribe', undefined);
    for (const ch of names) {
      c.channels.delete(ch);
      c.service.pubsub.unsubscribe(ch, c);
      confirm(c, 'unsubscribe', ch);
    }
  },
});

const punsubscribe = command({
  name: 'punsubscribe', arity: -1, flags: ['pubsub', 'fast'],
  run(c, args) {
    const names = args.length > 1 ? args.slice(1).map(str) : [...c.patterns];
    if (names.length === 0) return confirm(c, 'punsubscribe', undefined);
    for (const p of names) {
      c.patterns.delete(p);
      c.service.pubsub.punsubscribe(p, c);
      confirm(c, 'punsubscribe', p);
    }
  },
});

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

export const PUBSUB_COMMANDS: Command[] = [subscribe, psubscribe, unsubscribe, punsubscribe, publish, pubsubIntrospection];
