import { constants, type Stats } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { sep } from 'node:path';

// The one way from a client-supplied name to a file under a root directory, shared by `static`
// and `file-tcp`. Two steps:
//
//   parse  (pure)  the name -> decoded segments, or a reason it is malformed or refused.
//                  URL paths are percent-decoded exactly once, per segment, so an encoded `/`
//                  (%2f) or `\` (%5c) can never become a separator; the decoded bytes must be
//                  valid UTF-8 (overlong forms such as %c0%ae are invalid, hence refused).
//   lookup (fs)    segments -> realpath + stat, then the symlink and dotfile policy is checked on
//                  the REAL path, so a link inside the root that points outside (or at a
//                  dotfile) is caught however it is spelt.
//
// `open` re-checks after opening: the fd's own path (/proc/self/fd) must still be inside the
// root, which closes the race of a directory being swapped for a symlink between lookup and
// open. O_NONBLOCK keeps a FIFO swapped in at the last moment from blocking a threadpool thread.

export type DotfilesPolicy = 'deny' | 'allow';
/** within-root: symlinks may be followed while their target stays under the root; follow: anywhere; deny: none at all. */
export type SymlinkPolicy = 'within-root' | 'follow' | 'deny';

export interface FsRootOptions {
  readonly dotfiles: DotfilesPolicy;
  readonly symlinks: SymlinkPolicy;
}

/** A name split into decoded segments; `trailingSlash` says the client asked for a directory. */
export interface ParsedName {
  readonly kind: 'parsed';
  readonly segments: readonly string[];
  readonly trailingSlash: boolean;
}

/** Malformed input (bad escape, invalid UTF-8, NUL, backslash): the client's fault, HTTP 400. */
export interface BadName {
  readonly kind: 'bad-request';
  readonly reason: string;
}

/** Well-formed but not allowed (traversal, dotfile, symlink out of the root): answered as not found. */
export interface RefusedName {
  readonly kind: 'refused';
  readonly reason: string;
}

export interface NotFound {
  readonly kind: 'not-found';
}

export interface FoundEntry {
  readonly kind: 'file' | 'directory';
  /** Absolute real path (symlinks resolved), inside the root unless the policy is `follow`. */
  readonly path: string;
  readonly stat: Stats;
  /** Decoded segments the client asked for (not the symlink-resolved ones). */
  readonly segments: readonly string[];
}

export type ParseResult = ParsedName | BadName | RefusedName;
export type LookupResult = FoundEntry | RefusedName | NotFound;

/** Longest decoded name accepted, in bytes (Linux PATH_MAX). */
export const MAX_NAME_BYTES = 4096;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Splits a URL path (percent-encoded, starting with `/`) into decoded segments. */
export function parseUrlPath(path: string, options: Pick<FsRootOptions, 'dotfiles'>): ParseResult {
  if (path.charCodeAt(0) !== 47 /* / */) return bad('path does not start with /');
  if (path.length > MAX_NAME_BYTES * 3) return bad('path too long');
  const raw = path.slice(1).split('/');
  const trailingSlash = raw.length > 0 && raw[raw.length - 1] === '';
  if (trailingSlash) raw.pop();
  const segments: string[] = [];
  let total = 0;
  for (const r of raw) {
    const decoded = decodeSegment(r);
    if (typeof decoded !== 'string') return decoded;
    total += decoded.length + 1;
    const refused = checkSegment(decoded, options);
    if (refused) return refused;
    segments.push(decoded);
  }
  if (total > MAX_NAME_BYTES) return bad('path too long');
  return { kind: 'parsed', segments, trailingSlash };
}

/**
 * Splits a plain name (file-tcp: already text, no percent-encoding) into segments. Absolute
 * names are refused rather than re-rooted, so that `/etc/passwd` means nothing at all.
 */
export function parsePlainName(name: string, options: Pick<FsRootOptions, 'dotfiles'>): ParseResult {
  if (name.length === 0) return bad('empty name');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return bad('name too long');
  if (name.charCodeAt(0) === 47 /* / */) return refused('absolute name');
  const raw = name.split('/');
  const trailingSlash = raw[raw.length - 1] === '';
  if (trailingSlash) raw.pop();
  const segments: string[] = [];
  for (const s of raw) {
    const r = checkSegment(s, options);
    if (r) return r;
    segments.push(s);
  }
  return { kind: 'parsed', segments, trailingSlash };
}

/** Percent-decodes one segment exactly once; the bytes must form valid UTF-8. */
function decodeSegment(raw: string): string | BadName {
  if (!raw.includes('%')) {
    for (let i = 0; i < raw.length; i++) if (raw.charCodeAt(i) > 0x7e) return decodeBytes(raw);
    return raw;
  }
  return decodeBytes(raw);
}

