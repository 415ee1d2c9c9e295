// gRPC status codes (grpc/doc/statuscodes.md) and the table a client uses for a response that
// came without `grpc-status` (grpc/doc/http-grpc-status-mapping.md).
//
// GrpcStatus is a plain object rather than a TypeScript `enum` (the house writes erasable
// TypeScript): `GrpcStatus.NOT_FOUND` is 5, and the type `GrpcStatus` is the union 0..16.

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusName = keyof typeof GrpcStatus;
export type GrpcStatus = (typeof GrpcStatus)[GrpcStatusName];

const NAMES = Object.keys(GrpcStatus) as GrpcStatusName[];

/** True for the integers 0..16. */
export function isGrpcStatus(code: unknown): code is GrpcStatus {
  return typeof code === 'number' && Number.isInteger(code) && code >= 0 && code < NAMES.length;
}

/** `NOT_FOUND` for 5; `UNKNOWN(42)` for a code outside the table (a peer may send one). */
export function grpcStatusName(code: number): string {
  return isGrpcStatus(code) ? NAMES[code] : `UNKNOWN(${code})`;
}

/** The code of a name (`NOT_FOUND`, case-insensitive), or undefined. */
export function grpcStatusFromName(name: string): GrpcStatus | undefined {
  const key = name.toUpperCase();
  return Object.hasOwn(GrpcStatus, key) ? GrpcStatus[key as GrpcStatusName] : undefined;
}

/**
 * The `grpc-status` header's value as a code: a decimal integer, else undefined. Codes past 16
 * are kept (the spec lets a client treat them as UNKNOWN; grpcStatusName shows them as such).
 */
export function parseGrpcStatus(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\d{1,10}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

/**
 * The gRPC status a client takes from an HTTP response without `grpc-status` (an intermediary's
 * error page, a 404 from a proxy): http-grpc-status-mapping.md. Only for that case: a response
 * with `grpc-status` is read from it, and servers must not map the other way with this table.
 */
export function grpcStatusFromHttp(httpStatus: number): GrpcStatus {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}
