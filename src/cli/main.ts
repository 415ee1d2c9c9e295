import { Command, InvalidArgumentError, Option } from 'commander';
import { VERSION } from '../version.ts';
import { ConfigError } from '../config/errors.ts';
import { parseListenOverride, type ListenOverride } from '../config/listen-override.ts';
import { parseDuration } from '../config/unit-text.ts';
import { balancePolicies } from '../config/balance-policies.ts';
import type { serveCommand } from './serve.ts';
import { DEFAULT_ADMIN_URL } from './reload.ts';
import { TRANSPORT_NAMES } from './ipc/transport-names.ts';
import { parseIpcUrl } from './ipc/url.ts';
import { parseSize } from './ipc/size.ts';
import { addConnectCommand } from './connect-command.ts';
import { addBenchCommand } from './bench-command.ts';
import { addScanCommand } from './scan-command.ts';
import { fileServerConfig, FILE_SERVER_ADDRESS } from './file-server.ts';
import { reverseProxyConfig, proxyTarget, REVERSE_PROXY_ADDRESS } from './reverse-proxy.ts';
import { parseListenAddress } from './listen-address.ts';
import { HANDLER_CATALOGUE } from './handler-catalogue.ts';

// argv -> commands. Wiring only: each command lives in its own file. Exit codes: 0 ok,
// 1 cannot start or failed, 2 bad config or bad usage.
//
// Registering a command loads nothing but its options' parsers (light modules: no zod, no
// handlers, no daemon); its action imports the module that does the work. So `--version`,
// `--help` and a short command such as `ca` do not pay for loading the daemon
// (test/cli-startup.test.ts checks which modules load).

