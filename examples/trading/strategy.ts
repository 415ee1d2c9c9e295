import type { RingChannel, RingView } from '../../src/ipc/index.ts';
import { KIND_ORDER, KIND_QUOTE, MESSAGE_BYTES, O_INSTRUMENT, O_KIND, O_ORDER, O_PRICE, O_QTY, O_QUOTE, O_SIDE, O_T_FEED, O_T_RISK, O_T_STRATEGY, SIDE_BUY, SIDE_SELL, nowNs } from './message.ts';

// The strategy: mean reversion on each instrument. It keeps an exponential average of the price;
// when the price is more than THRESHOLD away from it, it buys below and sells above, more the
// further away, then stays quiet on that instrument for COOLDOWN quotes. It does not know the
// risk limits: some orders are too large and positions drift, which is what risk is for.

const ALPHA = 0.05;
const THRESHOLD = 0.001;
const QTY_PER_THRESHOLD = 40;
const COOLDOWN = 4;
const SEND_TIMEOUT_MS = 10_000;

export class Strategy {
  quotes = 0;
  orders = 0;
  private readonly ema: Float64Array;
  private readonly quiet: Int32Array;

  constructor(
    private readonly out: RingChannel,
    instruments: number,
  ) {
    this.ema = new Float64Array(instruments);
    this.quiet = new Int32Array(instruments);
  }

  handle(v: RingView): void {
    if (v.length !== MESSAGE_BYTES || v.getUint8(O_KIND) !== KIND_QUOTE) throw new Error(`strategy: not a quote (${v.length} bytes, kind ${v.length ? v.getUint8(0) : '-'})`);
    this.quotes++;
    const inst = v.getUint16(O_INSTRUMENT);
    if (inst >= this.ema.length) throw new Error(`strategy: instrument ${inst} out of range`);
    const price = v.getFloat64(O_PRICE);
    const avg = this.ema[inst] === 0 ? price : this.ema[inst];
    this.ema[inst] = avg + ALPHA * (price - avg);
    if (this.quiet[inst] > 0) {
      this.quiet[inst]--;
      return;
    }
    const dev = (price - avg) / avg;
    if (Math.abs(dev) <= THRESHOLD) return;
    this.quiet[inst] = COOLDOWN;
    const s = this.out.reserve(MESSAGE_BYTES, SEND_TIMEOUT_MS);
    s.setUint8(O_KIND, KIND_ORDER);
    s.setUint8(O_SIDE, dev < 0 ? SIDE_BUY : SIDE_SELL);
    s.setUint16(O_INSTRUMENT, inst);
    s.setUint32(O_QUOTE, v.getUint32(O_QUOTE));
    s.setFloat64(O_PRICE, price);
    s.setInt32(O_QTY, Math.max(1, Math.round((Math.abs(dev) / THRESHOLD) * QTY_PER_THRESHOLD)));
    s.setUint32(O_ORDER, ++this.orders);
    s.setBigUint64(O_T_FEED, v.getBigUint64(O_T_FEED));
    s.setBigUint64(O_T_RISK, 0n);
    s.setBigUint64(O_T_STRATEGY, nowNs());
    s.commit();
  }

  stats(): { quotes: number; orders: number } {
    return { quotes: this.quotes, orders: this.orders };
  }
}
