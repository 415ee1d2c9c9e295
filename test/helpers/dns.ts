import { createSocket, type Socket } from 'node:dgram';

// A tiny DNS server on 127.0.0.1 (UDP) that answers every A question with 127.0.0.1 and every
// other question with no records: for an ACME test server's validation of made-up names.

export interface LoopbackDns {
  port: number;
  /** Names asked about so far (lower case, no trailing dot). */
  asked: Set<string>;
  close(): Promise<void>;
}

function readName(msg: Buffer, start: number): { name: string; end: number } | undefined {
  const labels: string[] = [];
  let p = start;
  while (p < msg.length) {
    const len = msg[p];
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: p + 1 };
    if (len > 63 || p + 1 + len > msg.length) return undefined;
    labels.push(msg.toString('latin1', p + 1, p + 1 + len));
    p += 1 + len;
  }
  return undefined;
}

export function startLoopbackDns(): Promise<LoopbackDns> {
  const asked = new Set<string>();
  const sock: Socket = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return;
    const q = readName(msg, 12);
    if (!q || q.end + 4 > msg.length) return;
    const qtype = msg.readUInt16BE(q.end);
    asked.add(q.name);
    const question = msg.subarray(12, q.end + 4);
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8180 | (msg.readUInt16BE(2) & 0x0100), 2); // response, RD copied, RA, NOERROR
    header.writeUInt16BE(1, 4);
    const answers: Buffer[] = [];
    if (qtype === 1) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(60, 6); // TTL
      rr.writeUInt16BE(4, 10);
      Buffer.from([127, 0, 0, 1]).copy(rr, 12);
      answers.push(rr);
    }
    header.writeUInt16BE(answers.length, 6);
    sock.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      resolve({
        port: sock.address().port,
        asked,
        close: () => new Promise((r) => sock.close(() => r())),
      });
    });
  });
}
