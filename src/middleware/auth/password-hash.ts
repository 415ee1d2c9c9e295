import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import bcrypt from 'bcryptjs';

// Password hashes, the only form a password may take in a config. Two formats:
//
//   bcrypt  $2b$12$<22 chars of salt><31 chars of hash>  ($2a$ and $2y$ too): the format of
//           htpasswd -B, Caddy and most tools. bcryptjs is plain JavaScript: it runs on the event
//           loop in slices (its async compare), so a cost of 12 is ~250 ms of this process's CPU.
//   scrypt  $scrypt$ln=15,r=8,p=1$<salt>$<hash>  (salt and hash in base64 without padding, as
//           in the PHC string format): N = 2^ln, checked with node:crypto's scrypt, which runs on
//           libuv's thread pool, off the event loop.
//
// The bounds below keep one check from costing seconds of CPU or gigabytes of memory.

/** bcrypt costs accepted: below 4 bcrypt is undefined; above 15 bcryptjs takes seconds per check. */
export const BCRYPT_COST = { min: 4, max: 15, default: 12 } as const;
/** scrypt log2(N) accepted; 15 (N = 32768, 32 MiB with r = 8) is what hash-password makes. */
export const SCRYPT_LN = { min: 10, max: 20, default: 15 } as const;
/** The most memory one scrypt check may take (128 * N * r bytes). */
const SCRYPT_MAX_MEMORY = 256 * 1024 * 1024;

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const SCRYPT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{11,88})\$([A-Za-z0-9+/]{22,88})$/;

export type PasswordHash =
  | { readonly algorithm: 'bcrypt'; readonly encoded: string }
  | { readonly algorithm: 'scrypt'; readonly encoded: string; readonly options: ScryptOptions & { N: number; r: number; p: number }; readonly salt: Buffer; readonly hash: Buffer };

/** Why `value` is not a usable password hash, or undefined when it is one. Never repeats the value. */
export function passwordHashProblem(value: string): string | undefined {
  if (value.startsWith('$2')) {
    const m = BCRYPT.exec(value);
    if (!m) return 'malformed bcrypt hash (expected $2b$<cost>$ and 53 characters of salt and hash)';
    const cost = Number(m[1]);
    if (cost < BCRYPT_COST.min || cost > BCRYPT_COST.max) return `bcrypt cost ${cost} is outside ${BCRYPT_COST.min}..${BCRYPT_COST.max}`;
    return undefined;
  }
  if (value.startsWith('$scrypt$')) {
    const m = SCRYPT.exec(value);
    if (!m) return 'malformed scrypt hash (expected $scrypt$ln=<n>,r=<n>,p=<n>$<base64 salt>$<base64 hash>)';
    const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (ln < SCRYPT_LN.min || ln > SCRYPT_LN.max) return `scrypt ln=${ln} is outside ${SCRYPT_LN.min}..${SCRYPT_LN.max}`;
    if (r < 1 || p < 1 || p > 16) return 'scrypt r must be at least 1 and p 1..16';
    if (128 * 2 ** ln * r > SCRYPT_MAX_MEMORY) return `scrypt ln=${ln},r=${r} needs more than ${SCRYPT_MAX_MEMORY / 1024 / 1024} MiB per check`;
    return undefined;
  }
  if (value.startsWith('$')) return 'unknown password hash format (expected bcrypt $2b$... or scrypt $scrypt$...)';
  return 'this looks like a plain password: the config takes password hashes only (bcrypt $2b$... or scrypt $scrypt$...); make one with `switchyard hash-password`';
}

/** Parses a hash that passwordHashProblem accepted. */
export function parsePasswordHash(encoded: string): PasswordHash {
  const problem = passwordHashProblem(encoded);
  if (problem) throw new Error(problem);
  const m = SCRYPT.exec(encoded);
  if (!m) return { algorithm: 'bcrypt', encoded };
  const [N, r, p] = [2 ** Number(m[1]), Number(m[2]), Number(m[3])];
  return {
    algorithm: 'scrypt',
    encoded,
    options: { N, r, p, maxmem: 2 * 128 * N * r + 1024 * 1024 },
    salt: Buffer.from(m[4], 'base64'),
    hash: Buffer.from(m[5], 'base64'),
  };
}

function scrypt(password: string | Buffer, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCallback(password, salt, length, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** Whether `password` matches `hash`; asynchronous for both algorithms, so the event loop keeps serving. */
export async function verifyPassword(password: string, hash: PasswordHash): Promise<boolean> {
  if (hash.algorithm === 'bcrypt') return bcrypt.compare(password, hash.encoded);
  const derived = await scrypt(password, hash.salt, hash.hash.length, hash.options);
  return timingSafeEqual(derived, hash.hash);
}

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

/** A new hash of `password` in the format of `algorithm`, with the default cost. */
export async function hashPassword(password: string, algorithm: 'bcrypt' | 'scrypt'): Promise<string> {
  if (algorithm === 'bcrypt') return bcrypt.hash(password, await bcrypt.genSalt(BCRYPT_COST.default));
  const ln = SCRYPT_LN.default;
  const r = 8;
  const p = 1;
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, { N: 2 ** ln, r, p, maxmem: 2 * 128 * 2 ** ln * r + 1024 * 1024 });
  return `$scrypt$ln=${ln},r=${r},p=${p}$${b64(salt)}$${b64(key)}`;
}

/** bcrypt reads at most 72 bytes of a password: a longer one would be cut without a word. */
export function bcryptTruncates(password: string): boolean {
  return bcrypt.truncates(password);
}
