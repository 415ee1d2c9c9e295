import { timingSafeEqual, createHash } from 'node:crypto';
import type { Connection } from '../connection.ts';
import { globMatch } from '../glob.ts';
import { NOT_INTEGER, SYNTAX, WRONGPASS, arityError, command, str, unknownSubcommand, word, type Command } from './types.ts';

// Connection and server commands: PING, HELLO, AUTH, CLIENT, COMMAND, INFO, CONFIG GET and the
// database-wide ones. Clients send several of these on connect (redis-cli: COMMAND DOCS;
// ioredis: INFO for its ready check, CLIENT SETINFO), so their replies follow Redis's shapes.

/** The Redis version we answer as: clients pick features by it (RESP3 and HELLO came with 6). */
export const REDIS_VERSION = '7.2.0';

const ping = command({
  name: 'ping', arity: -1, flags: ['pubsub', 'fast'],
  run(c, args) {
    if (args.length > 2) return c.out.error(arityError('ping'));
    if (!c.resp3 && c.subscriptions > 0) {
      // Subscribed RESP2 clients get PING as a message-shaped array.
      c.out.array(2);
      c.out.bulk('pong');
      c.out.bulk(args[1] ?? '');
      return;
    }
    if (args.length === 2) c.out.bulk(args[1]);
    else c.out.simple('PONG');
  },
});

const echo = command({ name: 'echo', arity: 2, flags: ['fast'], run: (c, args) => c.out.bulk(args[1]) });

const select = command({
  name: 'select', arity: 2, flags: ['fast'],
  run(c, args) {
    if (!/^-?\d+$/.test(str(args[1]))) return c.out.error(NOT_INTEGER);
    if (Number(str(args[1])) !== 0) return c.out.error('ERR DB index is out of range');
    c.out.ok();
  },
});

const quit = command({
  name: 'quit', arity: -1, flags: ['noauth', 'pubsub', 'fast'],
  run(c) {
    c.out.ok();
    c.quit();
  },
});

const reset = command({
  name: 'reset', arity: 1, flags: ['noauth', 'pubsub', 'fast'],
  run(c) {
    c.dispose();
    c.out.resp3 = false;
    c.name = '';
    c.authenticated = c.service.config.password === undefined;
    c.out.simple('RESET');
  },
});

/** Whether `given` is the configured password (compared in constant time). */
function passwordMatches(c: Connection, user: string, given: Buffer): boolean {
  const want = c.service.config.password;
  if (want === undefined || user !== 'default') return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(want).digest();
  return timingSafeEqual(a, b);
}

