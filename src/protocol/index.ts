// Codecs, framing and limits: length-prefixed frames (frame.ts, docs/frames.md) and the token
// bucket every rate limit runs on (token-bucket.ts).

export {
  FRAME_HEADER_SIZE,
  MAX_FRAME_LENGTH,
  FrameDecoder,
  FrameError,
  encodeFrame,
  frameHeader,
  writeFrame,
  readFrames,
  type FrameDecoderOptions,
  type FrameErrorCode,
  type FrameReader,
  type ReadFramesOptions,
} from './frame.ts';
export { drained } from './drained.ts';
export {
  TokenBucket,
  tokenBucketPolicy,
  tokenBucketSchema,
  type TokenBucketConfig,
  type TokenBucketInput,
  type TokenBucketPolicy,
} from './token-bucket.ts';
