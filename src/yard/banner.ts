import type { ListenerSummary } from '../handlers/types.ts';

/** The lines printed when the daemon is up: every listener, where it is, and a command to try it. */
export function banner(version: string, source: string, listeners: ListenerSummary[], graceMs: number): string {
  const w = (xs: string[]) => Math.max(...xs.map((x) => x.length));
  const nameW = w(listeners.map((l) => l.name));
  const urlW = w(listeners.map((l) => l.url));
  const lines = listeners.map((l) => `  ${l.name.padEnd(nameW)}  ${l.protocol.padEnd(4)}  ${l.url.padEnd(urlW)}  try: ${l.tryIt}`);
  return [
    `Switchyard ${version} is running (${source})`,
    ...lines,
    `Stop with Ctrl-C or SIGTERM: in-flight work gets up to ${graceMs / 1000}s to finish; a second signal exits at once.`,
    '',
  ].join('\n');
}
