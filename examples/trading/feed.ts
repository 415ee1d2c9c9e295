import type { RingChannel } from '../../src/ipc/index.ts';
import type { Control } from './control.ts';
import { KIND_QUOTE, MESSAGE_BYTES, O_INSTRUMENT, O_KIND, O_ORDER, O_PRICE, O_QTY, O_QUOTE, O_SIDE, O_T_FEED, O_T_RISK, O_T_STRATEGY, nowNs } from './message.ts';
import type { TradingOptions } from './options.ts';

// The market data feed: quotes for `instruments` instruments, each price a random walk, paced to
// `rate` quotes a second from the moment the runner says go. Between bursts it sleeps (a short
// Atomics.wait), so it uses a core only while it has quotes due; a burst is whatever came due
// while it slept. Each quote is stamped with the shared clock as it is written into the ring:
// the pipeline's latency is measured from there.

/** Seeded, so two runs at the same pace quote the same prices. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** At most this many quotes are written back to back before the clock is looked at again. */
const MAX_BURST = 256;
/** A feed that waits for the ring longer than this is stuck downstream. */
const SEND_TIMEOUT_MS = 10_000;

export type FeedEnd = 'count' | 'duration' | 'stop';

export class Feed {
  sent = 0;
  ended: FeedEnd | undefined;
  private startNs = 0n;
  private readonly prices: Float64Array;
  private readonly rnd = mulberry32(20261207);
  private readonly nap = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly out: RingChannel,
    private readonly control: Control,
    private readonly o: TradingOptions,
  ) {
    this.prices = Float64Array.from({ length: o.instruments }, (_, i) => 100 + 10 * i);
  }

  start(): void {
    this.startNs = nowNs();
  }

  get started(): boolean {
    return this.startNs !== 0n;
  }

  /** Sends what is due for up to `budgetMs`; false once the feed has ended. */
  pump(budgetMs: number): boolean {
    if (!this.started) return true;
    const end = performance.now() + budgetMs;
    const { rate, count, duration } = this.o;
    while (performance.now() < end) {
      if (this.control.stopped) return this.finish('stop');
      if (count > 0 && this.sent >= count) return this.finish('count');
      const elapsedNs = Number(nowNs() - this.startNs);
      if (duration > 0 && elapsedNs >= duration * 1e9) return this.finish('duration');
      let due = Math.floor((elapsedNs * rate) / 1e9) + 1 - this.sent;
      if (count > 0) due = Math.min(due, count - this.sent);
      if (due <= 0) {
        // Sleep until the next quote is due (at least 50 µs: the kernel's timer slack anyway).
        const waitMs = Math.max(0.05, ((this.sent / rate) * 1e9 - elapsedNs) / 1e6);
        Atomics.wait(this.nap, 0, 0, Math.min(waitMs, end - performance.now()));
        continue;
      }
      for (let i = Math.min(due, MAX_BURST); i > 0; i--) this.quote();
    }
    return true;
  }

  private quote(): void {
    const inst = this.sent % this.o.instruments;
    const p = this.prices[inst] * (1 + (this.rnd() - 0.5) * 0.002);
    this.prices[inst] = p;
    const s = this.out.reserve(MESSAGE_BYTES, SEND_TIMEOUT_MS);
    s.setUint8(O_KIND, KIND_QUOTE);
    s.setUint8(O_SIDE, 0);
    s.setUint16(O_INSTRUMENT, inst);
    s.setUint32(O_QUOTE, this.sent + 1);
    s.setFloat64(O_PRICE, Math.round(p * 100) / 100);
    s.setInt32(O_QTY, 1 + Math.floor(this.rnd() * 1000));
    s.setUint32(O_ORDER, 0);
    s.setBigUint64(O_T_STRATEGY, 0n);
    s.setBigUint64(O_T_RISK, 0n);
    s.setBigUint64(O_T_FEED, nowNs());
    s.commit();
    this.sent++;
  }

  private finish(why: FeedEnd): false {
    this.ended ??= why;
    return false;
  }

  stats(): { sent: number; ended?: FeedEnd } {
    return { sent: this.sent, ended: this.ended };
  }
}
