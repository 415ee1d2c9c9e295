// One accepted WebSocket connection as handlers see it, with the endpoint's limits already in
// force: oversize messages close it (1009), a reader that falls behind is closed (1013) or has
// messages dropped, a flood of messages closes it (1008), a peer that stops answering pings is
// cut off. Handlers only send, receive and close.

export interface WsPeer {
  /** Unique in this process (`ws-<n>`). */
  readonly id: string;
  /** The client's address as the socket sees it. */
  readonly remoteAddress: string;
  /** False once closing has begun. */
  readonly open: boolean;
  /** Bytes queued toward the client and not yet taken by the kernel. */
  readonly bufferedAmount: number;
  /**
   * Queues one message (a string as a text message, a Buffer as binary unless `binary` says
   * otherwise). False when it was not queued: the peer is closed, or the send queue is over
   * its limit (the peer is then closed with 1013, or under the `drop` policy the message is
   * dropped and counted).
   */
  send(data: string | Buffer, binary?: boolean): boolean;
  /** Starts the closing handshake; the socket is destroyed if the client does not answer in time. */
  close(code: number, reason: string): void;
  /** The one message handler (a later call replaces it). Text messages arrive with isBinary false. */
  onMessage(fn: (data: Buffer, isBinary: boolean) => void): void;
  /** Called once when the connection is gone, whoever closed it. */
  onClose(fn: (code: number, reason: string) => void): void;
}
