// The chat protocol's client side as docs/chat.md defines it: name rules, error codes, and the
// parsing of one client JSON object (a WebSocket text message or a frame's payload) into a typed
// command. Everything a client can get wrong is answered here with an error code and a sentence,
// so the transports never have to reason about malformed input.

/** Room names: 1 to 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit. */
export const ROOM_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Nicks: 1 to 32 of the same characters, starting with a letter or digit. */
export const NICK_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

export const isRoomName = (s: string): boolean => ROOM_RE.test(s);
export const isNick = (s: string): boolean => NICK_RE.test(s);

export type ErrorCode = 'BAD_MESSAGE' | 'BAD_ROOM' | 'BAD_NICK' | 'NICK_TAKEN' | 'NOT_JOINED' | 'TOO_LONG' | 'UNAVAILABLE';

/** A refusal: the code and sentence of an `error` message. */
export class ChatError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ChatError';
  }
}

export type Command =
  | { type: 'join'; nick: string; room?: string; id?: string }
  | { type: 'message'; text: string; id?: string }
  | { type: 'nick'; nick: string; id?: string }
  | { type: 'who'; id?: string }
  | { type: 'leave'; id?: string };

/** A parse result: the command, or the error to send back (with the client's `id` when it gave one). */
export type Parsed = { ok: true; command: Command } | { ok: false; error: ChatError; id?: string };

/** Longest `id` copied back into errors; a longer one is refused rather than echoed. */
const MAX_ID_LENGTH = 128;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Quotes a client-supplied value for an error sentence, shortened so errors stay small. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
}

export function checkRoom(room: string): ChatError | undefined {
  return isRoomName(room) ? undefined : new ChatError('BAD_ROOM', `bad room name ${quote(room)}: 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit`);
}

export function checkNick(nick: string): ChatError | undefined {
  return isNick(nick) ? undefined : new ChatError('BAD_NICK', `bad nick ${quote(nick)}: 1 to 32 of A-Z a-z 0-9 _ . -, starting with a letter or digit`);
}

/** TOO_LONG when `text` takes more than `max` bytes of UTF-8. */
export function checkText(text: string, max: number): ChatError | undefined {
  // Each UTF-16 unit is at most 3 UTF-8 bytes: most texts are decided without counting.
  if (text.length * 3 <= max) return undefined;
  const bytes = Buffer.byteLength(text);
  return bytes > max ? new ChatError('TOO_LONG', `message of ${bytes} bytes is over the limit of ${max}`) : undefined;
}

/** Parses one client message (UTF-8 JSON). Name rules are checked here; text length is not (see checkText). */
export function parseCommand(data: Uint8Array): Parsed {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    return bad('message is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad('message is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('message must be a JSON object');
  const o = value as Record<string, unknown>;
  let id: string | undefined;
  if (o.id !== undefined) {
    if (typeof o.id !== 'string' || o.id.length > MAX_ID_LENGTH) return bad(`"id" must be a string of at most ${MAX_ID_LENGTH} characters`);
    id = o.id;
  }
  const fail = (error: ChatError): Parsed => ({ ok: false, error, id });
  const str = (field: string): string | ChatError => {
    const v = o[field];
    if (typeof v !== 'string') return new ChatError('BAD_MESSAGE', v === undefined ? `"${field}" is missing` : `"${field}" must be a string`);
    return v;
  };
  switch (o.type) {
    case 'join': {
      const nick = str('nick');
      if (nick instanceof ChatError) return fail(nick);
      const nickError = checkNick(nick);
      if (nickError) return fail(nickError);
      if (o.room === undefined) return { ok: true, command: { type: 'join', nick, id } };
      const room = str('room');
      if (room instanceof ChatError) return fail(room);
      const roomError = checkRoom(room);
      if (roomError) return fail(roomError);
      return { ok: true, command: { type: 'join', nick, room, id } };
    }
    case 'message': {
      const t = str('text');
      if (t instanceof ChatError) return fail(t);
      if (t.length === 0) return fail(new ChatError('BAD_MESSAGE', '"text" must not be empty'));
      return { ok: true, command: { type: 'message', text: t, id } };
    }
    case 'nick': {
      const nick = str('nick');
      if (nick instanceof ChatError) return fail(nick);
      const nickError = checkNick(nick);
      if (nickError) return fail(nickError);
      return { ok: true, command: { type: 'nick', nick, id } };
    }
    case 'who':
      return { ok: true, command: { type: 'who', id } };
    case 'leave':
      return { ok: true, command: { type: 'leave', id } };
    case undefined:
      return fail(new ChatError('BAD_MESSAGE', '"type" is missing'));
    default:
      return fail(new ChatError('BAD_MESSAGE', `unknown type ${typeof o.type === 'string' ? quote(o.type) : String(o.type)}; expected join, message, nick, who or leave`));
  }

  function bad(message: string): Parsed {
    return { ok: false, error: new ChatError('BAD_MESSAGE', message) };
  }
}
