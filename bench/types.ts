/** What every benchmark gets from bench/run.ts. */
export interface BenchContext {
  /** Absolute path of the repository (the folder holding package.json). */
  readonly repoRoot: string;
  /** Measured wrk run length, seconds. */
  readonly durationSec: number;
  /** Unmeasured wrk run before each measurement, seconds (0 = none). */
  readonly warmupSec: number;
  /** Interleaved runs; the table shows medians over them. */
  readonly runs: number;
  /** Longest wait, seconds, for other processes to leave the cores idle before each server's run. */
  readonly maxWaitSec: number;
  /** wrk connections (-c). */
  readonly connections: number;
  /** Only these servers (ids), or all when undefined. */
  readonly servers: ReadonlySet<string> | undefined;
  /** taskset core for the server under test, e.g. "0". */
  readonly serverCore: string;
  /** taskset core for wrk (and the harness itself), e.g. "1". */
  readonly clientCore: string;
}

export interface Benchmark {
  readonly description: string;
  /** Server ids accepted by --servers. */
  readonly servers: readonly string[];
  /** Commands the preflight requires (default: wrk and taskset). */
  readonly tools?: readonly string[];
  run(ctx: BenchContext): Promise<number>;
}
