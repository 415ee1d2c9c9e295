import type { Config } from '../config/schema.ts';
import { applyListenOverrides, loadConfigFile, parseConfig, type ListenOverride } from '../config/load.ts';
import { defaultConfig } from '../config/default.ts';
import { Yard, type ReloadResult } from '../yard/yard.ts';
import { banner } from '../yard/banner.ts';
import { exitOnSignals, reloadOnHangup, reopenOnUsr1, upgradeOnUsr2 } from '../yard/signals.ts';
import { closeUnclaimed, receiveSockets, reportFailed, reportReady, upgradingFrom } from '../yard/upgrade.ts';
import { Primary, PrimaryLink, WorkerMetrics, workerCount, workerSlot, workerStopOnSignals } from '../yard/workers.ts';
import { reloadYard } from '../yard/signals.ts';
import { SystemdNotifier } from '../yard/sd-notify.ts';
import { PidFile } from '../yard/pid-file.ts';
import { openLogOutput, type LogFormatChoice } from '../observe/logger.ts';
import { VERSION } from '../version.ts';

export interface ServeFlags {
  listen: ListenOverride[];
  logLevel?: Config['logging']['level'];
  grace?: number;
  /** Write the pid here once listening; removed on exit. */
  pidFile?: string;
  /** auto (pretty on a terminal, else json), json or pretty. */
  logFormat?: LogFormatChoice;
  /** Append logs here instead of stdout; reopened on SIGUSR1. */
  logFile?: string;
}

/** A config made on the command line (file-server, reverse-proxy) rather than read from a file. */
export interface BuiltConfig {
  config: unknown;
  /** What the banner and logs call it, e.g. `file-server ./site`. */
  source: string;
}

class LogFileError extends Error {
  readonly code = 'SWITCHYARD_LOG_FILE';
}

/**
 * `switchyard serve [config]`: runs until a signal. SIGTERM/SIGINT drain and exit, SIGHUP reloads
 * the same config (same file, overrides and --grace), SIGUSR1 reopens --log-file. Under systemd
 * (`$NOTIFY_SOCKET`) it reports READY/RELOADING/STOPPING and pings the watchdog. Errors propagate
 * to main's reporter.
 */
