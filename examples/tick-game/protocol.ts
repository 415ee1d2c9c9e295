// The wire protocol, the same over WebSocket (one JSON text message each) and UDP (one JSON
// datagram each); README.md describes it for client writers.
//
// client -> server
//   {"t":"join"}                                  UDP only: become a player (WebSocket joins on connect)
//   {"t":"i","ack":T,"in":[[seq,dx,dy],...]}      inputs (oldest first), T = last snapshot tick received
//   {"t":"bye"}                                   UDP only: leave
// server -> client
//   {"t":"w","id":..,"tickRate":..,"speed":..,"width":..,"height":..,"history":..}   welcome
//   {"t":"s","tick":N,"base":B,"p":[[id,x,y],..],"g":[id,..],"ack":seq}              snapshot
//   {"t":"e","m":".."}    a message was refused (the player stays)
//   {"t":"k","m":".."}    kicked (UDP; a WebSocket is closed with 1008 and the reason)

/** Inputs one message may carry: a UDP client repeats its unacknowledged ones, a few at most. */
export const MAX_INPUTS_PER_MESSAGE = 8;
/** Longest client message accepted, bytes. */
export const MAX_CLIENT_MESSAGE = 1024;

export interface Input {
  readonly seq: number;
  readonly dx: number;
  readonly dy: number;
}

export type ClientMessage =
  | { readonly t: 'join' }
  | { readonly t: 'bye' }
  | { readonly t: 'i'; readonly ack: number; readonly inputs: readonly Input[] };

export class ProtocolError extends Error {}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isFinite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Parses one client message; throws ProtocolError saying what is wrong. */
export function parseClientMessage(data: Buffer): ClientMessage {
  if (data.length > MAX_CLIENT_MESSAGE) throw new ProtocolError(`message over ${MAX_CLIENT_MESSAGE} bytes`);
  let msg: unknown;
  try {
    msg = JSON.parse(data.toString('utf8'));
  } catch {
    throw new ProtocolError('not JSON');
  }
  if (typeof msg !== 'object' || msg === null) throw new ProtocolError('expected an object');
  const m = msg as Record<string, unknown>;
  if (m.t === 'join' || m.t === 'bye') return { t: m.t };
  if (m.t !== 'i') throw new ProtocolError('t must be "join", "i" or "bye"');
  if (!isInt(m.ack)) throw new ProtocolError('ack must be a tick number (0 for none)');
  if (!Array.isArray(m.in) || m.in.length === 0 || m.in.length > MAX_INPUTS_PER_MESSAGE) {
    throw new ProtocolError(`in must be a list of 1 to ${MAX_INPUTS_PER_MESSAGE} [seq, dx, dy]`);
  }
  const inputs: Input[] = [];
  for (const entry of m.in as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3 || !isInt(entry[0]) || !isFinite(entry[1]) || !isFinite(entry[2])) {
      throw new ProtocolError('each input must be [seq, dx, dy]: a whole seq and two numbers');
    }
    inputs.push({ seq: entry[0], dx: entry[1], dy: entry[2] });
  }
  return { t: 'i', ack: m.ack, inputs };
}
