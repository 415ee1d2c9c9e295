import { Agent, request } from 'undici';

// A steady client load for tests that change a daemon under it (reload, upgrade): `fresh` loops
// that open a new connection per request and `keepAlive` loops sharing a small keep-alive pool,
// each sending the next request as soon as the last is answered, until stop(). Every answer other
// than 200 and every error is a failure; a request that is never answered fails after
// `timeoutMs` instead of holding the test. Optional `extra` loops (a unix socket client, say)
// return a failure text or undefined per round.

export interface ClientLoadOptions {
  fresh?: number;
  keepAlive?: number;
  timeoutMs?: number;
  extra?: (() => Promise<string | undefined>)[];
}

export class ClientLoad {
  ok = 0;
  readonly failures: string[] = [];
  /** Bodies of the 200 answers seen. */
  readonly bodies = new Set<string>();
  private running = true;
  private readonly agent: Agent;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly url: string,
    options: ClientLoadOptions = {},
  ) {
    const timeoutMs = options.timeoutMs ?? 5000;
    this.agent = new Agent({ connections: 4, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const http = (fresh: boolean) => this.repeat(async () => {
      const res = await request(this.url, { dispatcher: fresh ? undefined : this.agent, reset: fresh, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      const text = await res.body.text();
      if (res.statusCode !== 200) return `${res.statusCode} ${text}`;
      this.bodies.add(text);
      return undefined;
    });
    this.loops = [
      ...Array.from({ length: options.fresh ?? 1 }, () => http(true)),
      ...Array.from({ length: options.keepAlive ?? 2 }, () => http(false)),
      ...(options.extra ?? []).map((round) => this.repeat(round)),
    ];
  }

  private async repeat(round: () => Promise<string | undefined>): Promise<void> {
    while (this.running) {
      try {
        const failure = await round();
        if (failure === undefined) this.ok++;
        else this.failures.push(failure);
      } catch (err) {
        this.failures.push(String(err));
      }
    }
  }

  /** Stops the loops once their requests in progress are answered. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await this.agent.close();
  }
}
