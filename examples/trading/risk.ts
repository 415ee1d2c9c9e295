import type { RingChannel, RingView } from '../../src/ipc/index.ts';
import type { Control } from './control.ts';
import { KIND_ORDER, MESSAGE_BYTES, O_INSTRUMENT, O_KIND, O_ORDER, O_QTY, O_SIDE, SIDE_BUY, SIDE_SELL, forwardOrder, nowNs } from './message.ts';
import type { TradingOptions } from './options.ts';

// Risk checks, in this order, on every order: the kill switch (one atomic load of the control
// block), the order's size, the position it would leave (every passed order is assumed filled,
// so the position can only be over-stated), and the order rate (a token bucket holding a tenth
// of a second's worth). An order that passes goes on to the gateway with its tRisk stamp; one
// that fails is counted under its reason and goes no further.

export const REJECT_REASONS = ['kill-switch', 'size', 'position', 'rate'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

const SEND_TIMEOUT_MS = 10_000;

export interface RiskKill {
  /** Orders risk had seen when it first saw the switch tripped (that one included). */
  seen: number;
  /** Orders it had passed by then: none pass after. */
  passed: number;
}

export class Risk {
  seen = 0;
  passed = 0;
  readonly rejected: Record<RejectReason, number> = { 'kill-switch': 0, size: 0, position: 0, rate: 0 };
  readonly position: Float64Array;
  /** Set when this stage first sees the kill switch; the runner reports it. */
  kill: RiskKill | undefined;
  private tokens: number;
  private readonly burst: number;
  private lastRefill = nowNs();

  constructor(
    private readonly out: RingChannel,
    private readonly control: Control,
    private readonly o: TradingOptions,
  ) {
    this.position = new Float64Array(o.instruments);
    this.burst = Math.max(1, o.maxOrderRate / 10);
    this.tokens = this.burst;
  }

  handle(v: RingView): void {
    if (v.length !== MESSAGE_BYTES || v.getUint8(O_KIND) !== KIND_ORDER) throw new Error(`risk: not an order (${v.length} bytes)`);
    this.seen++;
    if (this.o.killAfterOrders > 0 && this.seen === this.o.killAfterOrders) this.control.kill('order count', nowNs());
    if (this.control.killed) {
      this.kill ??= { seen: this.seen, passed: this.passed };
      this.rejected['kill-switch']++;
      return;
    }
    const qty = v.getInt32(O_QTY);
    if (qty <= 0 || qty > this.o.maxQty) {
      this.rejected.size++;
      return;
    }
    const side = v.getUint8(O_SIDE);
    const inst = v.getUint16(O_INSTRUMENT);
    if ((side !== SIDE_BUY && side !== SIDE_SELL) || inst >= this.position.length) throw new Error(`risk: order ${v.getUint32(O_ORDER)} has side ${side}, instrument ${inst}`);
    const next = this.position[inst] + (side === SIDE_BUY ? qty : -qty);
    if (Math.abs(next) > this.o.maxPosition) {
      this.rejected.position++;
      return;
    }
    const t = nowNs();
    this.tokens = Math.min(this.burst, this.tokens + (Number(t - this.lastRefill) * this.o.maxOrderRate) / 1e9);
    this.lastRefill = t;
    if (this.tokens < 1) {
      this.rejected.rate++;
      return;
    }
    this.tokens -= 1;
    this.position[inst] = next;
    this.passed++;
    const s = this.out.reserve(MESSAGE_BYTES, SEND_TIMEOUT_MS);
    forwardOrder(v, s, nowNs());
    s.commit();
  }

  stats(): { seen: number; passed: number; rejected: Record<RejectReason, number>; maxAbsPosition: number } {
    let maxAbs = 0;
    for (const p of this.position) maxAbs = Math.max(maxAbs, Math.abs(p));
    return { seen: this.seen, passed: this.passed, rejected: { ...this.rejected }, maxAbsPosition: maxAbs };
  }
}
