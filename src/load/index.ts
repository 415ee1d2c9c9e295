// The load generator behind `switchyard bench URL` (docs/load.md): HTTP/1.1 (pipelined),
// HTTP/2, WebSocket, TCP and UDP round trips, closed or open model, HdrHistogram latencies.

export { runBench, type BenchHooks } from './bench.ts';
export { runLoad, type RunHooks, type RunOutcome } from './run.ts';
export { buildReport, formatReport, type LoadReport, type LatencySummary } from './report.ts';
export { parseTarget, type LoadTarget, type TargetProtocol } from './target.ts';
export { LIMITS, type LoadOptions, type TlsClientOptions } from './options.ts';
export { ERROR_KINDS, type ErrorKind } from './errors.ts';
export { LoadStats } from './stats.ts';
