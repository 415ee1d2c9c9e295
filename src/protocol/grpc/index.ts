// gRPC and gRPC-Web on the wire, without HTTP or protobuf: the pieces a server (the grpc
// handler), a client and a translating proxy share. One concept per file:
//
//   status.ts        status codes and names; HTTP status -> gRPC status for answers without grpc-status
//   message.ts       grpc-message percent-encoding
//   errors.ts        GrpcError: a status and its text, thrown by services, seen by clients
//   timeout.ts       grpc-timeout parse/format
//   framing.ts       the 5-byte message prefix: encode, and an incremental decoder with a size limit
//   content-type.ts  application/grpc, grpc-web, grpc-web-text (+format)
//   base64.ts        streaming base64 of gRPC-Web text mode (padding mid-stream)
//   web.ts           gRPC-Web: the trailers frame, text-mode Transforms, a response decoder
//   reply.ts         ending a call: trailers, or a trailers-only response
//
// docs/grpc.md describes the handler built on these; PROTOCOL-HTTP2.md and PROTOCOL-WEB.md in
// grpc/grpc are the specifications.

export { GrpcStatus, grpcStatusName, grpcStatusFromName, grpcStatusFromHttp, isGrpcStatus, parseGrpcStatus, type GrpcStatusName } from './status.ts';
export { encodeGrpcMessage, decodeGrpcMessage } from './message.ts';
export { GrpcError, toGrpcError } from './errors.ts';
export { parseGrpcTimeout, formatGrpcTimeout, GrpcTimeoutError, MAX_GRPC_TIMEOUT_MS } from './timeout.ts';
export {
  GRPC_FRAME_HEADER_SIZE,
  GRPC_FLAG_COMPRESSED,
  GRPC_FLAG_TRAILERS,
  GRPC_MAX_FRAME_LENGTH,
  GRPC_DEFAULT_MAX_MESSAGE_SIZE,
  GrpcFrameDecoder,
  GrpcFrameError,
  grpcFrameHeader,
  encodeGrpcFrame,
  type GrpcFrame,
  type GrpcFrameDecoderOptions,
  type GrpcFrameErrorCode,
} from './framing.ts';
export { parseGrpcContentType, formatGrpcContentType, type GrpcContentType, type GrpcProtocol } from './content-type.ts';
export { Base64StreamDecoder, Base64Error, encodeBase64Chunk } from './base64.ts';
export {
  encodeGrpcWebTrailers,
  decodeGrpcWebTrailers,
  grpcWebTextDecoder,
  grpcWebTextEncoder,
  GrpcWebResponseDecoder,
  type GrpcWebResponseParts,
  type GrpcWebResponseDecoderOptions,
  type TrailerValues,
} from './web.ts';
export { replyGrpcStatus, replyGrpcError, respondHeadersOnly, grpcStatusFields, grpcTrailersOnlyHeaders, type GrpcStatusTarget } from './reply.ts';
