import type { Logger } from 'pino';
import type { CounterCell } from '../../observe/hot-metrics.ts';
import { replyError } from '../http/reply.ts';
import type { HttpResponse } from '../types.ts';

// Refusals of the objects handler: the status, and an S3-style error code that leads the reason
// (`404 NoSuchKey: ...`) and is repeated in `x-objects-error` for programs.

export function refuse(res: HttpResponse, status: number, code: string, message: string, options: { close?: boolean; headers?: Record<string, string> } = {}): void {
  replyError(res, status, `${code}: ${message}`, { close: options.close, headers: { ...options.headers, 'x-objects-error': code } });
}

/** What the handler counts and where it says so. */
export interface ObjectsMeters {
  /** Stored objects found not to match their checksum (or size) when read. */
  readonly corrupt: CounterCell;
}

/** A stored object does not match its metadata: said loudly, counted. */
export function reportCorrupt(log: Logger, meters: ObjectsMeters, bucket: string, key: string, reason: string): void {
  meters.corrupt.inc();
  log.error({ bucket, key, reason }, 'objects: stored object is corrupt');
}
