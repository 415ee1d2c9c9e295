// The due times of the requests in flight on one connection, oldest first: protocols that
// answer in order (HTTP/1.1 pipelining, echo over tcp, ws, udp) pair each answer with the
// oldest. A fixed ring: no allocation per request.

export class TimeRing {
  private readonly times: Float64Array;
  private head = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.times = new Float64Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  push(t: number): void {
    if (this.size === this.capacity) throw new Error('TimeRing overflow: more requests in flight than the connection allows');
    this.times[(this.head + this.size) % this.capacity] = t;
    this.size++;
  }

  /** Removes and returns the oldest time; the ring must not be empty. */
  shift(): number {
    const t = this.times[this.head];
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    return t;
  }

  clear(): void {
    this.head = 0;
    this.size = 0;
  }
}
