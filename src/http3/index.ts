// HTTP/3 (RFC 9114) and QPACK (RFC 9204, static table) over Switchyard's QUIC transport: a client
// and the codec. The server side is an http listener's `http3:` option (docs/http3.md).

export { Http3Client, Http3RequestError, type Http3ClientOptions, type Http3RequestInit, type Http3ClientResponse } from './client.ts';
export { Http3Error, H3, errorName } from './errors.ts';
export { decodeFieldSection, encodeFieldSection, FieldSectionTooLarge, type FieldLine, type FieldSectionLimits } from './qpack.ts';
export { FRAME, STREAM_TYPE, SETTING, FrameReader, encodeFrame, encodeSettings, parseSettings, type FrameSink } from './frames.ts';
