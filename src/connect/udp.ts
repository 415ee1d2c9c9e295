import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { InterfaceError, isMulticastAddress, resolveInterface } from '../config/multicast-address.ts';
import { ConnectError, ConnectionLostError, ConnectUsageError, describeNetError } from './errors.ts';

// A connected UDP socket: datagrams go to one peer and only that peer's datagrams come back.
// Connecting also lets the kernel report an ICMP "port unreachable" as ECONNREFUSED on a later
// send or receive, so "nothing listens there" is an error rather than silence.
//
// Broadcast and multicast datagrams are answered by hosts other than the one they were sent to,
// so there the socket is not connected and takes datagrams from anyone. A multicast client also
// joins the group on a second socket bound to the group's port, to read what other members send
// to it (its own datagrams, looped back, are left out).

export interface UdpClientOptions {
  /** Each datagram received from the peer. */
  onMessage(data: Buffer): void;
  /** An error after the socket was set up (ECONNREFUSED when the peer's port is closed). */
  onError?(err: ConnectionLostError): void;
  /** Something the user should know that is not an error (a multicast client that cannot read the group). */
  onNotice?(text: string): void;
  /** SO_BROADCAST: the target may be a broadcast address (255.255.255.255, a subnet's). */
  broadcast?: boolean;
  /** The target is this multicast group: send to it and join it. */
  multicast?: MulticastClientOptions;
}

export interface MulticastClientOptions {
  /** Hops a datagram may make (IP_MULTICAST_TTL); 1 keeps it on the local network. */
  ttl: number;
  /** An address of this host or an interface name to join on and send through; default: by route. */
  interface?: string;
  /** Whether members on this host get our datagrams too (IP_MULTICAST_LOOP). */
  loopback: boolean;
}

export interface UdpClient {
  readonly socket: Socket;
  /** Sends one datagram; resolves when the kernel took it. */
  send(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export async function openUdp(target: { host: string; port: number }, options: UdpClientOptions): Promise<UdpClient> {
  const href = `udp://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  let address = target.host;
  let family = isIP(address);
  if (family === 0) {
    try {
      ({ address, family } = await lookup(target.host));
    } catch (err) {
      throw new ConnectError(href, describeNetError(err), { cause: err });
    }
  }
  if (options.multicast && !isMulticastAddress(address)) {
    throw new ConnectUsageError(`--multicast: ${target.host} is not a multicast group (IPv4 224.0.0.0 to 239.255.255.255, IPv6 ff00::/8)`);
  }
  if (!options.multicast && isMulticastAddress(address)) {
    throw new ConnectUsageError(`${href} is a multicast group: add --multicast to send to it and read the members' replies`);
  }
  if (options.multicast || options.broadcast) return openUnconnected(href, { address, family: family === 6 ? 6 : 4, port: target.port }, options);
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => reject(new ConnectError(href, describeUdpError(err), { cause: err }));
    socket.once('error', fail);
    // A refused connect (EACCES for a broadcast address) comes to the callback, not as 'error'.
    const done: (err?: Error) => void = (err) => (err ? fail(err) : resolve());
    socket.connect(target.port, address, done as () => void);
  });
  socket.removeAllListeners('error');
  socket.on('error', (err) => options.onError?.(new ConnectionLostError(href, describeNetError(err), { cause: err })));
  socket.on('message', (msg) => options.onMessage(msg));
  let closed = false;
  return {
    socket,
    send(data) {
      return new Promise((resolve, reject) =>
        socket.send(data, (err) => (err ? reject(new ConnectionLostError(href, describeUdpError(err), { cause: err })) : resolve())),
      );
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolve) => socket.close(() => resolve()));
    },
  };
}

/** EACCES on a udp socket is the kernel refusing a broadcast address without SO_BROADCAST. */
function describeUdpError(err: unknown, broadcast = false): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if ((code === 'EACCES' || code === 'EPERM') && !broadcast) return 'permission denied (a broadcast address? add --broadcast)';
  return describeNetError(err);
}

function bindSocket(socket: Socket, href: string, where: { address?: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new ConnectError(href, describeNetError(err), { cause: err }));
    socket.once('error', onError);
    socket.bind(where, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

/**
 * The addresses of this host, to tell our own looped-back datagrams from other members'. The
 * wildcard ones too: a datagram looped back before a source address was chosen carries 0.0.0.0.
 */
function localAddresses(): Set<string> {
  const all = Object.values(networkInterfaces())
    .flatMap((a) => a ?? [])
    .map((a) => a.address.toLowerCase());
  return new Set([...all, '0.0.0.0', '::']);
}

async function openUnconnected(href: string, target: { address: string; family: 4 | 6; port: number }, options: UdpClientOptions): Promise<UdpClient> {
  const type = target.family === 6 ? 'udp6' : 'udp4';
  const mc = options.multicast;
  let iface: string | undefined;
  if (mc?.interface !== undefined) {
    try {
      iface = resolveInterface(mc.interface, target.family);
    } catch (err) {
      if (err instanceof InterfaceError) throw new ConnectUsageError(`--interface ${mc.interface}: ${err.reason}`);
      throw err;
    }
  }
  const socket = createSocket(type);
  const sockets: Socket[] = [socket];
  const closeAll = () => Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve())).catch(() => undefined)));
  try {
    await bindSocket(socket, href, { port: 0 });
    if (options.broadcast) socket.setBroadcast(true);
    if (mc) {
      socket.setMulticastTTL(mc.ttl);
      socket.setMulticastLoopback(mc.loopback);
      if (iface !== undefined) socket.setMulticastInterface(iface);
      // The group's port, shared with the other members on this host (the daemons among them).
      const member = createSocket({ type, reuseAddr: true });
      sockets.push(member);
      try {
        await bindSocket(member, href, { address: target.address, port: target.port });
      } catch (err) {
        if ((err as ConnectError).cause === undefined || ((err as ConnectError).cause as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        // A receiver on this host holds the port without SO_REUSEADDR: members' replies still
        // come back to the sending socket; only their datagrams to the group cannot be read.
        sockets.pop();
        await new Promise<void>((resolve) => member.close(() => resolve()));
        options.onNotice?.(`port ${target.port} is held on this host by a receiver that does not share it (no reuseAddr): replies are printed, datagrams other members send to the group are not`);
      }
      if (sockets.includes(member)) {
        try {
          member.addMembership(target.address, iface);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          throw new ConnectError(href, `cannot join the group: ${describeNetError(err)}${code === 'ENODEV' || code === 'EADDRNOTAVAIL' ? ' (no route to it: give --interface, or add one, e.g. ip route add 224.0.0.0/4 dev eth0)' : ''}`, { cause: err });
        }
      }
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  const ownPort = socket.address().port;
  const own = localAddresses();
  for (const s of sockets) {
    s.on('error', (err) => options.onError?.(new ConnectionLostError(href, describeUdpError(err, options.broadcast), { cause: err })));
    s.on('message', (msg, from) => {
      if (from.port === ownPort && own.has(from.address.toLowerCase())) return;
      options.onMessage(msg);
    });
  }
  let closed = false;
  return {
    socket,
    send(data) {
      return new Promise((resolve, reject) =>
        socket.send(data, target.port, target.address, (err) =>
          err ? reject(new ConnectionLostError(href, describeUdpError(err, options.broadcast), { cause: err })) : resolve(),
        ),
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      await closeAll();
    },
  };
}
