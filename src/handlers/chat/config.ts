import { z } from 'zod';
import { size } from '../../config/units.ts';
import { connectionRateLimit, websocketOptionsSchema } from '../ws/options.ts';
import { ROOM_RE } from './protocol.ts';

// The `chat` handler's config (docs/chat.md has the table). One schema for both kinds: on an
// http listener the WebSocket and page fields apply, on a tcp/unix listener the stream ones.

export const chatSchema = z
  .strictObject({
    type: z.literal('chat'),
    /** Room of `/chat/` and of a join without a room; where TCP line clients start. */
    defaultRoom: z.string().regex(ROOM_RE, 'expected a room name: 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit').default('lobby'),
    /** Messages of a room kept and replayed to whoever joins it (0: none). */
    history: z.number().int().min(0).max(1000).default(50),
    /** Longest message text in UTF-8 bytes (longer: TOO_LONG); also the longest line a TCP line client may send. */
    maxMessageLength: size().pipe(z.number().int().min(1).max(1024 * 1024)).default(4096),
    /** tcp/unix only: `lines` (text, for nc) or `frames` (u32 length + JSON, the WebSocket protocol). */
    framing: z.enum(['lines', 'frames']).default('lines'),
    /** tcp/unix with `framing: frames`: largest frame accepted from a client; larger gets FRAME_TOO_LARGE and the connection ends. */
    maxFrameSize: size().pipe(z.number().int().min(64).max(16 * 1024 * 1024)).default(64 * 1024),
    /**
     * tcp/unix only: requests (lines or frames) a client may make, `{ rate, per, burst }`; over it
     * the connection is simply not read for a while (TCP slows the client down). false: no limit.
     */
    rateLimit: connectionRateLimit(),
    /** tcp/unix only: bytes that may wait unread toward one client; a client over it is disconnected. */
    sendQueueLimit: size().pipe(z.number().int().min(1024)).default(1024 * 1024),
    /** http only: GET and HEAD serve the chat web page (`/chat/`, `/chat/<room>`, `/chat/_/<asset>`); false answers them 404. */
    page: z.boolean().default(true),
    /** http only: the limits of the WebSocket endpoint (message size, send queue, rate, pings, origins, deflate). */
    websocket: websocketOptionsSchema,
  })
  .superRefine((c, ctx) => {
    if (c.framing === 'frames' && c.maxFrameSize < c.maxMessageLength) {
      ctx.addIssue({ code: 'custom', path: ['maxFrameSize'], message: `maxFrameSize (${c.maxFrameSize}) must be at least maxMessageLength (${c.maxMessageLength}), or the longest messages could never be sent` });
    }
  });

export type ChatConfig = z.output<typeof chatSchema>;
