import type { RingView } from '../../src/ipc/index.ts';
import type { Control } from './control.ts';
import { latencyHistogram, record, summarize, type LatencySummary } from './latency.ts';
import { KIND_ORDER, MESSAGE_BYTES, O_INSTRUMENT, O_KIND, O_QTY, O_SIDE, O_T_FEED, O_T_RISK, O_T_STRATEGY, SIDE_BUY, nowNs } from './message.ts';

// The order gateway: the last stage, where an order would leave for the exchange. Here it is
// "sent" by being counted and booked (every order fills at once), and its latency recorded:
// end to end from the feed's stamp on the quote, and per hop. With the kill switch tripped it
// sends nothing more: orders that had passed risk just before are held and counted.

export interface GatewayKill {
  /** Orders sent before the gateway first saw the switch tripped: the total stays here. */
  sent: number;
}

export interface GatewayStats {
  received: number;
  sent: number;
  held: number;
  maxAbsPosition: number;
  /** Feed -> gateway, orders sent since the previous report. */
  interval: LatencySummary;
  /** Feed -> gateway, every order sent. */
  total: LatencySummary;
  hops: { feedToStrategy: LatencySummary; strategyToRisk: LatencySummary; riskToGateway: LatencySummary };
}

export class Gateway {
  received = 0;
  sent = 0;
  held = 0;
  kill: GatewayKill | undefined;
  private readonly position: Float64Array;
  private maxAbs = 0;
  private readonly e2e = latencyHistogram();
  private readonly e2eInterval = latencyHistogram();
  private readonly hop1 = latencyHistogram();
  private readonly hop2 = latencyHistogram();
  private readonly hop3 = latencyHistogram();

  constructor(
    private readonly control: Control,
    instruments: number,
  ) {
    this.position = new Float64Array(instruments);
  }

  handle(v: RingView): void {
    if (v.length !== MESSAGE_BYTES || v.getUint8(O_KIND) !== KIND_ORDER) throw new Error(`gateway: not an order (${v.length} bytes)`);
    this.received++;
    if (this.control.killed) {
      this.kill ??= { sent: this.sent };
      this.held++;
      return;
    }
    const t = nowNs();
    const tFeed = v.getBigUint64(O_T_FEED);
    const tStrategy = v.getBigUint64(O_T_STRATEGY);
    const tRisk = v.getBigUint64(O_T_RISK);
    const e2e = Number(t - tFeed);
    record(this.e2e, e2e);
    record(this.e2eInterval, e2e);
    record(this.hop1, Number(tStrategy - tFeed));
    record(this.hop2, Number(tRisk - tStrategy));
    record(this.hop3, Number(t - tRisk));
    const inst = v.getUint16(O_INSTRUMENT);
    const qty = v.getInt32(O_QTY);
    const p = (this.position[inst] += v.getUint8(O_SIDE) === SIDE_BUY ? qty : -qty);
    if (Math.abs(p) > this.maxAbs) this.maxAbs = Math.abs(p);
    this.sent++;
  }

  /** The figures so far; starts a new interval. */
  stats(): GatewayStats {
    const interval = summarize(this.e2eInterval);
    this.e2eInterval.reset();
    return {
      received: this.received,
      sent: this.sent,
      held: this.held,
      maxAbsPosition: this.maxAbs,
      interval,
      total: summarize(this.e2e),
      hops: { feedToStrategy: summarize(this.hop1), strategyToRisk: summarize(this.hop2), riskToGateway: summarize(this.hop3) },
    };
  }
}
