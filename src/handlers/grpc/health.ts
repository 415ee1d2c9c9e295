import { GrpcError, GrpcStatus } from '../../protocol/grpc/index.ts';
import type { ServiceImpl } from './service.ts';

// grpc.health.v1.Health (grpc/doc/health-checking.md). Every service the handler serves is
// SERVING, and so is the server as a whole (service ""). When the yard stops, everything turns
// NOT_SERVING: Watch streams get that status and then end with UNAVAILABLE, so that clients
// look elsewhere instead of holding the shutdown until its grace period runs out.

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** The serving status of each service, with change notifications for Watch. */
export class HealthState {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly waiters = new Set<() => void>();
  /** Bumped on every change, so a watcher can tell whether it missed one. */
  version = 0;
  closing = false;

  constructor(services: readonly string[]) {
    this.statuses.set('', 'SERVING');
    for (const s of services) this.statuses.set(s, 'SERVING');
  }

  /** The status of a service ("" is the whole server); undefined for one not served here. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    this.changed();
  }

  /** The server is stopping: every service NOT_SERVING, watchers told and ended. */
  shutdown(): void {
    this.closing = true;
    for (const s of this.statuses.keys()) this.statuses.set(s, 'NOT_SERVING');
    this.changed();
  }

  /** Resolves at the next change; rejects with the signal's reason when it aborts first. */
  nextChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const done = () => {
        this.waiters.delete(done);
        signal.removeEventListener('abort', aborted);
        resolve();
      };
      const aborted = () => {
        this.waiters.delete(done);
        reject(signal.reason);
      };
      this.waiters.add(done);
      signal.addEventListener('abort', aborted, { once: true });
    });
  }

  private changed(): void {
    this.version++;
    for (const w of [...this.waiters]) w();
  }
}

export function healthService(state: HealthState): ServiceImpl {
  const serviceOf = (m: Record<string, unknown>) => (typeof m.service === 'string' ? m.service : '');
  return {
    name: 'grpc.health.v1.Health',
    methods: {
      async Check(call) {
        const service = serviceOf(call.request);
        const status = state.get(service);
        if (status === undefined) throw new GrpcError(GrpcStatus.NOT_FOUND, `unknown service ${JSON.stringify(service)}`);
        return { status };
      },

      async Watch(call) {
        const service = serviceOf(call.request);
        let last: ServingStatus | undefined;
        for (;;) {
          const version = state.version;
          const now = state.get(service) ?? 'SERVICE_UNKNOWN';
          // Only changes are sent; several while a send waited come out as the latest one.
          if (now !== last) {
            await call.send({ status: now });
            last = now;
          }
          if (state.closing) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'server shutting down');
          if (state.version === version) await state.nextChange(call.signal);
        }
      },
    },
  };
}
