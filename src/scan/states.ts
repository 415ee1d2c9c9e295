// Port states and the reasons behind them, named as nmap names them for a connect scan (-sT)
// and a UDP scan (-sU), so that results read the same and scripts that parse one parse both.

export type PortState = 'open' | 'closed' | 'filtered' | 'open|filtered';

/**
 * Why a port got its state: `syn-ack` (a connection was made), `conn-refused` (a reset),
 * `no-response` (nothing within the timeout, every try), `host-unreach`, `net-unreach`,
 * `admin-prohibited` (the network or a firewall said no), `udp-response`, `port-unreach`
 * (an ICMP port unreachable to a UDP probe).
 */
export type StateReason =
  | 'syn-ack'
  | 'conn-refused'
  | 'no-response'
  | 'host-unreach'
  | 'net-unreach'
  | 'admin-prohibited'
  | 'udp-response'
  | 'port-unreach';

export interface ProbeOutcome {
  state: PortState;
  reason: StateReason;
}

/** Errors that mean "the path to the host said no", which nmap reports as filtered. */
export function unreachableReason(code: string | undefined): StateReason | undefined {
  switch (code) {
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
      return 'host-unreach';
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return 'net-unreach';
    case 'EACCES':
    case 'EPERM':
      return 'admin-prohibited';
    default:
      return undefined;
  }
}

/** Errors of this machine (out of sockets or ports), not of the target: wait and try again. */
export function isLocalShortage(code: string | undefined): boolean {
  return code === 'EMFILE' || code === 'ENFILE' || code === 'EADDRNOTAVAIL' || code === 'ENOBUFS' || code === 'ENOMEM';
}
