// A list value: a double-ended queue over a ring buffer, so LPUSH and LPOP are O(1) (an array's
// unshift and shift move every element).

export class Deque<T> {
  private items: (T | undefined)[] = new Array(8);
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  private grow(): void {
    const next: (T | undefined)[] = new Array(this.items.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) % this.items.length];
    this.items = next;
    this.head = 0;
  }

  pushBack(v: T): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) % this.items.length] = v;
    this.count++;
  }

  pushFront(v: T): void {
    if (this.count === this.items.length) this.grow();
    this.head = (this.head - 1 + this.items.length) % this.items.length;
    this.items[this.head] = v;
    this.count++;
  }

  popFront(): T | undefined {
    if (this.count === 0) return undefined;
    const v = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.count--;
    return v;
  }

  popBack(): T | undefined {
    if (this.count === 0) return undefined;
    const i = (this.head + this.count - 1) % this.items.length;
    const v = this.items[i];
    this.items[i] = undefined;
    this.count--;
    return v;
  }

  at(i: number): T {
    return this.items[(this.head + i) % this.items.length] as T;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) yield this.at(i);
  }
}
