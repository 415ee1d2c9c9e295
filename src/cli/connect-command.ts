import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDuration, parseSize } from '../config/unit-text.ts';
import { DEFAULT_CLIENT_MAX_FRAME } from '../connect/frame.ts';
import { parseConnectUrl, type ConnectUrl } from '../connect/url.ts';
import type { ConnectOptions } from './connect.ts';

// `switchyard connect URL` on the command line: its options and how each is read. The client
// itself (connect.ts, and every protocol under src/connect/) loads only when the command runs.

function durationArg(v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined) throw new InvalidArgumentError('expected a duration like 1s, 500ms or 2m');
  return ms;
}

function sizeArg(v: string): number {
  const n = parseSize(v);
  if (n === undefined || n > 0xffff_ffff) throw new InvalidArgumentError('expected a size like 16MiB or 65536 (at most 4 GiB - 1)');
  return n;
}

function ttlArg(v: string): number {
  const n = Number(v);
  if (!/^\d{1,3}$/.test(v) || n > 255) throw new InvalidArgumentError('expected a hop count from 0 to 255');
  return n;
}

function urlArg(v: string): ConnectUrl {
  try {
    return parseConnectUrl(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** Adds `connect` to the program (so it inherits the program's exit and output settings). */
export function addConnectCommand(program: Command): void {
  program
    .command('connect')
    .description('talk to a server by hand or from a script: tcp, tls, quic, udp, unix, ws(s), frame+tcp/unix, http(s), grpc(s) (docs/connect.md)')
    .argument('<url>', 'tcp://host:port, tls://host:port, quic://host:port, udp://host:port, unix:/path, unix:@name, ws(s)://host[:port]/path, frame+tcp://host:port, frame+unix:/path, http(s)://host[:port]/path, grpc(s)://host:port/package.Service/Method', urlArg)
    .addOption(new Option('--wait <duration>', 'after stdin ends, how long to wait for replies since the last message (udp, ws, frames) or byte (tcp, unix)').argParser(durationArg).default(1000, '1s'))
    .addOption(new Option('--connect-timeout <duration>', 'give up connecting (TCP, TLS, WebSocket handshake) after this long').argParser(durationArg).default(10_000, '10s'))
    .option('--raw', 'print binary messages (ws, udp, frames) as they are instead of <binary N bytes>')
    .addOption(new Option('--max-frame-size <size>', 'frames: largest frame accepted from the server').argParser(sizeArg).default(DEFAULT_CLIENT_MAX_FRAME, '16MiB'))
    .option('-X, --method <method>', 'http: request method (default GET, or POST with a body)')
    .option('-d, --data <string>', 'http: request body (content-type application/x-www-form-urlencoded unless -H sets one); grpc: the request as JSON (several, one per line, for client streaming; default: stdin)')
    .option('--json <string>', 'http: JSON request body (content-type and accept application/json)')
    .option('--data-file <path>', 'http: stream this file as the request body')
    .option('-H, --header <header>', 'http, ws: extra request header "Name: value"; grpc: request metadata (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--origin <origin>', 'ws: the Origin header of the handshake')
    .option('--http3', 'https: send the request over HTTP/3 (QUIC on UDP, the same port) instead of TCP')
    .option('--insecure', 'https, wss, tls, quic, grpcs: do not verify the server\'s certificate')
    .option('--ca <file>', 'https, wss, tls, quic, grpcs: trust the CA certificate(s) in this PEM file')
    .option('--servername <name>', 'tls, quic: SNI and the name the certificate is verified against (default: the URL\'s host)')
    .option('--alpn <protocols>', 'tls, quic: ALPN protocols to offer, comma-separated (e.g. h2,http/1.1; quic default: echo)')
    .option('--proto <file>', 'grpc: the .proto file that defines the service (repeatable; default: the built-in Greeter and Health)', (v: string, prev: string[]) => [...prev, v], [])
    .addOption(new Option('--deadline <duration>', 'grpc: the call\'s deadline (sent as grpc-timeout); none by default').argParser(durationArg))
    .option('--broadcast', 'udp: allow sending to a broadcast address (SO_BROADCAST); replies are taken from any host')
    .option('--multicast [group]', 'udp: the URL\'s host is a multicast group: send to it and join it, printing replies and what other members send to its port (docs/multicast.md)')
    .addOption(new Option('--ttl <hops>', 'udp --multicast: hops a datagram may make (default 1: the local network)').argParser(ttlArg))
    .option('--interface <address|name>', 'udp --multicast: the local address or interface to join on and send through (default: by route)')
    .option('--loopback', 'udp --multicast: members on this host get our datagrams too (the default)')
    .option('--no-loopback', 'udp --multicast: they do not')
    .action(async (url: ConnectUrl, opts: ConnectOptions) => {
      const { connectCommand } = await import('./connect.ts');
      await connectCommand(url, opts);
    });
}
