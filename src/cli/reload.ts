// `switchyard reload [--admin URL]`: asks a running daemon to reload its config through its admin
// API (POST {admin}/reload) and prints the JSON answer. Exit 0 when it reloaded ({ ok: true }),
// 1 when it refused ({ ok: false }, the running config unchanged) or answered something else,
// 2 when the daemon cannot be reached. The admin API lets loopback callers in, and others that
// present its token: $SWITCHYARD_ADMIN_TOKEN is sent as `Authorization: Bearer ...` when set (an
// environment variable rather than a flag, so the token does not show in `ps`).

/** The embedded default config's admin listener (src/config/default.ts). */
export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9900';

/** How long a reload may take before the client gives up (a reload binds listeners, reads certificates). */
const TIMEOUT_MS = 60_000;

export interface ReloadOptions {
  /** Admin listener URL; `host:port` alone means http. */
  admin?: string;
  /** The admin API's bearer token, for callers that are not on loopback. */
  token?: string;
}

function reloadUrl(admin: string, action = 'reload'): URL {
  const base = /^[a-z][a-z0-9+.-]*:\/\//i.test(admin) ? admin : `http://${admin}`;
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw Object.assign(new Error(`--admin: not a URL: "${admin}" (e.g. http://127.0.0.1:9900)`), { exitCode: 2 });
  }
  url.pathname = url.pathname.replace(/\/+$/, '') + `/${action}`;
  url.search = '';
  url.hash = '';
  return url;
}

function exit(code: number, err?: string): never {
  if (err) process.stderr.write(`switchyard: ${err}\n`);
  process.exit(code);
}

export async function reloadCommand(options: ReloadOptions & { action?: 'reload' | 'upgrade' } = {}): Promise<void> {
  const action = options.action ?? 'reload';
  let url: URL;
  try {
    url = reloadUrl(options.admin ?? DEFAULT_ADMIN_URL, action);
  } catch (err) {
    exit(2, (err as Error).message);
  }
  let res: Response;
  try {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    res = await fetch(url, { method: 'POST', headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS / 1000}s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    exit(2, `cannot reach the daemon's admin API at ${url.origin} (${why}); is it running, and is --admin its admin listener?`);
  }
  const text = await res.text();
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  const ok = (answer as { ok?: unknown } | undefined)?.ok;
  if (typeof answer !== 'object' || answer === null || typeof ok !== 'boolean') {
    const hint =
      res.status === 404
        ? ` (this daemon has no ${action} endpoint: send it ${action === 'reload' ? 'SIGHUP' : 'SIGUSR2'} instead)`
        : res.status === 403 || res.status === 401
          ? ' (the admin API takes loopback callers, or its token in $SWITCHYARD_ADMIN_TOKEN)'
          : '';
    exit(1, `${url.href} answered HTTP ${res.status} without a${action === 'upgrade' ? 'n' : ''} ${action} result${hint}: ${text.slice(0, 200).trim()}`);
  }
  process.stdout.write(JSON.stringify(answer, null, 2) + '\n');
  if (ok && action === 'upgrade') {
    process.stderr.write(`switchyard: upgraded: daemon ${String((answer as { pid?: unknown }).pid)} took over; the old one drains and exits\n`);
    exit(0);
  }
  if (!ok && action === 'upgrade') exit(1, `upgrade failed: ${String((answer as { error?: unknown }).error ?? 'no reason given')}; the running daemon goes on serving`);
  if (ok) {
    const changed = (answer as { changed?: unknown }).changed;
    const list = Array.isArray(changed) ? changed.map(String) : [];
    process.stderr.write(`switchyard: reloaded (${list.length ? `changed: ${list.join(', ')}` : 'nothing changed'})\n`);
    exit(0);
  }
  const error = (answer as { error?: unknown }).error;
  exit(1, `reload failed: ${typeof error === 'string' ? error : 'no reason given'}; the running config is unchanged`);
}
