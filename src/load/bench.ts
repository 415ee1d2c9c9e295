import type { LoadOptions } from './options.ts';
import { ProgressLine } from './progress.ts';
import { buildReport, type LoadReport } from './report.ts';
import { runLoad } from './run.ts';

// A whole `switchyard bench`: the unmeasured warm-up (same load, thrown away), then the
// measured run, reported.

export interface BenchHooks {
  /** Where the once-a-second progress line goes, or undefined for none. */
  readonly progress?: (line: string) => void;
}

export async function runBench(options: LoadOptions, hooks: BenchHooks = {}): Promise<LoadReport> {
  if (options.warmupMs > 0) {
    const warm = await runLoad({ ...options, durationMs: options.warmupMs, requests: undefined });
    warm.stats.destroy();
    hooks.progress?.(`  warm-up done: ${warm.stats.responses} responses in ${(warm.elapsedMs / 1000).toFixed(1)}s, not counted\n`);
  }
  const progress = hooks.progress ? new ProgressLine(hooks.progress) : undefined;
  const outcome = await runLoad(options, { tick: progress ? (s, ms) => progress.tick(s, ms) : undefined });
  const report = buildReport(options, outcome);
  outcome.stats.destroy();
  return report;
}
