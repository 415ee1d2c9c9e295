import type { HandlerModule } from '../types.ts';
import { proxySchema, type ProxyConfig } from './config.ts';
import { ProxyHandler } from './handler.ts';

// The `proxy` handler: HTTP/1.1 reverse proxy to an upstream group, WebSocket included.
// Phases: handler.ts (their order), request-headers.ts / response-headers.ts, http.ts (the
// exchange through undici), retry.ts (when a retry is safe), errors.ts (one error type),
// websocket.ts.
//
// What was measured (compiled build, proxy pinned to core 0, nginx `return 200` with a 100-byte
// body and `wrk -t1 -c64` sharing core 1 of a 2-core VM; CPU per request from /proc/PID/stat):
//
//   bare node:http + undici pool.request + pipeline (headers as objects)   ~10.5k req/s  93-101 us
//   this handler, breaker + outlier + health checks + retries on           ~20k   req/s  48.7-50.4 us
//
// - strace: 4 syscalls per request (2 reads, 1 write upstream, 1 writev to the client), the
//   minimum; in the CPU profile writev + the header write are ~24%, GC 4%, this folder's code
//   under 5%; the rest is node:http and undici themselves.
// - pool.dispatch with undici's raw handler instead of pool.request: no Readable and promise
//   per response, headers unparsed (one pass from raw Buffers to the list writeHead takes).
// - Request headers go from req.rawHeaders into undici's flat array in one pass; names are
//   lower-cased only when their length matches one this phase cares about.
// - Tried and dropped: holding a one-chunk body to send it with res.end(chunk) (no change).
// - Against the bare undici floor, by CPU profile (bench/README.md, proxy): this folder and
//   upstream/ are ~3 us of self time per request; the rest of the gap is the listener's reading
//   path and per-request bookkeeping, and the forwarding headers themselves (~3.5 us on the floor).
// - Re-measured 2026-12-07 on Node 24 (bench/proxy.ts, switchyard and undici peers, 5 runs, a
//   shared machine whose speed drifted between runs): before the two cuts below 0.84x the
//   floor's req/s at 1.19x its CPU per request (medians), after them 0.91x at 1.11x; the
//   per-run pairs spread from 0.7x to 1.03x, so the goal (0.9x, 1.15x) is met in the medians but
//   not reliably. On Node 24 a native call from JavaScript costs ~0.1-0.15 us (hexSlice and
//   latin1Slice go through a JS wrapper): the traceparent ids are cut from a block encoded once
//   (trace.ts) and an upstream head from one read is decoded in one call
//   (response-headers.ts): ~1 us per request together in microbenchmarks, ~0.4 us in the daemon's
//   CPU profile. What is left against the floor, by CPU
//   profile: the listener's JavaScript read path (~2-3 us, pipeline.ts explains why it stays),
//   the six default forwarding fields in undici's header checks and write (~1.5 us;
//   `forwarded: none, via: false` leaves them out), the listener's own phases (~1.5 us), and
//   this folder and upstream/ at 0.1-0.7 us a function.

export { proxySchema, type ProxyConfig } from './config.ts';
export { ProxyError, type ProxyErrorCode, type ProxyErrorSource } from './errors.ts';

export const proxyHandler: HandlerModule<ProxyConfig> = {
  type: 'proxy',
  summary: 'reverse proxy to an upstream group (balanced, health-checked, retried, circuit-broken; WebSocket too)',
  schema: proxySchema,
  validate: (config, ctx) =>
    ctx.upstreamKind(config.upstream) === 'l4'
      ? [{ path: ['upstream'], message: `upstream "${config.upstream}" has targets without http://, https:// or h2c:// (a bare host:port is a TCP target); write its targets as http://host:port, or use tcp-proxy for L4 groups` }]
      : [],
  http: (config, ctx) => {
    const group = ctx.upstream(config.upstream);
    if (group.kind !== 'http') throw new Error(`proxy: upstream "${config.upstream}" has targets without http://, https:// or h2c://; use tcp-proxy for L4 groups`);
    return new ProxyHandler(group, config, ctx.metrics);
  },
};
