import type { Socket } from 'node:net';
import { eventLine, type Outbound } from './hub.ts';
import { ChatError, checkNick, checkRoom } from './protocol.ts';
import type { Welcome } from './session.ts';
import { StreamChatSession, type StreamSessionOptions } from './stream-session.ts';

// Chat over a plain text connection, as in the seeds' TCP chat server and for `nc` users
// (docs/chat.md, "TCP lines"): one line per message or `/command`, a guest nick and the default
// room from the start, own messages not echoed, presence as `* ` lines and errors as `! ` lines.

const HELP = [
  '* commands:',
  '*   /join <room>   leave this room, join <room> (its last messages are replayed)',
  '*   /nick <name>   change your nick',
  '*   /who           who is in the room',
  '*   /leave         leave the room',
  '*   /help          this list',
  '*   /quit          close the connection',
  '* anything else is a message to the room',
].join('\n') + '\n';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class LineChatSession extends StreamChatSession {
  /** The line being assembled across reads. */
  private parts: Buffer[] = [];
  private partLength = 0;
  /** Inside a line already refused as too long: bytes are dropped up to its newline. */
  private skipping = false;

  constructor(socket: Socket, options: StreamSessionOptions, onGone: (s: StreamChatSession, leaving: Promise<void>) => void) {
    super(socket, options, onGone);
    this.session.join(options.defaultRoom);
  }

  notice(text: string): void {
    this.end(`* ${text}\n`);
  }

  tell(text: string): void {
    this.write(`* ${text}\n`);
  }

  protected parse(chunk: Buffer): void {
    // A line may end in \r (not counted against the limit): one byte of slack until the \n shows.
    const limit = this.options.maxMessageLength;
    let off = 0;
    while (off < chunk.length) {
      const nl = chunk.indexOf(10, off);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.skipping) {
        if (this.partLength + (end - off) > limit + 1) {
          this.skipping = true;
          this.parts = [];
          this.partLength = 0;
          this.unit(() => this.reply('! line too long\n'));
        } else if (end > off) {
          this.parts.push(chunk.subarray(off, end));
          this.partLength += end - off;
        }
      }
      if (nl === -1) break;
      off = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      this.unit(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partLength));
      this.parts = [];
      this.partLength = 0;
    }
  }

  protected endOfInput(): void {
    if (this.skipping || this.partLength === 0) return;
    this.unit(Buffer.concat(this.parts, this.partLength));
    this.parts = [];
    this.partLength = 0;
  }

  /** One line, newline removed. */
  protected handle(raw: Buffer): void {
    const bytes = raw.length > 0 && raw[raw.length - 1] === 13 ? raw.subarray(0, -1) : raw;
    if (bytes.length > this.options.maxMessageLength) return this.reply('! line too long\n');
    let line: string;
    try {
      line = utf8.decode(bytes);
    } catch {
      return this.reply('! line is not valid UTF-8; dropped\n');
    }
    if (line.charCodeAt(0) !== 47 /* / */) {
      if (line.trim() !== '') this.session.say(line);
      return;
    }
    const space = line.search(/\s/);
    const command = (space === -1 ? line : line.slice(0, space)).toLowerCase();
    const arg = space === -1 ? '' : line.slice(space).trim();
    const session = this.session;
    switch (command) {
      case '/join': {
        if (arg === '') return this.reply('! usage: /join <room>\n');
        const bad = checkRoom(arg);
        if (bad) return this.session.inOrder(() => this.error(bad));
        return session.join(arg);
      }
      case '/nick': {
        if (arg === '') return this.reply('! usage: /nick <name>\n');
        const bad = checkNick(arg);
        if (bad) return this.session.inOrder(() => this.error(bad));
        return session.changeNick(arg);
      }
      case '/who':
        return session.who();
      case '/leave':
        return session.leave();
      case '/help':
        return this.reply(HELP);
      case '/quit':
        this.session.inOrder(() => this.write('* bye\n'));
        return this.finish();
      default:
        return this.reply(`! unknown command ${command.length > 32 ? `${command.slice(0, 32)}...` : command} (/help for commands)\n`);
    }
  }

  /** A local answer, in its place among the answers to commands sent before it. */
  private reply(text: string): void {
    this.session.inOrder(() => this.write(text));
  }

  event(out: Outbound): void {
    const e = out.event;
    // Own messages are not echoed; own joins are announced by the welcome line instead.
    if ((e.type === 'message' || e.type === 'join') && e.nick === this.session.streamNick) return;
    this.write(out.line);
  }

  left(out: Outbound): void {
    this.write(`* you left ${out.event.room}\n`);
  }

  welcome(w: Welcome): void {
    const head = w.first
      ? `* welcome to switchyard chat; you are ${w.nick} in ${w.room} (/help for commands)\n`
      : `* you are ${w.nick} in ${w.room}\n`;
    this.write(w.history.length === 0 ? head : head + w.history.map(eventLine).join(''));
  }

  presence(room: string, members: string[]): void {
    this.write(`* in ${room}: ${members.join(', ')}\n`);
  }

  error(err: ChatError): void {
    if (err.code === 'NOT_JOINED') return this.write('! not in a room; /join <room> first\n');
    this.write(`! ${err.message}\n`);
  }
}
