import type { Metrics } from '../observe/metrics.ts';
import type { EndpointObserver } from './endpoint.ts';

// The QUIC endpoint's counters in the daemon's registry, labelled by listener: connections and
// bytes in the families every listener shares (switchyard_total_connections, ..._bytes_sent,
// ..._bytes_received count stream payload), the rest in switchyard_quic_* families.

export function quicMetricsObserver(metrics: Metrics, listener: string): EndpointObserver {
  const total = metrics.totalConnections.labels(listener);
  const active = metrics.activeConnections.labels(listener);
  const bytesSent = metrics.totalBytesSent.labels(listener);
  const bytesReceived = metrics.totalBytesReceived.labels(listener);
  const streams = metrics.counter('switchyard_quic_streams_total', 'QUIC streams opened, by listener, kind (bidi, uni) and who opened them (peer, local).', ['listener', 'kind', 'initiator']);
  const streamCells = {
    'bidi/peer': streams.labels(listener, 'bidi', 'peer'),
    'bidi/local': streams.labels(listener, 'bidi', 'local'),
    'uni/peer': streams.labels(listener, 'uni', 'peer'),
    'uni/local': streams.labels(listener, 'uni', 'local'),
  };
  const datagrams = metrics.counter('switchyard_quic_datagrams_total', 'UDP datagrams of QUIC connections, by listener and direction (in, out).', ['listener', 'direction']);
  const datagramsIn = datagrams.labels(listener, 'in');
  const datagramsOut = datagrams.labels(listener, 'out');
  const udpBytes = metrics.counter('switchyard_quic_udp_bytes_total', 'UDP payload bytes of QUIC connections (packets with their headers and encryption), by listener and direction.', ['listener', 'direction']);
  const udpIn = udpBytes.labels(listener, 'in');
  const udpOut = udpBytes.labels(listener, 'out');
  const failures = metrics.counter('switchyard_quic_handshake_failures_total', 'QUIC handshakes that did not complete, by listener and reason (alpn, certificate, timeout, refused, tls).', ['listener', 'reason']);
  const lost = metrics.counter('switchyard_quic_lost_packets_total', 'Packets quiche declared lost, by listener (counted when each connection ends).', ['listener']).labels(listener);
  const dropped = metrics.counter('switchyard_quic_dropped_datagrams_total', 'Datagrams dropped before reaching a connection, by listener and reason (not-quic, unknown-connection, short-initial, bad-token, not-accepting).', ['listener', 'reason']);
  const retries = metrics.counter('switchyard_quic_retries_total', 'Stateless retries sent (address validation), by listener.', ['listener']).labels(listener);
  const refused = metrics.counter('switchyard_quic_refused_connections_total', 'Connections refused at the connection limit, by listener.', ['listener']).labels(listener);
  return {
    streamOpened(kind, initiator) {
      streamCells[`${kind}/${initiator}`].inc();
    },
    bytes(read, written) {
      if (read) bytesReceived.inc(read);
      if (written) bytesSent.inc(written);
    },
    datagrams(received, receivedBytes, sent, sentBytes) {
      if (received) {
        datagramsIn.inc(received);
        udpIn.inc(receivedBytes);
      }
      if (sent) {
        datagramsOut.inc(sent);
        udpOut.inc(sentBytes);
      }
    },
    connectionOpened() {
      total.inc();
      active.inc();
    },
    connectionClosed() {
      active.dec();
    },
    handshakeFailed(_remote, reason) {
      failures.labels(listener, reason).inc();
    },
    datagramDropped(reason) {
      dropped.labels(listener, reason).inc();
    },
    retrySent() {
      retries.inc();
    },
    refused() {
      refused.inc();
    },
    lostPackets(count) {
      if (count > 0) lost.inc(count);
    },
  };
}
