// What a listener's handlers are in use by: a reload gives a kept listener new handlers for new
// requests and connections, and the old ones are released only once nothing they accepted is
// still going (requests finished, connections and WebSockets closed). One Generation per set of
// handlers: enter() when a request or connection is handed to them, leave() when it ends,
// retire() once superseded, resolving when the last one has left.

export class Generation {
  private active = 0;
  private retired = false;
  private resolveIdle!: () => void;
  private readonly idle = new Promise<void>((resolve) => {
    this.resolveIdle = resolve;
  });

  enter(): void {
    this.active++;
  }

  leave(): void {
    this.active--;
    if (this.active === 0 && this.retired) this.resolveIdle();
  }

  /** Requests and connections still using this generation's handlers. */
  get inUse(): number {
    return this.active;
  }

  /** No new work comes here any more; resolves once the work already here is done. */
  retire(): Promise<void> {
    this.retired = true;
    if (this.active === 0) this.resolveIdle();
    return this.idle;
  }
}
