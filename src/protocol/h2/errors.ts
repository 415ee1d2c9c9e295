/**
 * The peer broke HTTP/2: the connection (or, for a stream error, the stream) ends with `h2Code`
 * (RFC 9113 §7), sent back in GOAWAY or RST_STREAM. Thrown by the frame reader and by either end
 * (the upstream client, the listener's engine).
 */
export class H2ProtocolError extends Error {
  constructor(
    message: string,
    readonly h2Code: number,
  ) {
    super(message);
    this.name = 'H2ProtocolError';
  }
}
