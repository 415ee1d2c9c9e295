import type { Config } from '../config/schema.ts';
import type { ReloadResult, Yard } from './yard.ts';
import { handOver, type HandOverResult } from './upgrade.ts';

export interface SignalHooks {
  /** Called once, when a stop signal begins the drain (systemd's STOPPING=1). */
  onStop?: () => void;
}

/**
 * SIGTERM/SIGINT: drain (stop accepting, finish in-flight work up to the grace period), then exit
 * 0. A second signal exits at once with status 1. Returns a function that removes the handlers.
 */
export function exitOnSignals(yard: Yard, print: (line: string) => void = (l) => process.stderr.write(l + '\n'), hooks: SignalHooks = {}): () => void {
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) {
      print(`switchyard: ${signal} again: exiting now`);
      process.exit(1);
    }
    received = signal;
    print(`switchyard: ${signal}: draining, up to ${yard.config.shutdown.grace / 1000}s (send it again to exit at once)`);
    try {
      hooks.onStop?.();
    } catch (err) {
      print(`switchyard: ${err instanceof Error ? err.message : String(err)}`);
    }
    yard.stop().then(
      ({ cutOff }) => {
        print(cutOff > 0 ? `switchyard: stopped; ${cutOff} connection(s) cut off at the deadline` : 'switchyard: stopped');
        process.exit(0);
      },
      (err: unknown) => {
        print(`switchyard: error while stopping: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}

/**
 * Runs `task` one at a time: a call while it runs asks for exactly one more run after it (any
 * number of calls meanwhile fold into that one). The promise of a call settles when the run that
 * covers it has ended.
 */
export function oneAtATime(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again: Promise<void> | undefined;
  const run = (): Promise<void> => {
    const p = (async () => {
      try {
        await task();
      } catch {
        // the task reports its own failures
      }
    })();
    running = p.then(() => {
      running = undefined;
    });
    return running;
  };
  return () => {
    // `again` first: between the end of one run and the start of the next, `running` is unset.
    if (again) return again;
    if (!running) return run();
    again = running.then(() => {
      again = undefined;
      return run();
    });
    return again;
  };
}

export interface UpgradeHooks {
  /** A stop signal came (no upgrade then), or an upgrade is under way. */
  stopped: () => boolean;
  /** This daemon is handing over: no more reloads or stop-signal handling of its own. */
  onHandedOver: () => void;
  log?: { info(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/**
 * SIGUSR2: a zero-downtime upgrade (upgrade.ts). The same command line starts again as a new
 * daemon, takes over every listening socket, and once it reports ready this one stops accepting,
 * drains and exits 0; if the new one fails, this one goes on serving and says why. One at a time.
 */
export function upgradeOnUsr2(yard: Yard, hooks: UpgradeHooks): { upgrade: (by: string) => Promise<HandOverResult>; remove: () => void } {
  const log = hooks.log ?? yard.log;
  let running: Promise<HandOverResult> | undefined;
  const upgrade = (by: string): Promise<HandOverResult> => {
    if (running) return running;
    if (hooks.stopped()) return Promise.resolve({ ok: false, error: 'the daemon is stopping' });
    log.info({ by }, `${by}: upgrading (starting a new daemon to take over the listening sockets)`);
    running = handOver(yard.listeningSockets()).then((result) => {
      if (!result.ok) {
        running = undefined;
        log.error({ upgrade: 'failed', error: result.error }, `upgrade failed: ${result.error}; this daemon goes on serving`);
        return result;
      }
      hooks.onHandedOver();
      log.info({ upgrade: 'handed-over', pid: result.pid }, `upgrade: daemon ${result.pid} is ready and serving; this one (${process.pid}) drains and exits`);
      yard.keepUnixSocketFiles();
      // After this turn: an admin API caller gets its answer before the listeners stop.
      setImmediate(() => {
        yard.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      });
      return result;
    });
    return running;
  };
  const onSignal = () => void upgrade('SIGUSR2');
  process.on('SIGUSR2', onSignal);
  return { upgrade, remove: () => process.off('SIGUSR2', onSignal) };
}

export interface ReloadHooks {
  /** Reads the config again as it was read at start (same file, same overrides, same --grace). Throws on a bad config. */
  load: () => Promise<Config>;
  /** What is being reloaded, for the log line (`/etc/switchyard.yaml`, `embedded default config`). */
  source: string;
  /** Where the lines go: the yard's logger by default. */
  log?: { info(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** systemd's RELOADING=1 before and READY=1 after (see sd-notify.ts). */
  onReloading?: () => void;
  onReloaded?: () => void;
}

/**
 * One reload: read the config, hand it to the yard, log the outcome. A config that does not read
 * or validate never reaches the yard and is reported like a refused reload: the error and that the
 * running config is unchanged.
 */
export async function reloadYard(yard: Yard, hooks: ReloadHooks): Promise<ReloadResult> {
  const log = hooks.log ?? yard.log;
  hooks.onReloading?.();
  const result = await loadAndReload(yard, hooks.load).finally(() => hooks.onReloaded?.());
  if (result.ok) {
    const what = result.changed.length ? `changed: ${result.changed.join(', ')}` : 'nothing changed';
    log.info({ reload: 'done', changed: result.changed }, `reload: done (${what})`);
  } else {
    log.error({ reload: 'failed', error: result.error }, `reload failed: ${oneLine(result.error)}; the running config is unchanged`);
  }
  return result;
}

async function loadAndReload(yard: Yard, load: () => Promise<Config>): Promise<ReloadResult> {
  const failed = (err: unknown): ReloadResult => ({ ok: false, error: err instanceof Error ? err.message : String(err) });
  let config: Config;
  try {
    config = await load();
  } catch (err) {
    return failed(err);
  }
  try {
    return await yard.reload(config);
  } catch (err) {
    return failed(err);
  }
}

/** A config error's lines (`file: invalid config` then one indented line per field) as one line. */
function oneLine(text: string): string {
  const [head = '', ...rest] = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return rest.length ? `${head}: ${rest.join('; ')}` : head;
}

/**
 * SIGHUP reloads (one at a time; a SIGHUP during a reload runs once more after it) instead of
 * ending the process. Once `stopped()` is true (a stop signal came) a SIGHUP is only logged.
 * Returns a function that removes the handler (SIGHUP then ends the process again, Node's default).
 */
export function reloadOnHangup(yard: Yard, hooks: ReloadHooks & { stopped?: () => boolean }): () => void {
  const log = hooks.log ?? yard.log;
  const next = oneAtATime(async () => {
    if (hooks.stopped?.()) return;
    await reloadYard(yard, hooks);
  });
  const onHangup = () => {
    if (hooks.stopped?.()) {
      log.info({ signal: 'SIGHUP' }, 'SIGHUP: stopping, not reloading');
      return;
    }
    log.info({ signal: 'SIGHUP' }, `SIGHUP: reloading ${hooks.source}`);
    void next();
  };
  process.on('SIGHUP', onHangup);
  return () => process.off('SIGHUP', onHangup);
}

/** SIGUSR1 calls `reopen` (log files after a rotation). Node's default for SIGUSR1 (starting the inspector) is off while installed. */
export function reopenOnUsr1(reopen: () => void, print: (line: string) => void = (l) => process.stderr.write(l + '\n')): () => void {
  const onUsr1 = () => {
    try {
      reopen();
    } catch (err) {
      print(`switchyard: SIGUSR1: cannot reopen the log file: ${err instanceof Error ? err.message : String(err)} (still writing to the old one)`);
    }
  };
  process.on('SIGUSR1', onUsr1);
  return () => process.off('SIGUSR1', onUsr1);
}
