import { z } from 'zod';
import { duration, size } from '../config/units.ts';

// The `http3` field of an http listener (docs/http3.md): HTTP/3 over QUIC on the same host and
// port over UDP, with the listener's certificates, routes, middleware and handlers. Needs `tls`
// (checked where the listener schema is: a config error naming `http3`).

const http3Limits = z.strictObject({
  /**
   * Largest request head, counted as HTTP/3 does (name and value bytes plus 32 per field);
   * advertised to clients as SETTINGS_MAX_FIELD_SECTION_SIZE. Larger gets 431. Default: the
   * listener's limits.maxHeaderSize.
   */
  maxFieldSectionSize: size().optional(),
  /** A QUIC connection with no packet either way for this long is closed (QUIC's max_idle_timeout). Default 30s. */
  idleTimeout: duration().default(30_000),
  /** Requests one connection may have open at once (QUIC's initial_max_streams_bidi). */
  maxStreams: z.number().int().min(1).max(10_000).default(100),
  /**
   * Accept 0-RTT from clients resuming an earlier session (docs/http3.md, 0-RTT). Early data can
   * be replayed by anyone who captured it, so only GET, HEAD and OPTIONS are served from it
   * (with `Early-Data: 1` added for handlers and upstreams); other methods get 425 Too Early and
   * the client retries after the handshake. Default false (`http3: true` too).
   */
  earlyData: z.boolean().default(false),
});

/**
 * `true`: HTTP/3 with the defaults; an object: with these settings; `false` or left out: none.
 * When on, HTTPS responses of the listener carry `Alt-Svc: h3=":PORT"; ma=86400`, so that
 * browsers move to HTTP/3.
 */
export const http3Schema = z.union([z.boolean(), http3Limits]).optional();

export type Http3Config = z.output<typeof http3Limits>;

/** The limits in force for a listener's `http3` value; undefined when HTTP/3 is off. */
export function http3Settings(value: z.output<typeof http3Schema>): Http3Config | undefined {
  if (value === undefined || value === false) return undefined;
  return value === true ? http3Limits.parse({}) : value;
}
