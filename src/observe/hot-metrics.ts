import type { Registry } from 'prom-client';

// Metric families for the per-request hot path. prom-client hashes and validates the label set
// on every inc() and observe(), even through a `labels()` child: a few microseconds per request
// across the counters a request touches, which measured as a quarter of the 4 KiB static
// throughput. These families count into plain numbers held by a cell per label set (looked up
// once by the caller and kept), and hand prom-client their values only when it scrapes, through
// its custom-metric interface (`registerMetric` of an object with `get()`). The text format is
// prom-client's own.

type Labels = Record<string, string>;

interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator: 'sum';
  get(): { name: string; help: string; type: string; values: Sample[]; aggregator: 'sum' };
}

abstract class HotFamily<Cell> implements Family {
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum' as const;
  private readonly cells = new Map<string, { labels: Labels; cell: Cell }>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected abstract newCell(): Cell;
  protected abstract samples(labels: Labels, cell: Cell): Sample[];

  /** The cell for these label values (in labelNames order); keep it, it is the fast handle. */
  labels(...values: string[]): Cell {
    const key = values.join('\u0000');
    let entry = this.cells.get(key);
    if (!entry) {
      if (values.length !== this.labelNames.length) throw new Error(`${this.name}: expected labels ${this.labelNames.join(', ')}`);
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i]));
      entry = { labels, cell: this.newCell() };
      this.cells.set(key, entry);
    }
    return entry.cell;
  }

  get() {
    const values: Sample[] = [];
    for (const { labels, cell } of this.cells.values()) values.push(...this.samples(labels, cell));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

export class CounterCell {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class GaugeCell {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
  set(value: number): void {
    this.value = value;
  }
}

export class HotCounter extends HotFamily<CounterCell> {
  readonly type = 'counter' as const;
  protected newCell() {
    return new CounterCell();
  }
  protected samples(labels: Labels, cell: CounterCell): Sample[] {
    return [{ labels, value: cell.value }];
  }
}

export class HotGauge extends HotFamily<GaugeCell> {
  readonly type = 'gauge' as const;
  protected newCell() {
    return new GaugeCell();
  }
  protected samples(labels: Labels, cell: GaugeCell): Sample[] {
    return [{ labels, value: cell.value }];
  }
}

export class HistogramCell {
  /** counts[i]: observations in (buckets[i-1], buckets[i]]; the last slot is above every bucket. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length + 1);
  }
  observe(value: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

export class HotHistogram extends HotFamily<HistogramCell> {
  readonly type = 'histogram' as const;
  constructor(
    registry: Registry,
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly buckets: readonly number[],
  ) {
    super(registry, name, help, labelNames);
  }
  protected newCell() {
    return new HistogramCell(this.buckets);
  }
  protected samples(labels: Labels, cell: HistogramCell): Sample[] {
    const out: Sample[] = [];
    let cumulative = 0;
    this.buckets.forEach((le, i) => {
      cumulative += cell.counts[i];
      out.push({ labels: { ...labels, le: String(le) }, value: cumulative, metricName: `${this.name}_bucket` });
    });
    out.push({ labels: { ...labels, le: '+Inf' }, value: cell.count, metricName: `${this.name}_bucket` });
    out.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
    out.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    return out;
  }
}

/**
 * A gauge whose values are read from live state when scraped (in-flight counts, health, breaker
 * state): nothing to keep in step on the hot path. Several sources (one per upstream group) may
 * feed one family.
 */
export class LiveGauge implements Family {
  readonly type = 'gauge' as const;
  readonly aggregator = 'sum' as const;
  private readonly sources = new Set<() => Iterable<{ labels: readonly string[]; value: number }>>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** Adds a source of samples; returns a function that removes it. */
  addSource(source: () => Iterable<{ labels: readonly string[]; value: number }>): () => void {
    this.sources.add(source);
    return () => this.sources.delete(source);
  }

  get() {
    const values: Sample[] = [];
    for (const source of this.sources) {
      for (const s of source()) {
        const labels: Labels = {};
        this.labelNames.forEach((n, i) => (labels[n] = s.labels[i]));
        values.push({ labels, value: s.value });
      }
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
