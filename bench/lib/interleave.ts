import type { BenchContext } from '../types.ts';
import { waitQuiet } from './measure.ts';
import { describeExit, pickPort, startServer, type RunningServer, type ServerSpec } from './proc.ts';
import type { Prepared } from './servers.ts';

// The shape every side-by-side benchmark shares: prepare each server once (or report why it
// cannot run), then `for run: for server: wait for quiet cores, start it fresh, check its
// content, measure, stop it`, collecting failures per server.

export interface PeerLike<Id extends string, Env> {
  readonly id: Id;
  readonly label: string;
  prepare(env: Env, port: number): Promise<Prepared>;
}

export interface ReadyPeer<P> {
  readonly peer: P;
  readonly spec: ServerSpec;
}

/** Prepares the wanted peers, each on its own free port; prints one line per peer. */
export async function prepareAll<Id extends string, Env, P extends PeerLike<Id, Env>>(
  peers: readonly P[],
  env: Env,
  usedPorts: Set<number>,
): Promise<{ ready: ReadyPeer<P>[]; skipped: { peer: P; reason: string }[] }> {
  const ready: ReadyPeer<P>[] = [];
  const skipped: { peer: P; reason: string }[] = [];
  for (const peer of peers) {
    const port = await pickPort(usedPorts);
    usedPorts.add(port);
    const p = await peer.prepare(env, port);
    if (p.ok) {
      ready.push({ peer, spec: p.spec });
      console.log(`  ${peer.label.padEnd(10)} ${p.info}`);
    } else {
      skipped.push({ peer, reason: p.reason });
      console.log(`  ${peer.label.padEnd(10)} SKIPPED: ${p.reason.split('\n').join('\n             ')}`);
    }
  }
  return { ready, skipped };
}

export interface InterleaveOptions<P> {
  readonly ctx: BenchContext;
  readonly ready: readonly ReadyPeer<P>[];
  /** Called before each server's run (after the quiet wait); throw to skip this run of it. */
  beforeStart?(entry: ReadyPeer<P>, run: number): Promise<void>;
  /** Content check right after start; a string is why the run is not measured. */
  verify(server: RunningServer, entry: ReadyPeer<P>): Promise<string | undefined>;
  /** Measures one started, verified server; `background` is the busiest core's idle-time load. */
  measure(server: RunningServer, entry: ReadyPeer<P>, run: number, background: number): Promise<void>;
}

/** Runs `ctx.runs` interleaved rounds. Returns the failures per peer id, in order. */
export async function interleave<P extends { readonly id: string }>(o: InterleaveOptions<P>): Promise<Map<string, string[]>> {
  const failures = new Map<string, string[]>();
  const fail = (id: string, msg: string) => {
    failures.set(id, [...(failures.get(id) ?? []), msg]);
    console.log(`  ${id}: ${msg.split('\n').join('\n    ')}`);
  };
  for (let run = 1; run <= o.ctx.runs; run++) {
    for (const entry of o.ready) {
      const { peer, spec } = entry;
      const background = await waitQuiet(o.ctx);
      if (o.beforeStart) {
        try {
          await o.beforeStart(entry, run);
        } catch (e) {
          fail(peer.id, `run ${run}: not measured: ${(e as Error).message}`);
          continue;
        }
      }
      let server: RunningServer;
      try {
        server = await startServer(spec);
      } catch (e) {
        fail(peer.id, `run ${run}: did not start: ${(e as Error).message}`);
        continue;
      }
      try {
        const bad = await o.verify(server, entry);
        if (bad) {
          fail(peer.id, `run ${run}: not measured, content check failed: ${bad}`);
          continue;
        }
        await o.measure(server, entry, run, background);
        if (server.exitInfo) fail(peer.id, `run ${run}: server ${describeExit(server.exitInfo)}:\n${server.logTail()}`);
      } catch (e) {
        fail(peer.id, `run ${run}: ${(e as Error).message}`);
      } finally {
        await server.stop();
      }
    }
  }
  return failures;
}

/** The "Failures:" list under a table (first line of each message), or nothing. */
export function printFailures(failures: ReadonlyMap<string, readonly string[]>): void {
  if (failures.size === 0) return;
  console.log('\nFailures:');
  for (const [id, msgs] of failures) for (const m of msgs) console.log(`- ${id}: ${m.split('\n')[0]}`);
}
