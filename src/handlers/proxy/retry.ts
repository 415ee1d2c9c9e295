import { GrpcStatus } from '../../protocol/grpc/index.ts';
import type { RetryConfig } from '../../upstream/config.ts';

// Phase "retry": whether a failed try may be sent again, and where. The rules (Envoy's retry
// policy with Pingora's "is it safe" question):
//   - nothing was sent (connect failure): always safe, whatever the method or body;
//   - something was sent: only when the request can be replayed exactly (no body, or a body
//     buffered in full) and either the method is idempotent (RFC 9110 §9.2.2) or the body was
//     small enough to buffer (retry.bufferBody > 0; 0 means a sent non-idempotent request is
//     never retried);
//   - retryable failures: connect failures, resets, first-byte and per-try timeouts, and the
//     statuses in retry.statuses (502/503/504 by default);
//   - at most retry.attempts retries, each within the group's retry budget, each to a target not
//     tried yet when there is one (else any available target): Admission.retry() decides that.

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

export class RetryPolicy {
  /** Tries in all: the first plus retry.attempts. */
  readonly maxTries: number;
  readonly bufferBody: number;
  readonly perTryTimeout: number;
  /** statuses[code] === 1 when an upstream answer with that code may be retried. */
  private readonly statuses = new Uint8Array(600);
  /** grpc[status] === 1 when a trailers-only gRPC answer with that status may be retried. */
  private readonly grpc = new Uint8Array(17);

  constructor(config: RetryConfig) {
    this.maxTries = 1 + config.attempts;
    this.bufferBody = config.bufferBody;
    this.perTryTimeout = config.perTryTimeout;
    for (const s of config.statuses) this.statuses[s] = 1;
    for (const name of config.grpcStatuses) this.grpc[GrpcStatus[name]] = 1;
  }

  retryableGrpcStatus(status: number): boolean {
    return status >= 0 && status < 17 && this.grpc[status] === 1;
  }

  retryableStatus(status: number): boolean {
    return status < 600 && this.statuses[status] === 1;
  }

  /**
   * Whether a request whose bytes reached the upstream may be sent again: `replayable` when it
   * has no body or its body is held in full.
   */
  resendable(method: string, replayable: boolean): boolean {
    return replayable && (this.maxTries > 1) && (IDEMPOTENT.has(method) || this.bufferBody > 0);
  }
}
