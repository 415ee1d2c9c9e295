import { GrpcStatus, grpcStatusName } from './status.ts';

/**
 * A call's end with a status other than OK: what a service implementation throws and a client
 * gets. `details` is the plain text of `grpc-message` (not percent-encoded); `metadata` are
 * extra trailers (lower-case names; `-bin` ones base64).
 */
export class GrpcError extends Error {
  constructor(
    readonly status: GrpcStatus,
    readonly details = '',
    readonly metadata: Record<string, string> = {},
  ) {
    super(details === '' ? grpcStatusName(status) : `${grpcStatusName(status)}: ${details}`);
    this.name = 'GrpcError';
  }

  /** The status name: `NOT_FOUND`. */
  get statusName(): string {
    return grpcStatusName(this.status);
  }
}

/** Any thrown value as a GrpcError: a GrpcError as it is, anything else as UNKNOWN (its text not shown to the peer). */
export function toGrpcError(err: unknown): GrpcError {
  if (err instanceof GrpcError) return err;
  return new GrpcError(GrpcStatus.UNKNOWN, 'internal error');
}
