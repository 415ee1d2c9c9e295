import { handlerModule } from '../handlers/registry.ts';
import { kindsOf, type TrafficKind } from '../handlers/types.ts';
import { findBindConflicts, type BindingListener } from './bind-conflicts.ts';
import type { PathIssue } from './errors.ts';

// The checks that look across fields: listener names, upstream references, which handler may
// serve which listener, what workers > 1 cannot share, two listeners on one address. They run
// on the config as it was written (before or after zod filled its defaults), reading only what
// is there and of the right type, so that `check` reports them beside the field errors of the
// same file instead of only once those are fixed. A field this reads that is missing or of the
// wrong type is skipped: its own problem is zod's to report.

const KIND_OF_PROTOCOL: Record<string, TrafficKind | undefined> = { http: 'http', tcp: 'stream', unix: 'stream', udp: 'datagram', quic: 'stream' };

type Path = (string | number)[];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Each handler object of a listener (the routes' of an http listener) with its path. */
export function handlersOf(listener: Record<string, unknown>, at: Path): { handler: Record<string, unknown>; path: Path; route?: Record<string, unknown> }[] {
  if (listener.protocol === 'http') {
    const routes = Array.isArray(listener.routes) ? listener.routes : [];
    return routes.flatMap((r, j) => (isRecord(r) && isRecord(r.handler) ? [{ handler: r.handler, path: [...at, 'routes', j, 'handler'], route: r }] : []));
  }
  return isRecord(listener.handler) ? [{ handler: listener.handler, path: [...at, 'handler'] }] : [];
}

/** The upstream names a handler object refers to, with their paths inside it. */
function upstreamRefs(handler: Record<string, unknown>): { path: Path; name: string }[] {
  const mod = handlerModule(str(handler.type) ?? '');
  if (mod?.upstreamRefs) {
    // The module reads its own parsed config; a handler that does not parse has its own problems.
    const parsed = mod.schema.safeParse(handler);
    return parsed.success ? mod.upstreamRefs(parsed.data) : [];
  }
  const ref = str(handler.upstream);
  return ref !== undefined ? [{ path: ['upstream'], name: ref }] : [];
}

/** Every cross-field problem of a config (raw or parsed), with its path. */
export function crossFieldIssues(config: unknown): PathIssue[] {
  if (!isRecord(config)) return [];
  const out: PathIssue[] = [];
  const listeners = Array.isArray(config.listeners) ? config.listeners : [];
  const upstreams = isRecord(config.upstreams) ? Object.keys(config.upstreams) : [];
  const seen = new Map<string, number>();

  listeners.forEach((l, i) => {
    if (!isRecord(l)) return;
    const name = str(l.name);
    if (name !== undefined) {
      const before = seen.get(name);
      if (before !== undefined) out.push({ path: ['listeners', i, 'name'], message: `duplicate listener name "${name}" (also listeners[${before}])` });
      seen.set(name, i);
      // '#' separates a listener's name from its second socket's in an upgrade's hand-over
      // (`web#h3`: src/yard/upgrade.ts), and would end the path of the admin API's /listeners/NAME.
      if (name.includes('#')) out.push({ path: ['listeners', i, 'name'], message: `listener name "${name}": "#" is reserved (upgrades name an http listener's HTTP/3 socket NAME#h3)` });
    }
    const protocol = str(l.protocol) ?? '';
    const kind = KIND_OF_PROTOCOL[protocol];
    for (const { handler, path } of handlersOf(l, ['listeners', i])) {
      for (const r of upstreamRefs(handler)) {
        if (upstreams.includes(r.name)) continue;
        out.push({
          path: [...path, ...r.path],
          message: `no upstream named "${r.name}" (${upstreams.length ? `upstreams: ${upstreams.join(', ')}` : 'the config has no upstreams section'})`,
        });
      }
      const type = str(handler.type);
      const mod = type !== undefined ? handlerModule(type) : undefined;
      if (mod && kind && !kindsOf(mod).includes(kind)) {
        out.push({ path: [...path, 'type'], message: `handler "${type}" cannot serve a ${protocol} listener; it serves: ${kindsOf(mod).join(', ')}` });
      }
    }
  });

  out.push(...workerIssues(config, listeners));

  // Two listeners on one address: refused here, not first at bind time (rules in bind-conflicts.ts).
  const binding: BindingListener[] = listeners.map((l) =>
    isRecord(l)
      ? { name: str(l.name) ?? '(unnamed)', protocol: str(l.protocol) ?? '', address: str(l.address), path: str(l.path), socket: l.socket, http3: l.http3, reuseAddr: l.reuseAddr }
      : { name: '(unnamed)', protocol: '' },
  );
  for (const c of findBindConflicts(binding)) out.push({ path: c.path, message: c.message });
  return out;
}

/** Workers do not share memory: what lives in a daemon's memory must live in Redis instead. */
function workerIssues(config: Record<string, unknown>, listeners: unknown[]): PathIssue[] {
  const workers = config.workers ?? 1;
  if (workers === 1 || (typeof workers !== 'number' && workers !== 'auto')) return [];
  const out: PathIssue[] = [];
  const backend = isRecord(config.state) ? (config.state.backend ?? 'memory') : 'memory';
  const why = `with workers: ${String(workers)} each worker process would keep its own`;
  // A rate limit's store is memory unless it says redis.
  const memoryLimit = (middleware: unknown): boolean => isRecord(middleware) && isRecord(middleware.rateLimit) && (middleware.rateLimit.store ?? 'memory') === 'memory';
  listeners.forEach((l, i) => {
    if (!isRecord(l)) return;
    for (const { handler, path } of handlersOf(l, ['listeners', i])) {
      if (handler.type === 'chat' && backend === 'memory') out.push({ path: [...path, 'type'], message: `${why} chat rooms: set state.backend: redis (or workers: 1)` });
    }
    if (l.protocol !== 'http') return;
    if (memoryLimit(l.middleware)) out.push({ path: ['listeners', i, 'middleware', 'rateLimit', 'store'], message: `${why} token buckets (N times the limit): set store: redis (or workers: 1)` });
    const routes = Array.isArray(l.routes) ? l.routes : [];
    routes.forEach((r, j) => {
      if (isRecord(r) && memoryLimit(r.middleware)) {
        out.push({ path: ['listeners', i, 'routes', j, 'middleware', 'rateLimit', 'store'], message: `${why} token buckets (N times the limit): set store: redis (or workers: 1)` });
      }
    });
  });
  return out;
}
