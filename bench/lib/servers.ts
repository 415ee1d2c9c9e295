import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pinned, readPackageVersion } from './measure.ts';
import { commandExists, runCaptured, type ServerSpec } from './proc.ts';
import type { BenchContext } from '../types.ts';

// Starting the servers several benchmarks share: Switchyard's compiled build with a generated
// config, nginx with a generated nginx.conf (checked with `nginx -t` first), Caddy with a
// generated Caddyfile (checked with `caddy validate`), and the Node.js peers in bench/peers.

/** A server ready to start, or the reason it cannot run (the benchmark reports it and goes on). */
export type Prepared =
  | { readonly ok: true; readonly spec: ServerSpec; readonly info: string }
  | { readonly ok: false; readonly reason: string };

const tail = (text: string, n = 1500) => text.trim().slice(-n);

let buildResult: Promise<string | undefined> | undefined;

/**
 * Compiles Switchyard (`npx tsc -p tsconfig.build.json`, what `npm run build` runs) once per
 * harness process. Resolves to undefined on success, or to why it failed.
 */
export function buildSwitchyard(repo: string): Promise<string | undefined> {
  buildResult ??= runCaptured('npx', ['tsc', '-p', 'tsconfig.build.json'], 120_000, repo).then(
    (r) => (r.code === 0 ? undefined : tail(`${r.stderr}${r.stdout}`) || `tsc exited with ${r.code ?? r.signal}`),
    (e: Error) => e.message,
  );
  return buildResult;
}

export interface SwitchyardOptions {
  readonly repo: string;
  /** Scratch folder; the config goes to `<work>/<configName>`, the log next to it. */
  readonly work: string;
  readonly configName: string;
  /** The YAML config. */
  readonly config: string;
  readonly port: number;
  readonly core: string;
}

/**
 * The compiled daemon, as `npm start` and the bin run it (tsx adds a wrapper call to every
 * closure created per request, which would be measured too), after `switchyard check` accepted
 * the config.
 */
export async function prepareSwitchyard(o: SwitchyardOptions): Promise<Prepared> {
  const build = await buildSwitchyard(o.repo);
  if (build !== undefined) return { ok: false, reason: `\`npm run build\` fails, so there is no compiled daemon to measure:\n${build}` };
  const cli = [join(o.repo, 'dist/cli/main.js')];
  const cfg = join(o.work, o.configName);
  writeFileSync(cfg, o.config);
  const check = await runCaptured(process.execPath, [...cli, 'check', cfg], 60_000, o.repo).catch((e: Error) => e);
  if (check instanceof Error || check.code !== 0) {
    const why = check instanceof Error ? check.message : tail(`${check.stderr}${check.stdout}`);
    return { ok: false, reason: `\`switchyard check\` rejects the benchmark config ${cfg}:\n${why}` };
  }
  // warn, not silent: nothing is logged per request, but a startup failure still says why.
  const args = [...cli, 'serve', cfg, '--log-level', 'warn'];
  return {
    ok: true,
    info: `node ${args.join(' ')}`,
    spec: {
      name: 'Switchyard',
      ...pinned(o.core, process.execPath, args),
      cwd: o.repo,
      env: { ...process.env, NODE_ENV: 'production' },
      logFile: cfg.replace(/\.ya?ml$/, '') + '.log',
      port: o.port,
      startTimeoutMs: 60_000,
    },
  };
}

export interface NodePeerOptions {
  readonly repo: string;
  /** Scratch folder for the log. */
  readonly work: string;
  readonly id: string;
  readonly label: string;
  /** File in bench/peers, run with tsx as `<script> <port> ...extraArgs`. */
  readonly script: string;
  readonly extraArgs?: readonly string[];
  /** npm packages the script needs (devDependencies); a missing one is the reason it cannot run. */
  readonly packages: readonly string[];
  /** The info line, given "pkg version, ..." of those packages. */
  readonly describe: (versions: string) => string;
  readonly port: number;
  readonly core: string;
}

