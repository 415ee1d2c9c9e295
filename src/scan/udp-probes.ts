import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { randomBytes } from 'node:crypto';
import { sanitizeRemoteText } from './sanitize.ts';
import { isLocalShortage, unreachableReason, type ProbeOutcome } from './states.ts';
import { LocalShortageError } from './tcp-connect.ts';

// UDP has no handshake, so a port only shows itself by answering. A datagram a service
// understands gets the best chance of an answer: a DNS query (53), an NTP client request (123),
// an SNMP get of sysDescr with community `public` (161); every other port gets an empty
// datagram, as nmap sends. States as nmap's -sU: a reply is open; an ICMP port unreachable
// (ECONNREFUSED on a connected socket) is closed; other unreachables are filtered; silence after
// every try is open|filtered (a firewall dropping it and a service ignoring it look the same).

export interface UdpProbeResult extends ProbeOutcome {
  /** What the reply said, summarised and sanitised (open ports only). */
  reply?: string;
}

/** The largest reply read; a datagram is one read, this only bounds what is kept of it. */
const REPLY_KEEP = 512;

function tlv(tag: number, body: Buffer): Buffer {
  if (body.length > 127) throw new Error('the probe builder handles short BER lengths only');
  return Buffer.concat([Buffer.from([tag, body.length]), body]);
}

/** DNS: `version.bind TXT CH`, which a resolver or authoritative server answers (often REFUSED: still an answer). */
function dnsProbe(): Buffer {
  const header = Buffer.from([0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  randomBytes(2).copy(header, 0);
  const qname = Buffer.from([7, ...Buffer.from('version'), 4, ...Buffer.from('bind'), 0]);
  return Buffer.concat([header, qname, Buffer.from([0, 16, 0, 3])]);
}

/** NTP: a version 4 client request (mode 3), 48 bytes, the rest zero. */
function ntpProbe(): Buffer {
  const packet = Buffer.alloc(48);
  packet[0] = (4 << 3) | 3;
  return packet;
}

/** SNMP v1 GetRequest for sysDescr.0 (1.3.6.1.2.1.1.1.0), community `public`. */
function snmpProbe(): Buffer {
  const oid = tlv(0x06, Buffer.from([0x2b, 6, 1, 2, 1, 1, 1, 0]));
  const varbinds = tlv(0x30, tlv(0x30, Buffer.concat([oid, Buffer.from([0x05, 0x00])])));
  const requestId = randomBytes(4);
  requestId[0] = (requestId[0] ?? 0) & 0x7f; // a positive INTEGER
  const pdu = tlv(0xa0, Buffer.concat([tlv(0x02, requestId), tlv(0x02, Buffer.from([0])), tlv(0x02, Buffer.from([0])), varbinds]));
  return tlv(0x30, Buffer.concat([tlv(0x02, Buffer.from([0])), tlv(0x04, Buffer.from('public')), pdu]));
}

const DNS_RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

interface UdpProtocol {
  name: string;
  probe(): Buffer;
  describe(reply: Buffer): string;
}

const printable = (reply: Buffer): string => sanitizeRemoteText(reply.subarray(0, REPLY_KEEP).toString('latin1'), 200);

/** The ports that get a protocol's own probe. */
export const UDP_PROTOCOLS: ReadonlyMap<number, UdpProtocol> = new Map([
  [53, { name: 'dns', probe: dnsProbe, describe: (r: Buffer) => (r.length >= 12 ? `dns ${DNS_RCODES[(r[3] ?? 0) & 0x0f] ?? `rcode ${(r[3] ?? 0) & 0x0f}`}, ${r.readUInt16BE(6)} answers` : printable(r)) }],
  [123, { name: 'ntp', probe: ntpProbe, describe: (r: Buffer) => (r.length >= 48 ? `ntp v${((r[0] ?? 0) >> 3) & 7} stratum ${r[1] ?? 0}` : printable(r)) }],
  [161, { name: 'snmp', probe: snmpProbe, describe: (r: Buffer) => `snmp ${printable(r.subarray(0, 200))}` }],
]);

/** The datagram sent to `port`. */
export function udpPayload(port: number): Buffer {
  return UDP_PROTOCOLS.get(port)?.probe() ?? Buffer.alloc(0);
}

/**
 * Probes one UDP port: up to `tries` datagrams, each waiting `timeoutMs` for an answer. `pace`
 * is awaited before each datagram (the scan's rate limit).
 */
export function probeUdp(host: string, port: number, options: { timeoutMs: number; tries: number; pace: () => Promise<void> }): Promise<UdpProbeResult> {
  return new Promise((resolve, reject) => {
    const socket: DgramSocket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let sent = 0;
    const finish = (outcome: UdpProbeResult | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const sendOne = (): void => {
      if (settled) return;
      if (sent >= options.tries) return finish({ state: 'open|filtered', reason: 'no-response' });
      sent++;
      options.pace().then(
        () => {
          if (settled) return;
          socket.send(udpPayload(port), (err) => {
            if (err) socket.emit('error', err);
          });
          timer = setTimeout(sendOne, options.timeoutMs);
        },
        (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
      );
    };
    socket.on('message', (reply) => {
      const protocol = UDP_PROTOCOLS.get(port);
      finish({ state: 'open', reason: 'udp-response', reply: protocol ? protocol.describe(reply) : printable(reply) });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code;
      if (code === 'ECONNREFUSED') return finish({ state: 'closed', reason: 'port-unreach' });
      const unreachable = unreachableReason(code);
      if (unreachable) return finish({ state: 'filtered', reason: unreachable });
      if (isLocalShortage(code)) return finish(new LocalShortageError(code ?? 'unknown'));
      finish(err);
    });
    // connect() makes the kernel pass ICMP errors for this peer back to the socket.
    socket.connect(port, host, sendOne);
  });
}
