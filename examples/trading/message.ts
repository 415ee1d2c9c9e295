import type { RingSlot, RingView } from '../../src/ipc/index.ts';

// The one message layout every stage of the pipeline reads and writes in place: 60 bytes,
// little-endian, read through RingView getters and written through RingSlot setters, so no stage
// allocates a buffer per message. 60 bytes plus the ring's 4-byte length header make 64-byte
// records, so in a power-of-two ring a record never runs over the ring's end (no message is ever
// gathered into scratch memory) and each one fills exactly one cache line.
//
//   offset  type  field
//   0       u8    kind        1 quote (feed -> strategy), 2 order (strategy -> risk -> gateway)
//   1       u8    side        0 none (quote), 1 buy, 2 sell
//   2       u16   instrument  0 .. instruments-1
//   4       u32   quote       the feed's sequence number of the quote (an order carries its quote's)
//   8       f64   price       quote: last price; order: limit price
//   16      i32   qty         quote: size; order: quantity (> 0; the side gives the sign)
//   20      u32   order       order id (1, 2, ...; 0 on quotes)
//   24      u64   tFeed       ns, process.hrtime (CLOCK_MONOTONIC: one clock for every process)
//   32      u64   tStrategy   ns, when the strategy wrote the order
//   40      u64   tRisk       ns, when risk passed it
//   48      12 bytes reserved (zero)

export const MESSAGE_BYTES = 60;

export const KIND_QUOTE = 1;
export const KIND_ORDER = 2;
export const SIDE_BUY = 1;
export const SIDE_SELL = 2;

export const O_KIND = 0;
export const O_SIDE = 1;
export const O_INSTRUMENT = 2;
export const O_QUOTE = 4;
export const O_PRICE = 8;
export const O_QTY = 16;
export const O_ORDER = 20;
export const O_T_FEED = 24;
export const O_T_STRATEGY = 32;
export const O_T_RISK = 40;

/** Nanoseconds on the clock all stages share. */
export const nowNs = (): bigint => process.hrtime.bigint();

/** A quote or an order as plain values (for tests and printing; the stages read fields in place). */
export interface Message {
  kind: number;
  side: number;
  instrument: number;
  quote: number;
  price: number;
  qty: number;
  order: number;
  tFeed: bigint;
  tStrategy: bigint;
  tRisk: bigint;
}

export function readMessage(v: RingView): Message {
  if (v.length !== MESSAGE_BYTES) throw new RangeError(`a pipeline message is ${MESSAGE_BYTES} bytes (got ${v.length})`);
  return {
    kind: v.getUint8(O_KIND),
    side: v.getUint8(O_SIDE),
    instrument: v.getUint16(O_INSTRUMENT),
    quote: v.getUint32(O_QUOTE),
    price: v.getFloat64(O_PRICE),
    qty: v.getInt32(O_QTY),
    order: v.getUint32(O_ORDER),
    tFeed: v.getBigUint64(O_T_FEED),
    tStrategy: v.getBigUint64(O_T_STRATEGY),
    tRisk: v.getBigUint64(O_T_RISK),
  };
}

export function writeMessage(s: RingSlot, m: Message): void {
  s.setUint8(O_KIND, m.kind);
  s.setUint8(O_SIDE, m.side);
  s.setUint16(O_INSTRUMENT, m.instrument);
  s.setUint32(O_QUOTE, m.quote);
  s.setFloat64(O_PRICE, m.price);
  s.setInt32(O_QTY, m.qty);
  s.setUint32(O_ORDER, m.order);
  s.setBigUint64(O_T_FEED, m.tFeed);
  s.setBigUint64(O_T_STRATEGY, m.tStrategy);
  s.setBigUint64(O_T_RISK, m.tRisk);
  s.setUint32(48, 0);
  s.setUint32(52, 0);
  s.setUint32(56, 0);
}

/** Copies an order from `v` into `s` field by field (no intermediate object), then stamps tRisk. */
export function forwardOrder(v: RingView, s: RingSlot, tRisk: bigint): void {
  s.setUint8(O_KIND, KIND_ORDER);
  s.setUint8(O_SIDE, v.getUint8(O_SIDE));
  s.setUint16(O_INSTRUMENT, v.getUint16(O_INSTRUMENT));
  s.setUint32(O_QUOTE, v.getUint32(O_QUOTE));
  s.setFloat64(O_PRICE, v.getFloat64(O_PRICE));
  s.setInt32(O_QTY, v.getInt32(O_QTY));
  s.setUint32(O_ORDER, v.getUint32(O_ORDER));
  s.setBigUint64(O_T_FEED, v.getBigUint64(O_T_FEED));
  s.setBigUint64(O_T_STRATEGY, v.getBigUint64(O_T_STRATEGY));
  s.setBigUint64(O_T_RISK, tRisk);
  s.setUint32(48, 0);
  s.setUint32(52, 0);
  s.setUint32(56, 0);
}
