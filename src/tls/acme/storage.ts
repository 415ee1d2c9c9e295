// Where the account key and the certificates live: named blobs, and a lock so that several
// daemons sharing one storage order a certificate once.
//
// Names are paths of segments of [A-Za-z0-9._-] joined by '/' (never '.' or '..'), so that a
// folder implementation can map them to files and a Redis one to keys.

/** Gives a lock back; resolves once done. Releasing a lock that ran out (and maybe went to another) does nothing. */
export type Release = () => Promise<void>;

export interface AcmeStorage {
  /** The blob, or undefined when there is none. */
  get(name: string): Promise<Buffer | undefined>;
  /** Stores the blob whole: a reader sees the old one or the new one, never a mix. */
  set(name: string, value: Buffer | string): Promise<void>;
  delete(name: string): Promise<void>;
  /**
   * Takes the lock `name` for at most `ttlMs` (after that it is free again, in case its holder
   * died). Does not wait: undefined when another holder has it.
   */
  lock(name: string, ttlMs: number): Promise<Release | undefined>;
  close(): Promise<void>;
}

const SEGMENT = /^[A-Za-z0-9._-]{1,200}$/;

/** Throws unless `name` is a storage name (see above). */
export function checkStorageName(name: string): void {
  const parts = name.split('/');
  if (parts.length > 8 || !parts.every((p) => SEGMENT.test(p) && p !== '.' && p !== '..')) {
    throw new Error(`bad ACME storage name ${JSON.stringify(name)}: expected segments of [A-Za-z0-9._-] joined by /`);
  }
}
