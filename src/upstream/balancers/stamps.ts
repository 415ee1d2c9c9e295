/**
 * Per-pick "already refused" marks for a fixed number of targets without clearing an array per
 * pick: each pick takes a new epoch, and a target is marked when its stamp equals the epoch.
 */
export class Stamps {
  private readonly marks: Uint32Array;
  private epoch = 0;

  constructor(size: number) {
    this.marks = new Uint32Array(size);
  }

  /** Starts a new pick: every mark from earlier picks is forgotten. */
  begin(): void {
    if (this.epoch === 0xffffffff) {
      this.marks.fill(0);
      this.epoch = 0;
    }
    this.epoch++;
  }

  has(i: number): boolean {
    return this.marks[i] === this.epoch;
  }

  set(i: number): void {
    this.marks[i] = this.epoch;
  }
}
