// Codecs and framing. Only length-prefixed frames so far (frame.ts, docs/frames.md).

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
