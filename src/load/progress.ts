import { ERROR_KINDS } from './errors.ts';
import type { LoadStats } from './stats.ts';

// The once-a-second line on stderr during a run: what the last second did, so a run that
// stalls or starts failing shows it while it happens.

export class ProgressLine {
  private lastResponses = 0;
  private lastErrors = 0;

  constructor(private readonly write: (line: string) => void) {}

  tick(stats: LoadStats, elapsedMs: number): void {
    const responses = stats.responses - this.lastResponses;
    let errors = 0;
    for (const k of ERROR_KINDS) errors += stats.errors[k];
    const newErrors = errors - this.lastErrors;
    this.lastResponses = stats.responses;
    this.lastErrors = errors;
    this.write(`  ${(elapsedMs / 1000).toFixed(0).padStart(4)}s  ${String(responses).padStart(8)} req/s  ${String(newErrors).padStart(6)} errors  ${stats.responses} responses so far\n`);
  }
}
