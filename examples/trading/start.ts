// The one command: a trading pipeline of four processes over shared-memory rings, with a live
// latency histogram and a summary at the end.
//   node --import tsx examples/trading/start.ts [--duration 10] [--count n] [--kill-after-orders n] ...
// Ctrl-C stops the feed and lets the pipeline drain; a second Ctrl-C ends it at once.
// kill -USR1 <pid> trips the kill switch (also --kill-after-orders, --kill-file).
import { existsSync } from 'node:fs';
import { formatLatency } from './latency.ts';
import { parseOptions, UsageError, USAGE, type TradingOptions } from './options.ts';
import { Pipeline, type Summary } from './pipeline.ts';
import { REJECT_REASONS } from './risk.ts';
import type { StageStats } from './stage.ts';

const out = (line: string) => process.stdout.write(`${line}\n`);
const n = (x: number) => x.toLocaleString('en-US');

let options: TradingOptions;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  // --help: the usage on stdout, exit 0; a bad flag: one line naming it, then the usage, exit 2.
  if (err.message) process.stderr.write(`trading: ${err.message}\n${USAGE}\n`);
  else process.stdout.write(`${USAGE}\n`);
  process.exit(err.message ? 2 : 0);
}

const latest: { strategy?: Extract<StageStats, { role: 'strategy' }>; risk?: Extract<StageStats, { role: 'risk' }>; feed?: Extract<StageStats, { role: 'feed' }> } = {};
let reports = 0;

const pipeline = new Pipeline(options, {
  stats(_role, s) {
    if (s.role === 'strategy') latest.strategy = s;
    else if (s.role === 'risk') latest.risk = s;
    else if (s.role === 'feed') latest.feed = s;
  },
  gateway(g) {
    // The other stages report the same second a moment apart (each between two of its 50 ms
    // slices): print once theirs are in.
    setTimeout(() => {
      reports++;
      const r = latest.risk?.rejected ?? {};
      const rejected = REJECT_REASONS.reduce((a, k) => a + (r[k] ?? 0), 0);
      out(
        `trading: ${String(reports).padStart(3)}s  quotes ${n(latest.feed?.sent ?? 0)}  orders ${n(latest.strategy?.orders ?? 0)}  sent ${n(g.sent)}  ` +
          `rejected ${n(rejected)} (${REJECT_REASONS.map((k) => `${k} ${n(r[k] ?? 0)}`).join(', ')})  held ${n(g.held)}  | feed->gateway ${formatLatency(g.interval)}`,
      );
    }, 250);
  },
  killed(k, what) {
    if (what === 'tripped') out(`trading: KILL SWITCH tripped by ${k.source} at ${k.atSeconds.toFixed(2)} s: from now on no order passes risk or leaves the gateway`);
    else if (what === 'risk' && k.risk) out(`trading: kill switch: risk stopped passing orders after ${n(k.risk.passed)} passed of ${n(k.risk.seen)} seen`);
    else if (what === 'gateway' && k.gateway) out(`trading: kill switch: the gateway stopped at ${n(k.gateway.sent)} orders sent`);
  },
});

function printSummary(s: Summary): void {
  const rejected = Object.values(s.rejected).reduce((a, b) => a + b, 0);
  out(`trading: done after ${s.seconds.toFixed(1)} s (${s.ended === 'count' ? 'quote count reached' : s.ended === 'duration' ? 'duration reached' : 'stopped'})`);
  out(`  quotes     ${n(s.quotes)}`);
  out(`  orders     ${n(s.orders)} = sent ${n(s.sent)} + rejected by risk ${n(rejected)} + held at the gateway ${n(s.held)}${s.balanced ? '' : '  (DOES NOT ADD UP)'}`);
  out(`  rejected   ${Object.entries(s.rejected).map(([k, v]) => `${k} ${n(v)}`).join(', ')}`);
  out(`  position   largest |position| sent ${n(s.maxAbsPosition)} (limit ${n(s.maxPosition)})`);
  out(`  kill       ${s.kill ? `tripped by ${s.kill.source} at ${s.kill.atSeconds.toFixed(2)} s; gateway total stayed at ${n(s.kill.gateway?.sent ?? s.sent)}` : 'not tripped'}`);
  out(`  latency    feed->gateway, ${n(s.latency.count)} orders sent: ${formatLatency(s.latency)}`);
  out(`  hops       feed->strategy ${formatLatency(s.hops.feedToStrategy)}`);
  out(`             strategy->risk ${formatLatency(s.hops.strategyToRisk)}`);
  out(`             risk->gateway  ${formatLatency(s.hops.riskToGateway)}`);
  if (options.json) out(JSON.stringify({ summary: s }));
}

let interrupts = 0;
process.on('SIGINT', () => {
  interrupts++;
  if (interrupts === 1) {
    out('trading: stopping (Ctrl-C again to end at once)');
    pipeline.stop();
  } else pipeline.abort();
});
process.on('SIGUSR1', () => {
  if (!pipeline.kill('SIGUSR1')) out('trading: the kill switch was already tripped');
});
const killFilePoll = options.killFile
  ? setInterval(() => {
      if (existsSync(options.killFile)) pipeline.kill('kill file');
    }, 100)
  : undefined;

try {
  await pipeline.start();
  const p = pipeline.pids;
  out(`trading: feed ${p.feed} -> strategy ${p.strategy} -> risk ${p.risk} -> gateway ${p.gateway}, shm rings of ${n(options.ringBytes)} bytes; ${n(options.rate)} quotes/s on ${options.instruments} instruments`);
  out(`trading: limits: |position| <= ${n(options.maxPosition)}, qty <= ${n(options.maxQty)}, ${n(options.maxOrderRate)} orders/s; kill switch: kill -USR1 ${process.pid}${options.killFile ? ` or create ${options.killFile}` : ''}${options.killAfterOrders ? `, or after ${n(options.killAfterOrders)} orders` : ''}`);
  // Bounded: the run's own limit plus time to drain; with neither limit, Ctrl-C ends it.
  const limitMs = options.duration > 0 || options.count > 0 ? (options.duration > 0 ? options.duration * 1000 : 3_600_000) + 30_000 : 2 ** 31 - 1;
  const summary = await pipeline.finished(limitMs);
  printSummary(summary);
  process.exitCode = summary.balanced ? 0 : 1;
} catch (err) {
  pipeline.abort();
  process.stderr.write(`trading: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  if (killFilePoll) clearInterval(killFilePoll);
  pipeline.cleanup();
}