/** A peer server written in Node (bench/peers), pinned to the server core like every server. */
export function prepareNodePeer(o: NodePeerOptions): Prepared {
  // package.json, not the entry: an ESM-only package (uws-pack) has no entry require can resolve.
  for (const p of o.packages) {
    if (!existsSync(join(o.repo, 'node_modules', p, 'package.json'))) {
      return { ok: false, reason: `the npm package \`${p}\` is not installed (run \`npm install\`; it is a devDependency)` };
    }
  }
  const path = join(o.repo, 'bench/peers', o.script);
  const args = ['--import', 'tsx', path, String(o.port), ...(o.extraArgs ?? [])];
  return {
    ok: true,
    info: `${o.describe(o.packages.map((p) => `${p} ${readPackageVersion(o.repo, p)}`).join(', '))} (${path})`,
    spec: {
      name: o.label,
      ...pinned(o.core, process.execPath, args),
      cwd: o.repo,
      env: { ...process.env, NODE_ENV: 'production' },
      logFile: join(o.work, `${o.id}.log`),
      port: o.port,
      startTimeoutMs: 30_000,
    },
  };
}

/** The nginx binary on this machine, if any. */
export function findNginx(): string | undefined {
  return ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((b) => commandExists(b));
}

/** nginx's temp-path directives; an nginx built without a module rejects that module's directive. */
export const NGINX_TEMP_DIRECTIVES = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

/**
 * The main context every benchmark's nginx shares: foreground, one worker without a master, its
 * pid, lock and error log in `dir`, 4096 connections. The caller adds the `http { }` block.
 */
export function nginxMainContext(dir: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
lock_file ${dir}/nginx.lock;
error_log ${dir}/error.log warn;

events {
    worker_connections 4096;
}
`;
}

/** `    proxy_temp_path <dir>/tmp/proxy;` lines for the given modules. */
export function nginxTempPaths(dir: string, temps: readonly string[]): string {
  return temps.map((t) => `    ${t}_temp_path ${dir}/tmp/${t};`).join('\n');
}

export interface NginxOptions {
  /** Display name and ServerSpec name, e.g. "nginx" or "upstream (nginx)". */
  readonly name: string;
  /** Its own folder: nginx.conf, pid, logs and temp dirs go there. */
  readonly dir: string;
  readonly port: number;
  readonly core: string;
  /** The nginx.conf text for the temp-path directives this nginx knows. */
  conf(dir: string, temps: readonly string[]): string;
}

/**
 * Writes `<dir>/nginx.conf` and checks it with `nginx -t`; drops temp-path directives of modules
 * this nginx was built without (nginx-light has no uwsgi/scgi, for one) and tries again.
 */
export async function prepareNginx(o: NginxOptions): Promise<Prepared> {
  const bin = findNginx();
  if (!bin) return { ok: false, reason: 'nginx is not installed (install it with `bash bench/install.sh`)' };
  const { dir } = o;
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  const args = ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log')];
  let temps: string[] = [...NGINX_TEMP_DIRECTIVES];
  let lastError = '';
  // Bounded: at most one retry per temp directive this nginx might not know.
  for (let i = 0; i <= NGINX_TEMP_DIRECTIVES.length; i++) {
    writeFileSync(conf, o.conf(dir, temps));
    const t = await runCaptured(bin, ['-t', '-q', ...args], 30_000);
    if (t.code === 0) {
      const version = await runCaptured(bin, ['-v'], 10_000).catch(() => undefined);
      return {
        ok: true,
        info: `${(version?.stderr ?? '').trim() || bin}; ${conf}`,
        spec: {
          name: o.name,
          ...pinned(o.core, bin, args),
          cwd: dir,
          logFile: join(dir, 'stdout.log'),
          port: o.port,
          startTimeoutMs: 15_000,
        },
      };
    }
    lastError = `${t.stderr}${t.stdout}`.trim();
    const unknown = /unknown directive "(\w+)_temp_path"/.exec(lastError);
    if (!unknown || !temps.includes(unknown[1])) break;
    temps = temps.filter((x) => x !== unknown[1]);
  }
  return { ok: false, reason: `\`nginx -t\` rejects the generated ${conf}:\n${lastError}` };
}

