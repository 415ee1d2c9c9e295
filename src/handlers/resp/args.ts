// One parsed command's arguments, as offsets into the buffer they arrived in. The parser fills
// one CommandArgs per connection and reuses it for every command, so a pipelined batch allocates
// nothing per argument: a command reads its key as a string, or copies its value out, only when
// it needs to. The bytes stay valid only while the command runs (the buffer is the socket's).

const EMPTY = Buffer.alloc(0);

/** Node's Buffer has latin1Slice (what toString('latin1') ends in, without its argument checks); the typings leave it out. */
interface Latin1Slicing {
  latin1Slice(start: number, end: number): string;
}

export class CommandArgs {
  /** The buffer the arguments are in. */
  buf: Buffer = EMPTY;
  /** Number of arguments, the command's name included. */
  length = 0;
  private starts: Int32Array = new Int32Array(16);
  private ends: Int32Array = new Int32Array(16);

  /** Forgets the previous command's arguments. */
  reset(buf: Buffer): void {
    this.buf = buf;
    this.length = 0;
  }

  /** Adds the argument buf[start, end). */
  push(start: number, end: number): void {
    const i = this.length;
    if (i === this.starts.length) {
      const starts = new Int32Array(i * 2);
      const ends = new Int32Array(i * 2);
      starts.set(this.starts);
      ends.set(this.ends);
      this.starts = starts;
      this.ends = ends;
    }
    this.starts[i] = start;
    this.ends[i] = end;
    this.length = i + 1;
  }

  /** The arguments are in `buf` now, `by` bytes further back (the bytes before them were dropped). */
  shift(buf: Buffer, by: number): void {
    this.buf = buf;
    if (by !== 0) for (let i = 0; i < this.length; i++) {
      this.starts[i] -= by;
      this.ends[i] -= by;
    }
  }

  start(i: number): number {
    return this.starts[i];
  }

  byteLength(i: number): number {
    return this.ends[i] - this.starts[i];
  }

  /** A view of argument i (no copy: valid while the command runs). */
  view(i: number): Buffer {
    return this.buf.subarray(this.starts[i], this.ends[i]);
  }

  /** Argument i as a latin1 string: keys, fields and channels stay binary-safe that way. */
  latin1(i: number): string {
    return (this.buf as Buffer & Latin1Slicing).latin1Slice(this.starts[i], this.ends[i]);
  }

  /** A copy of argument i, for keeping (a stored value must not hold the socket's buffer). */
  copy(i: number): Buffer {
    const s = this.starts[i];
    const n = this.ends[i] - s;
    const out = Buffer.allocUnsafe(n);
    const src = this.buf;
    if (n <= 32) for (let j = 0; j < n; j++) out[j] = src[s + j];
    else out.set(src.subarray(s, s + n));
    return out;
  }

  /** Writes argument i over `target` (as long as it), for a value overwritten in place. */
  copyInto(i: number, target: Buffer): void {
    const s = this.starts[i];
    const n = this.ends[i] - s;
    const src = this.buf;
    if (n <= 32) for (let j = 0; j < n; j++) target[j] = src[s + j];
    else target.set(src.subarray(s, s + n));
  }

  /** Every argument as a view, for commands that take an array. */
  array(): Buffer[] {
    const out = new Array<Buffer>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.view(i);
    return out;
  }
}
