// Reads the server name and the ALPN protocols from the first bytes of a TLS connection (the
// ClientHello, RFC 8446 section 4.1.2), without consuming them: Node chooses the certificate
// (SNICallback) before it sees ALPN, so a listener that must answer TLS-ALPN-01 peeks first; and a
// tcp listener that routes TLS by name without terminating it (sni-proxy) reads no more than this.

export interface ClientHelloInfo {
  servername: string | undefined;
  alpn: string[];
}

/** Largest ClientHello we wait for (one TLS record holds at most 16 KiB). */
export const MAX_CLIENT_HELLO = 16_384 + 5;

/**
 * The hello's server name and ALPN list; 'incomplete' when more bytes are needed; undefined when
 * `buf` is not a TLS ClientHello (or one this parser does not follow, say split over records).
 */
export function readClientHello(buf: Buffer): ClientHelloInfo | 'incomplete' | undefined {
  if (buf.length < 5) return buf.length === 0 || buf[0] === 0x16 ? 'incomplete' : undefined;
  if (buf[0] !== 0x16 || buf[1] !== 0x03) return undefined;
  const recordLen = buf.readUInt16BE(3);
  if (recordLen > 16_384) return undefined;
  if (buf.length < 5 + recordLen) return 'incomplete';
  const rec = buf.subarray(5, 5 + recordLen);
  let p = 0;
  const need = (n: number) => p + n <= rec.length;
  if (!need(4) || rec[0] !== 0x01) return undefined;
  const helloLen = rec.readUIntBE(1, 3);
  // A hello split over several records: not followed (an ACME validator's is small).
  if (helloLen + 4 > rec.length) return undefined;
  p = 4 + 2 + 32; // type+length, legacy_version, random
  if (!need(1)) return undefined;
  p += 1 + rec[p]; // session id
  if (!need(2)) return undefined;
  p += 2 + rec.readUInt16BE(p); // cipher suites
  if (!need(1)) return undefined;
  p += 1 + rec[p]; // compression methods
  const info: ClientHelloInfo = { servername: undefined, alpn: [] };
  if (p === 4 + helloLen) return info; // no extensions
  if (!need(2)) return undefined;
  const extEnd = p + 2 + rec.readUInt16BE(p);
  p += 2;
  if (extEnd > rec.length) return undefined;
  while (p + 4 <= extEnd) {
    const type = rec.readUInt16BE(p);
    const len = rec.readUInt16BE(p + 2);
    const body = rec.subarray(p + 4, p + 4 + len);
    p += 4 + len;
    if (p > extEnd) return undefined;
    if (type === 0x0000 && body.length >= 2) {
      // server_name: list of (type, length, name); host_name is type 0
      let q = 2;
      while (q + 3 <= body.length) {
        const nameType = body[q];
        const nameLen = body.readUInt16BE(q + 1);
        if (q + 3 + nameLen > body.length) return undefined;
        if (nameType === 0) info.servername = body.toString('latin1', q + 3, q + 3 + nameLen).toLowerCase();
        q += 3 + nameLen;
      }
    } else if (type === 0x0010 && body.length >= 2) {
      // application_layer_protocol_negotiation: list of length-prefixed names
      let q = 2;
      while (q < body.length) {
        const l = body[q];
        if (q + 1 + l > body.length) return undefined;
        info.alpn.push(body.toString('latin1', q + 1, q + 1 + l));
        q += 1 + l;
      }
    }
  }
  return info;
}