function decodeBytes(raw: string): string | BadName {
  const bytes = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return bad('malformed percent-encoding');
      bytes[n++] = (hi << 4) | lo;
      i += 2;
    } else if (c > 0xff) {
      // node:http hands us the request line as latin1, one char per byte; more is not a URL.
      return bad('non-ASCII character in path');
    } else {
      bytes[n++] = c;
    }
  }
  try {
    return utf8.decode(bytes.subarray(0, n));
  } catch {
    return bad('path is not valid UTF-8');
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Rules every decoded segment obeys, whatever the protocol. */
function checkSegment(s: string, options: Pick<FsRootOptions, 'dotfiles'>): BadName | RefusedName | undefined {
  if (s.length === 0) return bad('empty path segment');
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return bad('control character in path');
    if (c === 47 /* / */) return bad('encoded slash in path');
    if (c === 92 /* \ */) return bad('backslash in path');
  }
  if (s === '.' || s === '..') return refused('dot segment');
  if (s.charCodeAt(0) === 46 /* . */ && options.dotfiles === 'deny') return refused('dotfile');
  return undefined;
}

/** A root directory and the policy for what below it may be served. */
export class FsRoot {
  private constructor(
    /** Real path of the root, without a trailing separator. */
    readonly dir: string,
    readonly options: FsRootOptions,
  ) {}

  /** Resolves and checks the root once at provisioning; throws a clear error when unusable. */
  static async open(dir: string, options: FsRootOptions): Promise<FsRoot> {
    let real: string;
    try {
      real = await realpath(dir);
    } catch (err) {
      throw new Error(`root ${JSON.stringify(dir)} is not usable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const st = await stat(real);
    if (!st.isDirectory()) throw new Error(`root ${JSON.stringify(dir)} is not a directory`);
    return new FsRoot(real === sep ? '' : real, options);
  }

  parseUrlPath(path: string): ParseResult {
    return parseUrlPath(path, this.options);
  }

  parsePlainName(name: string): ParseResult {
    return parsePlainName(name, this.options);
  }

  /** Finds parsed segments on disk and applies the symlink and dotfile policy to the real path. */
  async lookup(segments: readonly string[]): Promise<LookupResult> {
    const asked = segments.length === 0 ? this.dir || sep : `${this.dir}/${segments.join('/')}`;
    let real: string;
    let st: Stats;
    try {
      real = await realpath(asked);
      st = await stat(real);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'EACCES' || code === 'EPERM') return refused(code);
      return NOT_FOUND;
    }
    const escape = this.checkReal(real, asked);
    if (escape) return escape;
    if (st.isFile()) return { kind: 'file', path: real, stat: st, segments };
    if (st.isDirectory()) return { kind: 'directory', path: real, stat: st, segments };
    // FIFOs, sockets and devices: opening them could block or read something that is not a file.
    return refused('not a regular file');
  }

  /** Whether an absolute real path is one the policy allows serving. */
  private checkReal(real: string, asked: string): RefusedName | undefined {
    if (real === asked || this.options.symlinks === 'follow') return undefined;
    if (this.options.symlinks === 'deny') return refused('symlink');
    if (!this.contains(real)) return refused('symlink leaves the root');
    if (this.options.dotfiles === 'deny' && real.length > this.dir.length) {
      for (const s of real.slice(this.dir.length + 1).split('/')) if (s.charCodeAt(0) === 46) return refused('symlink to a dotfile');
    }
    return undefined;
  }

  private contains(real: string): boolean {
    return real === this.dir || real.startsWith(this.dir + '/') || (this.dir === '' && real.startsWith('/'));
  }

  /**
   * Opens a file found by `lookup` (its real `path`) for reading and re-checks what was opened: still a regular
   * file, and (unless symlinks may go anywhere) still inside the root. Returns undefined when
   * the file vanished or changed into something else; the caller answers not found.
   */
  async openFile(path: string): Promise<{ handle: FileHandle; stat: Stats } | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch {
      return undefined;
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new Error('not a regular file');
      if (this.options.symlinks !== 'follow' && process.platform === 'linux') {
        const actual = await readlink(`/proc/self/fd/${handle.fd}`);
        if (!this.contains(actual)) throw new Error('opened file is outside the root');
      }
      return { handle, stat: st };
    } catch {
      await handle.close().catch(() => {});
      return undefined;
    }
  }
}

const NOT_FOUND: NotFound = { kind: 'not-found' };

function bad(reason: string): BadName {
  return { kind: 'bad-request', reason };
}

function refused(reason: string): RefusedName {
  return { kind: 'refused', reason };
}