export async function serveCommand(file: string | BuiltConfig | undefined, flags: ServeFlags): Promise<void> {
  // Started by a running daemon's upgrade (SIGUSR2): it hands its listening sockets over.
  const replacing = upgradingFrom();
  // A worker (src/yard/workers.ts) runs the same command line, --pid-file included, but the file
  // is its primary's: checked there it would name the live primary and refuse every worker the
  // primary starts after its own start (a crashed one's replacement, an upgrade's new set).
  const pidFile = flags.pidFile && workerSlot() === undefined ? new PidFile(flags.pidFile) : undefined;
  pidFile?.check(replacing);

  const load = async (): Promise<{ config: Config; baseDir: string; source: string }> => {
    let loaded: { config: Config; baseDir: string; source: string };
    if (typeof file === 'string') loaded = await loadConfigFile(file, flags.listen);
    else {
      // The embedded default, or a one-liner's config: built afresh on each reload (structuredClone: overrides edit it).
      const source = file?.source ?? 'embedded default config';
      const raw = file ? structuredClone(file.config) : defaultConfig();
      const baseDir = process.cwd();
      loaded = { config: parseConfig(applyListenOverrides(raw, flags.listen, source), source, { baseDir }), baseDir, source };
    }
    if (flags.grace !== undefined) loaded.config.shutdown.grace = flags.grace;
    return loaded;
  };
  const { config, baseDir, source: loadedFrom } = await load();

  let output;
  try {
    output = openLogOutput(flags.logLevel ?? config.logging.level, { format: flags.logFormat, file: flags.logFile });
  } catch (err) {
    throw new LogFileError(`--log-file ${flags.logFile}: cannot open it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }

  // workers > 1 (src/yard/workers.ts): this is either one of the workers or their primary.
  if (workerSlot() !== undefined) return serveAsWorker(config, baseDir, loadedFrom, async () => (await load()).config, output);
  const workers = workerCount(config.workers);
  if (workers > 1 && replacing) throw new Error('upgrade: a daemon with workers > 1 cannot take over from one without; stop the old daemon and start this one');

  const systemd = SystemdNotifier.fromEnv();
  systemd?.startWatchdog();

  if (workers > 1) {
    const primary = new Primary({ count: workers, log: output.logger, grace: config.shutdown.grace, reopen: output.file ? () => output.reopen() : undefined, onStopping: () => void systemd?.stopping() });
    const listeners = await primary.start();
    if (pidFile) {
      const { stale } = pidFile.write();
      if (stale !== undefined) output.logger.info({ pidFile: pidFile.path, stale }, `pid file: replaced a stale one (process ${stale} is gone)`);
    }
    process.stdout.write(banner(VERSION, loadedFrom, listeners, config.shutdown.grace) + `${workers} worker processes (pids ${primary.pids().join(', ')}) under primary ${process.pid}\n`);
    void systemd?.ready(listeners);
    return;
  }

  let inherited: Awaited<ReturnType<typeof receiveSockets>> | undefined;
  // Set once the signal handlers are in place (below); the admin API's POST /upgrade calls it.
  let upgrader: (by: string) => Promise<{ ok: true; pid: number } | { ok: false; error: string }> = async () => ({ ok: false, error: 'the daemon is still starting' });
  let yard: Yard;
  try {
    inherited = replacing ? await receiveSockets() : undefined;
    // The admin API's POST /reload reads the config the same way SIGHUP does.
    // systemd hears RELOADING=1 / READY=1 around every reload, whatever asked for it (SIGHUP, POST /load, POST /reload).
    const notifyReload = systemd ? { reloading: () => void systemd.reloading(), done: () => void systemd.ready(yard.listeners()) } : undefined;
    yard = await Yard.start(config, { baseDir, logger: output.logger, configSource: async () => (await load()).config, inherited, upgrade: (by) => upgrader(by), notifyReload });
  } catch (err) {
    if (replacing) reportFailed(err);
    throw err;
  }

  // Signals are handled before anything announces readiness (pid file, banner, READY=1): a
  // supervisor may signal the moment it reads one of them.
  let stopped = false;
  let handedOver = false;
  exitOnSignals(yard, undefined, {
    onStop: () => {
      stopped = true;
      // After a hand-over the new daemon is the service's main process: not ours to say STOPPING.
      if (!handedOver) void systemd?.stopping();
    },
  });
  upgrader = upgradeOnUsr2(yard, {
    stopped: () => stopped || handedOver,
    onHandedOver: () => {
      handedOver = true;
    },
  }).upgrade;
  reloadOnHangup(yard, {
    source: loadedFrom,
    load: async () => (await load()).config,
    stopped: () => stopped,
  });
  // SIGUSR1 reopens --log-file and the access log files a config names (now or after a reload).
  reopenOnUsr1(() => output.reopen());

  if (pidFile) {
    const { stale } = pidFile.write();
    if (stale !== undefined) yard.log.info({ pidFile: pidFile.path, stale }, `pid file: replaced a stale one (process ${stale} is gone)`);
  }
  process.stdout.write(banner(VERSION, loadedFrom, yard.listeners(), config.shutdown.grace));
  void systemd?.ready(yard.listeners());
  if (replacing) {
    const unused = inherited ? closeUnclaimed(inherited) : [];
    if (unused.length > 0) yard.log.info({ listeners: unused }, 'upgrade: sockets no listener of the new config took are closed here (the old daemon serves its own until it drains)');
    yard.log.info({ upgrade: 'ready', from: replacing }, `upgrade: took over from daemon ${replacing}`);
    reportReady();
  }
}

/** One worker of a primary: a whole daemon whose reloads, metrics and upgrades go through the primary. */
async function serveAsWorker(fileConfig: Config, baseDir: string, source: string, load: () => Promise<Config>, output: ReturnType<typeof openLogOutput>): Promise<void> {
  const link = new PrimaryLink();
  // After a POST /load the primary holds the config every worker runs: a restarted worker takes it.
  const config = (await link.ask<Config | null>('config')) ?? fileConfig;
  const yard = await Yard.start(config, {
    baseDir,
    logger: output.logger,
    metrics: new WorkerMetrics(link),
    configSource: load,
    reloadAll: (next) => link.ask<ReloadResult>('reload', 120_000, next),
    upgrade: () => link.ask<{ ok: true; pid: number } | { ok: false; error: string }>('upgrade', 120_000),
  });
  workerStopOnSignals(yard, output.logger);
  // SIGUSR1 reopens --log-file and the access log files a config names (now or after a reload).
  reopenOnUsr1(() => output.reopen());
  link.ready(yard, () => reloadYard(yard, { source, load }));
}
