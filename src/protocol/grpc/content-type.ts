// The content types of gRPC and gRPC-Web (PROTOCOL-HTTP2.md, PROTOCOL-WEB.md):
//
//   application/grpc[+FORMAT]            gRPC over HTTP/2
//   application/grpc-web[+FORMAT]        gRPC-Web, binary frames (HTTP/1.1 or HTTP/2)
//   application/grpc-web-text[+FORMAT]   gRPC-Web, the frames base64-encoded (browsers without binary streams)
//
// FORMAT is the message encoding, `proto` when absent (`json` is the other one seen in the wild).

export type GrpcProtocol = 'grpc' | 'grpc-web' | 'grpc-web-text';

export interface GrpcContentType {
  readonly protocol: GrpcProtocol;
  /** The message format after `+`, lower case; `proto` when none is given. */
  readonly format: string;
}

/**
 * Reads a Content-Type header: undefined unless it is one of the three families above.
 * Parameters (`; charset=...`) and case are ignored; `application/grpcfoo` is not gRPC.
 */
export function parseGrpcContentType(value: string | string[] | undefined): GrpcContentType | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const m = /^\s*application\/(grpc-web-text|grpc-web|grpc)(?:\+([a-z0-9.-]+))?\s*(?:;.*)?$/i.exec(v);
  if (!m) return undefined;
  return { protocol: m[1].toLowerCase() as GrpcProtocol, format: (m[2] ?? 'proto').toLowerCase() };
}

/** The header value for a protocol and format: `application/grpc-web-text+proto`. */
export function formatGrpcContentType(ct: GrpcContentType): string {
  return `application/${ct.protocol}+${ct.format}`;
}