const auth = command({
  name: 'auth', arity: -2, flags: ['noauth', 'fast'],
  run(c, args) {
    if (args.length > 3) return c.out.error(SYNTAX);
    if (c.service.config.password === undefined) {
      return c.out.error('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
    }
    const user = args.length === 3 ? str(args[1]) : 'default';
    if (!passwordMatches(c, user, args[args.length - 1])) {
      c.authenticated = false;
      return c.out.error(WRONGPASS);
    }
    c.authenticated = true;
    c.out.ok();
  },
});

function helloReply(c: Connection): void {
  const out = c.out;
  out.map(7);
  out.bulk('server');
  out.bulk('redis');
  out.bulk('version');
  out.bulk(REDIS_VERSION);
  out.bulk('proto');
  out.int(c.resp3 ? 3 : 2);
  out.bulk('id');
  out.int(c.id);
  out.bulk('mode');
  out.bulk('standalone');
  out.bulk('role');
  out.bulk('master');
  out.bulk('modules');
  out.array(0);
}

const hello = command({
  name: 'hello', arity: -1, flags: ['noauth', 'fast'],
  run(c, args) {
    let proto: number | undefined;
    let i = 1;
    if (args.length > 1) {
      const p = str(args[1]);
      if (!/^\d+$/.test(p)) return c.out.error('ERR Protocol version is not an integer or out of range');
      proto = Number(p);
      if (proto !== 2 && proto !== 3) return c.out.error('NOPROTO unsupported protocol version');
      i = 2;
    }
    let setName: string | undefined;
    for (; i < args.length; i++) {
      const opt = word(args[i]);
      if (opt === 'auth' && i + 2 < args.length) {
        if (c.service.config.password === undefined || !passwordMatches(c, str(args[i + 1]), args[i + 2])) {
          return c.out.error(c.service.config.password === undefined ? 'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?' : WRONGPASS);
        }
        c.authenticated = true;
        i += 2;
      } else if (opt === 'setname' && i + 1 < args.length) {
        setName = str(args[++i]);
        if (/[\s]/.test(setName)) return c.out.error('ERR Client names cannot contain spaces, newlines or special characters.');
      } else return c.out.error(`ERR Syntax error in HELLO option '${str(args[i])}'`);
    }
    if (!c.authenticated) return c.out.error('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time');
    if (proto !== undefined) c.out.resp3 = proto === 3;
    if (setName !== undefined) c.name = setName;
    helloReply(c);
  },
});

function clientInfo(c: Connection): string {
  const addr = c.socket.remoteAddress ? `${c.socket.remoteAddress}:${c.socket.remotePort}` : '/unix';
  const age = Math.floor((Date.now() - c.createdAt) / 1000);
  return `id=${c.id} addr=${addr} name=${c.name} age=${age} db=0 sub=${c.channels.size} psub=${c.patterns.size} resp=${c.resp3 ? 3 : 2} cmd=${c.lastCommand}\n`;
}

const client = command({
  name: 'client', arity: -2, flags: [],
  run(c, args) {
    const sub = word(args[1]);
    const need = (n: number) => {
      if (args.length === n) return true;
      c.out.error(arityError(`client|${sub}`));
      return false;
    };
    switch (sub) {
      case 'setname': {
        if (!need(3)) return;
        const name = str(args[2]);
        if (/[^!-~]/.test(name)) return c.out.error('ERR Client names cannot contain spaces, newlines or special characters.');
        c.name = name;
        return c.out.ok();
      }
      case 'getname':
        if (!need(2)) return;
        return c.name ? c.out.bulk(c.name) : c.out.nil();
      case 'id':
        if (!need(2)) return;
        return c.out.int(c.id);
      case 'info':
        if (!need(2)) return;
        return c.out.bulk(clientInfo(c));
      case 'list': {
        let text = '';
        for (const other of c.service.clients) text += clientInfo(other);
        return c.out.bulk(text);
      }
      case 'setinfo':
        // Client libraries announce their name and version; accepted and not kept.
        if (!need(4)) return;
        return c.out.ok();
      default:
        return c.out.error(unknownSubcommand(args[1], 'client'));
    }
  },
});

function commandInfo(c: Connection, cmd: Command): void {
  c.out.array(6);
  c.out.bulk(cmd.name);
  c.out.int(cmd.arity);
  c.out.set(cmd.flags.length);
  for (const f of cmd.flags) c.out.simple(f);
  c.out.int(cmd.firstKey);
  c.out.int(cmd.lastKey);
  c.out.int(cmd.keyStep);
}

/** COMMAND needs the table it is in: the registry (commands/index.ts) passes it. */
export function commandCommand(table: ReadonlyMap<string, Command>): Command {
  return command({
    name: 'command', arity: -1, flags: [],
    run(c, args) {
      if (args.length === 1) {
        c.out.array(table.size);
        for (const cmd of table.values()) commandInfo(c, cmd);
        return;
      }
      const sub = word(args[1]);
      switch (sub) {
        case 'count':
          return c.out.int(table.size);
        case 'info': {
          const names = args.length > 2 ? args.slice(2).map(word) : [...table.keys()];
          c.out.array(names.length);
          for (const n of names) {
            const cmd = table.get(n);
            if (cmd) commandInfo(c, cmd);
            else c.out.nilArray();
          }
          return;
        }
        case 'docs':
          // Documentation is not served: an empty map is what Redis gives for unknown names.
          return c.out.map(0);
        case 'list': {
          const names = [...table.keys()];
          c.out.array(names.length);
          for (const n of names) c.out.bulk(n);
          return;
        }
        default:
          return c.out.error(unknownSubcommand(args[1], 'command'));
      }
    },
  });
}

function human(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v}B` : `${v.toFixed(2)}${units[i]}`;
}

function infoText(c: Connection, wanted: Set<string>): string {
  const s = c.service;
  const all = wanted.size === 0 || wanted.has('all') || wanted.has('everything') || wanted.has('default');
  const want = (name: string) => all || wanted.has(name);
  const sections: string[] = [];
  if (want('server')) {
    sections.push(
      ['# Server', `redis_version:${REDIS_VERSION}`, 'redis_mode:standalone', `server_name:switchyard`, `process_id:${process.pid}`,
        `uptime_in_seconds:${Math.floor((Date.now() - s.startedAt) / 1000)}`, `node_version:${process.version}`].join('\r\n'),
    );
  }
  if (want('clients')) {
    sections.push(['# Clients', `connected_clients:${s.clients.size}`, `maxclients:${s.config.maxClients}`, 'blocked_clients:0'].join('\r\n'));
  }
  if (want('memory')) {
    const used = s.store.usedMemory;
    sections.push(
      ['# Memory', `used_memory:${used}`, `used_memory_human:${human(used)}`, `used_memory_rss:${process.memoryUsage.rss()}`,
        `maxmemory:${s.config.maxmemory}`, `maxmemory_human:${human(s.config.maxmemory)}`, `maxmemory_policy:${s.config.maxmemoryPolicy}`].join('\r\n'),
    );
  }
  if (want('persistence')) {
    sections.push(['# Persistence', 'loading:0', `rdb_changes_since_last_save:${s.store.dirty}`, `rdb_last_save_time:${Math.floor(s.lastSave / 1000)}`].join('\r\n'));
  }
  if (want('stats')) {
    const st = s.store.stats;
    sections.push(
      ['# Stats', `total_connections_received:${s.connectionsReceived}`, `total_commands_processed:${s.commandsProcessed}`,
        `rejected_connections:${s.rejectedConnections}`, `expired_keys:${st.expiredKeys}`, `evicted_keys:${st.evictedKeys}`,
        `keyspace_hits:${st.hits}`, `keyspace_misses:${st.misses}`, `pubsub_patterns:${s.pubsub.patternCount}`].join('\r\n'),
    );
  }
  if (want('keyspace')) {
    const lines = ['# Keyspace'];
    if (s.store.size > 0) lines.push(`db0:keys=${s.store.size},expires=${s.store.expiresCount},avg_ttl=0`);
    sections.push(lines.join('\r\n'));
  }
  return sections.join('\r\n\r\n') + '\r\n';
}

const info = command({
  name: 'info', arity: -1, flags: [],
  run(c, args) {
    c.out.bulk(infoText(c, new Set(args.slice(1).map(word))));
  },
});

const dbsize = command({ name: 'dbsize', arity: 1, flags: ['readonly', 'fast'], run: (c) => c.out.int(c.service.store.size) });

function flush(name: string): Command {
  return command({
    name, arity: -1, flags: ['write'],
    run(c, args) {
      if (args.length > 2 || (args.length === 2 && !['sync', 'async'].includes(word(args[1])))) return c.out.error(SYNTAX);
      c.service.store.clear();
      c.out.ok();
    },
  });
}

const time = command({
  name: 'time', arity: 1, flags: ['fast'],
  run(c) {
    const us = BigInt(Date.now()) * 1000n;
    c.out.array(2);
    c.out.bulk(String(us / 1_000_000n));
    c.out.bulk(String(us % 1_000_000n));
  },
});

/** CONFIG GET answers with what this cache has (benchmarks and clients ask for save/appendonly). */
const config = command({
  name: 'config', arity: -2, flags: ['admin'],
  run(c, args) {
    const sub = word(args[1]);
    if (sub !== 'get') return c.out.error(unknownSubcommand(args[1], 'config'));
    if (args.length < 3) return c.out.error(arityError('config|get'));
    const cfg = c.service.config;
    const params: Record<string, string> = {
      maxmemory: String(cfg.maxmemory),
      'maxmemory-policy': cfg.maxmemoryPolicy,
      'maxmemory-samples': String(cfg.maxmemorySamples),
      maxclients: String(cfg.maxClients),
      databases: '1',
      save: cfg.snapshot ? `${Math.ceil(cfg.snapshot.interval / 1000)} 1` : '',
      appendonly: 'no',
      'proto-max-bulk-len': String(cfg.maxBulkSize),
    };
    const hits = new Map<string, string>();
    for (let i = 2; i < args.length; i++) {
      const p = word(args[i]);
      for (const [k, v] of Object.entries(params)) if (globMatch(p, k)) hits.set(k, v);
    }
    c.out.map(hits.size);
    for (const [k, v] of hits) {
      c.out.bulk(k);
      c.out.bulk(v);
    }
  },
});

const bgsave = command({
  name: 'bgsave', arity: -1, flags: ['admin'],
  run(c) {
    if (!c.service.canSave) return c.out.error('ERR no snapshot file is configured for this cache (snapshot.file)');
    // Failures are logged by the snapshot writer; LASTSAVE tells a client when it succeeded.
    c.service.save().catch(() => {});
    c.out.simple('Background saving started');
  },
});

const lastsave = command({ name: 'lastsave', arity: 1, flags: ['fast'], run: (c) => c.out.int(Math.floor(c.service.lastSave / 1000)) });

export const SERVER_COMMANDS: Command[] = [ping, echo, select, quit, reset, auth, hello, client, info, dbsize, flush('flushdb'), flush('flushall'), time, config, bgsave, lastsave];