function collectListen(value: string, previous: ListenOverride[]): ListenOverride[] {
  try {
    return [...previous, parseListenOverride(value)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function envOverrides(): ListenOverride[] {
  const raw = process.env.SWITCHYARD_LISTEN;
  if (!raw) return [];
  try {
    return raw.split(',').filter(Boolean).map((s) => parseListenOverride(s.trim()));
  } catch (err) {
    // Said as the command-line option would be, naming the variable it came from (exit 2, no stack).
    throw Object.assign(new Error(`SWITCHYARD_LISTEN: ${(err as Error).message.replace(/^--listen /, '')}`), { exitCode: 2 });
  }
}

/** A command-line value through a parser whose Error message is the user's answer. */
function argument<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

/** `--to a,b --to c`: every target checked as it is read, kept as written (for the banner). */
function collectTargets(value: string, previous: string[]): string[] {
  const targets = value.split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of targets) argument(proxyTarget)(t);
  return [...previous, ...targets];
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
type LogLevel = Parameters<typeof serveCommand>[1]['logLevel'];

/** Runs the daemon (serve, file-server, reverse-proxy): loads it only then. */
async function serve(...args: Parameters<typeof serveCommand>): Promise<void> {
  const daemon = await import('./serve.ts');
  await daemon.serveCommand(...args);
}

/** The logging options of the one-liners (file-server, reverse-proxy): as serve's, pretty on a terminal and JSON under a supervisor. */
function addOneLinerLogOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--log-level <level>', 'log level (also $SWITCHYARD_LOG_LEVEL)').choices(LOG_LEVELS))
    .addOption(new Option('--log-format <format>', 'auto: pretty on a terminal, else json; json: one JSON object per line; pretty: one readable line per record').choices(['auto', 'json', 'pretty']).default('auto'));
}

function report(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`switchyard: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('SWITCHYARD_')) {
    process.stderr.write(`switchyard: ${err.message}\n`);
    process.exit(1);
  }
  // A command's own failure, with the exit status it documents (upgrade, reload).
  if (err instanceof Error && 'exitCode' in err && typeof err.exitCode === 'number') {
    process.stderr.write(`switchyard: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`switchyard: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}

export function buildProgram(): Command {
  const program = new Command('switchyard')
    .description('A programmable network gateway: one daemon, many listeners, routes to handlers.')
    .version(VERSION, '-v, --version', 'print the version')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

  program
    .command('serve')
    .description('run the daemon with a config file (YAML or JSON), or with the embedded default when none is given')
    .argument('[config]', 'config file; default: $SWITCHYARD_CONFIG, else the embedded default')
    .option('-l, --listen <name=address>', 'override a listener\'s address, e.g. web=127.0.0.1:8081 or web=8081 (repeatable; also $SWITCHYARD_LISTEN, comma-separated)', collectListen, [])
    .addOption(new Option('--log-level <level>', 'log level (also $SWITCHYARD_LOG_LEVEL)').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .option('--grace <duration>', 'how long in-flight work may finish after a stop signal, e.g. 10s', (v) => {
      const ms = parseDuration(v);
      if (ms === undefined) throw new InvalidArgumentError('expected a duration like 10s or 500ms');
      return ms;
    })
    .option('--pid-file <path>', 'write the daemon\'s pid here once it listens (removed on exit); refuses to start while it names a live process')
    .addOption(new Option('--log-format <format>', 'auto: pretty on a terminal, else json; json: one JSON object per line; pretty: one readable line per record').choices(['auto', 'json', 'pretty']).default('auto'))
    .option('--log-file <path>', 'append logs to this file instead of stdout (created 0640; reopened on SIGUSR1, for logrotate)')
    .action(async (file: string | undefined, opts: { listen: ListenOverride[]; logLevel?: string; grace?: number; pidFile?: string; logFormat: 'auto' | 'json' | 'pretty'; logFile?: string }) => {
      const level = (opts.logLevel ?? process.env.SWITCHYARD_LOG_LEVEL) as LogLevel;
      await serve(file ?? process.env.SWITCHYARD_CONFIG, {
        listen: [...envOverrides(), ...opts.listen],
        logLevel: level,
        grace: opts.grace,
        pidFile: opts.pidFile,
        logFormat: opts.logFormat,
        logFile: opts.logFile,
      });
    });

  addOneLinerLogOptions(
    program
      .command('file-server')
      .description(`serve the files of a folder over HTTP, without a config file (on ${FILE_SERVER_ADDRESS} unless --listen says otherwise)`)
      .argument('[dir]', 'folder to serve', '.')
      .option('--listen <address>', `where to listen: HOST:PORT, :PORT (every interface) or PORT (loopback) (default: ${FILE_SERVER_ADDRESS})`, argument(parseListenAddress), FILE_SERVER_ADDRESS)
      .option('--browse', 'list the files of a folder that has no index.html')
      .option('--dotfiles', 'serve dotfiles (.env, .git/) instead of answering 404 for them'),
  ).action(async (dir: string, opts: { listen: string; browse?: boolean; dotfiles?: boolean; logLevel?: string; logFormat: 'auto' | 'json' | 'pretty' }) => {
    const built = fileServerConfig({ root: dir, address: opts.listen, browse: opts.browse === true, dotfiles: opts.dotfiles === true });
    await serve(built, { listen: [], logLevel: (opts.logLevel ?? process.env.SWITCHYARD_LOG_LEVEL) as LogLevel, logFormat: opts.logFormat });
  });

  addOneLinerLogOptions(
    program
      .command('reverse-proxy')
      .description(`proxy HTTP to one or more backends, balanced, without a config file (from ${REVERSE_PROXY_ADDRESS} unless --from says otherwise)`)
      .requiredOption('--to <targets>', 'backends, comma-separated or repeated: host:port (http://), or http://, https://, h2c:// URLs', collectTargets, [] as string[])
      .option('--from <address>', `where to listen: HOST:PORT, :PORT (every interface) or PORT (loopback) (default: ${REVERSE_PROXY_ADDRESS})`, argument(parseListenAddress), REVERSE_PROXY_ADDRESS)
      .addOption(new Option('--lb <policy>', 'how requests are spread over the backends').choices([...balancePolicies]).default('round-robin'))
      .option('--health-path <path>', 'check each backend with GET PATH every 5s and send nothing to one that fails (default: no active checks; failing backends are still ejected by their errors)', argument((v) => {
        if (!v.startsWith('/')) throw new Error('a health check path starts with "/"');
        return v;
      })),
  ).action(async (opts: { to: string[]; from: string; lb: (typeof balancePolicies)[number]; healthPath?: string; logLevel?: string; logFormat: 'auto' | 'json' | 'pretty' }) => {
    if (opts.to.length === 0) throw new InvalidArgumentError('--to needs at least one backend');
    const built = reverseProxyConfig({ to: opts.to, from: opts.from, balance: opts.lb, healthPath: opts.healthPath });
    await serve(built, { listen: [], logLevel: (opts.logLevel ?? process.env.SWITCHYARD_LOG_LEVEL) as LogLevel, logFormat: opts.logFormat });
  });

  program
    .command('reload')
    .description('ask a running daemon to reload its config through its admin API (POST /reload) and print the answer; exit 0 reloaded, 1 refused, 2 unreachable (a token for a non-loopback admin API: $SWITCHYARD_ADMIN_TOKEN)')
    .option('--admin <url>', `the daemon's admin listener (default: $SWITCHYARD_ADMIN, else ${DEFAULT_ADMIN_URL})`)
    .action(async (opts: { admin?: string }) => {
      const { reloadCommand } = await import('./reload.ts');
      await reloadCommand({ admin: opts.admin ?? process.env.SWITCHYARD_ADMIN, token: process.env.SWITCHYARD_ADMIN_TOKEN });
    });

  program
    .command('upgrade')
    .description('zero-downtime upgrade of a running daemon: it starts the same command again, hands the new daemon its listening sockets, then drains and exits (SIGUSR2 does the same); through its admin API (POST /upgrade), or with --pid-file by signal; exit 0 done, 1 failed (the old one goes on serving), 2 no daemon')
    .option('--admin <url>', `the daemon's admin listener (default: $SWITCHYARD_ADMIN, else ${DEFAULT_ADMIN_URL})`)
    .option('--pid-file <path>', 'signal the daemon named in this pid file (serve --pid-file) instead of calling the admin API, and wait for the new one')
    .action(async (opts: { admin?: string; pidFile?: string }) => {
      if (opts.pidFile) {
        const { upgradeCommand } = await import('./upgrade.ts');
        await upgradeCommand({ pidFile: opts.pidFile });
      } else {
        const { reloadCommand } = await import('./reload.ts');
        await reloadCommand({ admin: opts.admin ?? process.env.SWITCHYARD_ADMIN, token: process.env.SWITCHYARD_ADMIN_TOKEN, action: 'upgrade' });
      }
    });

  program
    .command('check')
    .description('validate a config file: prints every problem with its field path; exit 2 when invalid')
    .argument('<config>', 'config file (YAML or JSON)')
    .action(async (file: string) => {
      const { checkCommand } = await import('./check.ts');
      await checkCommand(file);
    });

  const config = program.command('config').description('configs to start from: the embedded default, or a file with every default filled in');
  config
    .command('default')
    .description('print the embedded default config (what serve runs without a file) as YAML, to save and edit')
    .action(async () => {
      const { configDefaultCommand } = await import('./config-cmd.ts');
      configDefaultCommand();
    });
  config
    .command('adapt')
    .description('print a config file as the daemon runs it: validated, every default filled in, secrets redacted; exit 2 when invalid')
    .argument('<config>', 'config file (YAML or JSON)')
    .option('--json', 'print JSON instead of YAML')
    .action(async (file: string, opts: { json?: boolean }) => {
      const { configAdaptCommand } = await import('./config-cmd.ts');
      await configAdaptCommand(file, opts);
    });

  const ipc = program.command('ipc').description('IPC channels: benchmark every transport, or try one by hand');
  const ipcUrl = (v: string) => {
    try {
      return parseIpcUrl(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
  ipc
    .command('bench')
    .description('latency (1-byte round trip p50/p99) and throughput of every transport, framed and raw, beside published native figures')
    .option('--transport <names>', `comma-separated subset of: ${TRANSPORT_NAMES.join(',')}`, (v) => {
      const names = v.split(',').map((s) => s.trim()).filter(Boolean);
      const bad = names.filter((n) => !TRANSPORT_NAMES.includes(n));
      if (bad.length || !names.length) throw new InvalidArgumentError(`unknown transport ${bad.join(', ') || '(none)'}; expected: ${TRANSPORT_NAMES.join(', ')}`);
      return names;
    })
    .option('--quick', 'smoke run: few round trips, 8 MiB bulk, every transport in seconds')
    .option('--size <bytes>', 'bulk transfer size, e.g. 1GiB, 256MiB (default 1GiB; 8MiB with --quick)', (v) => {
      const n = parseSize(v);
      if (n === undefined) throw new InvalidArgumentError('expected a size like 1GiB, 64MiB or 1000000');
      return n;
    })
    .option('--runs <n>', 'interleaved repetitions, medians shown (default 3; 1 with --quick)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 20) throw new InvalidArgumentError('expected a whole number from 1 to 20');
      return n;
    })
    .option('--json', 'print the results as JSON instead of a table')
    .action(async (opts: { transport?: string[]; quick?: boolean; size?: number; json?: boolean; runs?: number }) => {
      const { ipcBenchCommand } = await import('./ipc.ts');
      await ipcBenchCommand({ transports: opts.transport, quick: opts.quick, size: opts.size, json: opts.json, runs: opts.runs });
    });
  ipc
    .command('listen')
    .description('accept one peer on a transport URL and print its messages; the first line is the bound address')
    .argument('<url>', 'unix:/path, unix:@name, tcp://host:port (port 0 picks one), fifo:/path, shm:name', ipcUrl)
    .action(async (url: ReturnType<typeof parseIpcUrl>) => {
      const { ipcListenCommand } = await import('./ipc.ts');
      await ipcListenCommand(url);
    });
  ipc
    .command('send')
    .description('connect to a transport URL and send each message (or each stdin line when none is given)')
    .argument('<url>', 'unix:/path, unix:@name, tcp://host:port, fifo:/path, shm:name', ipcUrl)
    .argument('[message...]', 'messages to send; default: lines of stdin')
    .action(async (url: ReturnType<typeof parseIpcUrl>, messages: string[]) => {
      const { ipcSendCommand } = await import('./ipc.ts');
      await ipcSendCommand(url, messages);
    });

  addConnectCommand(program);
  addBenchCommand(program);
  addScanCommand(program);

  program
    .command('ca')
    .description('the local development CA (tls: { issuer: internal }): where its root certificate is and how to trust it; made on first use')
    .option('--pem', 'print only the root certificate (PEM)')
    .option('--data-dir <dir>', 'data folder (default: $SWITCHYARD_DATA_DIR, else $XDG_DATA_HOME/switchyard, else ~/.local/share/switchyard)')
    .action(async (opts: { pem?: boolean; dataDir?: string }) => {
      const { caCommand } = await import('./ca.ts');
      await caCommand(opts);
    });

  program
    .command('hash-password')
    .description('print the hash of a password for basicAuth users: read from the terminal without echo (asked twice), or from stdin')
    .addOption(new Option('--algorithm <name>', 'hash algorithm').choices(['bcrypt', 'scrypt']).default('bcrypt'))
    .action(async (opts: { algorithm: 'bcrypt' | 'scrypt' }) => {
      const { hashPasswordCommand } = await import('./hash-password.ts');
      await hashPasswordCommand(opts);
    });

  const handlerHelp = HANDLER_CATALOGUE
    .map((m) => `  ${m.type.padEnd(10)} ${m.kinds.join(', ').padEnd(22)} ${m.summary}`)
    .join('\n');
  program.addHelpText(
    'after',
    `\nHandler types (handler: { type: NAME, ... }):\n${handlerHelp}\n\nExamples:\n  switchyard serve                      # the embedded default on 127.0.0.1\n  switchyard serve gateway.yaml -l web=8081\n  switchyard check gateway.yaml\n  switchyard file-server ./site --browse  # a folder on http://127.0.0.1:8080/\n  switchyard reverse-proxy --to 127.0.0.1:9001,127.0.0.1:9002\n  switchyard config default > gateway.yaml\n`,
  );
  return program;
}

buildProgram().parseAsync(process.argv).catch(report);