export interface CaddyOptions {
  /** Display name and ServerSpec name, e.g. "Caddy". */
  readonly name: string;
  /** Its own folder: the Caddyfile, its data and config homes and its log go there. */
  readonly dir: string;
  readonly port: number;
  readonly core: string;
  /** The Caddyfile text, given the folder (for `storage file_system <dir>/data`). */
  caddyfile(dir: string): string;
}

/**
 * The global options block every benchmark's Caddyfile starts with: admin API off, no automatic
 * HTTPS or trust-store install, storage and logs inside the run's folder (logs discarded: no
 * access log is configured either), and the protocols the benchmark's clients speak (`h1`; `h1
 * h2` for HTTP/2 over TLS; `h1 h2c` for prior-knowledge HTTP/2), so no HTTP/3 UDP listener.
 */
export function caddyGlobalOptions(dir: string, protocols: string): string {
  return `{
	admin off
	auto_https off
	skip_install_trust
	storage file_system ${dir}/data
	log {
		output discard
	}
	servers {
		protocols ${protocols}
	}
}
`;
}

/**
 * Debian's caddy with a generated `<dir>/Caddyfile` (checked with `caddy validate` first), one
 * core's worth of Go scheduler threads (GOMAXPROCS=1, as the other servers get one process),
 * pinned like every server, HOME and XDG homes inside its folder.
 */
export async function prepareCaddy(o: CaddyOptions): Promise<Prepared> {
  if (!commandExists('caddy')) return { ok: false, reason: 'caddy is not installed (Debian: apt-get install caddy; scripts/install-system-deps.sh)' };
  const { dir } = o;
  mkdirSync(join(dir, 'data'), { recursive: true });
  const conf = join(dir, 'Caddyfile');
  writeFileSync(conf, o.caddyfile(dir));
  // Caddy writes nothing outside its folder: config and data homes point into it.
  const cenv = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), GOMAXPROCS: '1' };
  const args = ['run', '--config', conf, '--adapter', 'caddyfile'];
  const check = await runCaptured('caddy', ['validate', '--config', conf, '--adapter', 'caddyfile'], 30_000, dir, cenv);
  if (check.code !== 0) return { ok: false, reason: `\`caddy validate\` rejects ${conf}:\n${tail(`${check.stderr}${check.stdout}`)}` };
  const version = await runCaptured('caddy', ['version'], 10_000, dir, cenv).catch(() => undefined);
  return {
    ok: true,
    info: `caddy ${(version?.stdout ?? '').trim() || '?'}, GOMAXPROCS=1; ${conf}`,
    spec: { name: o.name, ...pinned(o.core, 'caddy', args), cwd: dir, env: cenv, logFile: join(dir, 'stdout.log'), port: o.port, startTimeoutMs: 15_000 },
  };
}

/** What every benchmark's environment has: its context (cores, load) and its work folder. */
export interface PeerEnv {
  readonly ctx: BenchContext;
  readonly work: string;
}

/** One server a benchmark measures: prepared (config written and checked) for its port before the runs. */
export interface BenchPeer<Id extends string, E extends PeerEnv> {
  readonly id: Id;
  readonly label: string;
  prepare(env: E, port: number): Promise<Prepared>;
}

/** A benchmark's nginx on the server core, in `<work>/<folder>`, with the nginx.conf `conf` writes. */
export function nginxPeer<E extends PeerEnv>(folder: string, conf: (env: E, dir: string, port: number, temps: readonly string[]) => string): BenchPeer<'nginx', E> {
  return {
    id: 'nginx',
    label: 'nginx',
    prepare: (env, port) => prepareNginx({ name: 'nginx', dir: join(env.work, folder), port, core: env.ctx.serverCore, conf: (dir, temps) => conf(env, dir, port, temps) }),
  };
}

/** A benchmark's Caddy on the server core, in `<work>/<folder>`, with the Caddyfile `caddyfile` writes. */
export function caddyPeer<E extends PeerEnv>(folder: string, caddyfile: (env: E, dir: string, port: number) => string): BenchPeer<'caddy', E> {
  return {
    id: 'caddy',
    label: 'Caddy',
    prepare: (env, port) => prepareCaddy({ name: 'Caddy', dir: join(env.work, folder), port, core: env.ctx.serverCore, caddyfile: (dir) => caddyfile(env, dir, port) }),
  };
}
