import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { Deque } from './deque.ts';
import type { Store, Value } from './store.ts';

// The snapshot file: the whole keyspace, written now and then and read at start (docs/resp.md).
//
//   "SWYRESP1"                               magic, 8 bytes
//   record*                                  one per key
//     u8 type (1 string, 2 hash, 3 list)
//     f64 BE expiresAt (ms since the epoch, 0 = none)
//     blob key
//     string: blob value | hash: u32 n, (blob field, blob value)*n | list: u32 n, blob*n
//   u8 0xFF, u32 BE record count             end marker: a cut-off file is refused
//   blob = u32 BE length + bytes
//
// The keyspace is encoded in one go (so the file is one point in time), then written to a
// temporary file next to the target, fsynced and renamed over it: a crash leaves the old file
// or the new one, never half of one.

const MAGIC = Buffer.from('SWYRESP1', 'latin1');
const TYPE_CODE = { string: 1, hash: 2, list: 3 } as const;
const END = 0xff;

export class SnapshotError extends Error {}

class Encoder {
  readonly parts: Buffer[] = [MAGIC];
  private cur = Buffer.allocUnsafe(64 * 1024);
  private off = 0;

  private room(n: number): void {
    if (this.off + n <= this.cur.length) return;
    this.parts.push(this.cur.subarray(0, this.off));
    this.cur = Buffer.allocUnsafe(Math.max(64 * 1024, n));
    this.off = 0;
  }

  u8(n: number): void {
    this.room(1);
    this.cur[this.off++] = n;
  }

  u32(n: number): void {
    this.room(4);
    this.off = this.cur.writeUInt32BE(n, this.off);
  }

  f64(n: number): void {
    this.room(8);
    this.off = this.cur.writeDoubleBE(n, this.off);
  }

  blob(b: Buffer | string): void {
    const len = typeof b === 'string' ? b.length : b.length;
    this.u32(len);
    this.room(len);
    this.off += typeof b === 'string' ? this.cur.write(b, this.off, 'latin1') : b.copy(this.cur, this.off);
  }

  done(): Buffer[] {
    this.parts.push(this.cur.subarray(0, this.off));
    return this.parts;
  }
}

export function encodeSnapshot(store: Store, now = Date.now()): Buffer[] {
  const enc = new Encoder();
  let count = 0;
  for (const e of store.entries()) {
    if (e.expiresAt !== 0 && e.expiresAt <= now) continue;
    enc.u8(TYPE_CODE[e.value.type]);
    enc.f64(e.expiresAt);
    enc.blob(e.key);
    const v = e.value;
    if (v.type === 'string') enc.blob(v.data);
    else if (v.type === 'hash') {
      enc.u32(v.data.size);
      for (const [f, x] of v.data) {
        enc.blob(f);
        enc.blob(x);
      }
    } else {
      enc.u32(v.data.length);
      for (const x of v.data) enc.blob(x);
    }
    count++;
  }
  enc.u8(END);
  enc.u32(count);
  return enc.done();
}

/** Writes the keyspace to `file` atomically; resolves with the number of bytes written. */
export async function saveSnapshot(store: Store, file: string): Promise<number> {
  const parts = encodeSnapshot(store);
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  let bytes = 0;
  try {
    for (const p of parts) {
      await fh.write(p);
      bytes += p.length;
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
  // The rename itself is durable only once the folder is synced.
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return bytes;
}

/** Reads a snapshot into `store`; keys already expired are skipped. A missing file loads nothing (returns -1). */
export async function loadSnapshot(store: Store, file: string, now = Date.now()): Promise<number> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return -1;
    throw err;
  }
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > buf.length) throw new SnapshotError(`snapshot ${file} is cut off at byte ${buf.length}`);
  };
  const u32 = () => {
    need(4);
    const v = buf.readUInt32BE(pos);
    pos += 4;
    return v;
  };
  const blob = () => {
    const len = u32();
    need(len);
    const b = Buffer.from(buf.subarray(pos, pos + len));
    pos += len;
    return b;
  };
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new SnapshotError(`${file} is not a resp snapshot (it does not start with ${MAGIC.toString()})`);
  }
  pos = MAGIC.length;
  let count = 0;
  for (;;) {
    need(1);
    const type = buf[pos++];
    if (type === END) break;
    need(8);
    const expiresAt = buf.readDoubleBE(pos);
    pos += 8;
    const key = blob().toString('latin1');
    let value: Value;
    if (type === TYPE_CODE.string) value = { type: 'string', data: blob() };
    else if (type === TYPE_CODE.hash) {
      const n = u32();
      const data = new Map<string, Buffer>();
      for (let i = 0; i < n; i++) data.set(blob().toString('latin1'), blob());
      value = { type: 'hash', data };
    } else if (type === TYPE_CODE.list) {
      const n = u32();
      const data = new Deque<Buffer>();
      for (let i = 0; i < n; i++) data.pushBack(blob());
      value = { type: 'list', data };
    } else throw new SnapshotError(`snapshot ${file}: unknown record type ${type} at byte ${pos - 1}`);
    count++;
    if (expiresAt !== 0 && expiresAt <= now) continue;
    store.set(key, value, expiresAt);
  }
  if (u32() !== count) throw new SnapshotError(`snapshot ${file}: the record count at its end does not match`);
  store.dirty = 0;
  return count;
}
