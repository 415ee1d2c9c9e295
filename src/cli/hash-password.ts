import { bcryptTruncates, hashPassword } from '../middleware/auth/password-hash.ts';

// `switchyard hash-password [--algorithm bcrypt|scrypt]`: the hash of a password for basicAuth's
// `users` (a config holds hashes only). The password is read from the terminal without echo
// (asked twice), or from stdin when that is not a terminal (one trailing newline dropped), never
// from argv, where other users of the machine could see it. The hash is the only output.

/** The longest password read; more is a mistake (a file piped in by accident). */
const MAX_PASSWORD_BYTES = 4096;

class HashPasswordError extends Error {
  readonly exitCode = 2;
}

/** Reads one line from a terminal with echo off; Ctrl-C quits, backspace erases. */
function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.resume();
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\x04') return done();
        if (ch === '\x03') return done(Object.assign(new Error('cancelled'), { exitCode: 130 }));
        if (ch === '\x7f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else value += ch;
        if (Buffer.byteLength(value) > MAX_PASSWORD_BYTES) return done(new HashPasswordError(`a password longer than ${MAX_PASSWORD_BYTES} bytes`));
      }
    };
    stdin.on('data', onData);
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_PASSWORD_BYTES) throw new HashPasswordError(`stdin holds more than ${MAX_PASSWORD_BYTES} bytes: expected one password`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export async function hashPasswordCommand(options: { algorithm: 'bcrypt' | 'scrypt' }): Promise<void> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await readHidden('password: ');
    const again = await readHidden('password again: ');
    if (again !== password) throw new HashPasswordError('the two passwords differ');
  } else password = await readStdin();
  if (password === '') throw new HashPasswordError('empty password');
  if (options.algorithm === 'bcrypt' && bcryptTruncates(password)) {
    throw new HashPasswordError('bcrypt reads only the first 72 bytes of a password; use --algorithm scrypt for a longer one');
  }
  process.stdout.write(`${await hashPassword(password, options.algorithm)}\n`);
}
