import { accessSync, constants, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { handlerModule } from '../handlers/registry.ts';
import { isHttpProtocol, parseTargetAddress } from '../upstream/target.ts';
import type { ValidateContext } from '../handlers/types.ts';
import { handlersOf } from './cross-checks.ts';
import { humanError, type PathIssue } from './errors.ts';

// What `serve` would refuse at start that the schema cannot see: files and folders the config
// names (a static root, TLS certificate and key files, a client CA, error page files) and each handler module's
// own `validate` (HandlerModule in src/handlers/types.ts). Run whenever a config is loaded from
// a file or the admin API (they know the folder relative paths resolve against), on the config
// as written, so that it joins the field errors of the same report.

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A file the config names that cannot be read, or undefined when it can. */
function unreadableFile(file: string, baseDir: string): string | undefined {
  const at = isAbsolute(file) ? file : resolve(baseDir, file);
  const where = at === file ? JSON.stringify(file) : `${JSON.stringify(file)} (${at})`;
  try {
    if (!statSync(at).isFile()) return `${where} is not a file`;
    accessSync(at, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return `file ${where} ${code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read by this process (permission denied)' : `cannot be read (${code ?? (err as Error).message})`}`;
  }
}

/** The certificate, key and client-CA files of a listener's `tls:` block (certificates from files). */
function tlsFileIssues(tls: unknown, at: (string | number)[], baseDir: string): PathIssue[] {
  if (!isRecord(tls)) return [];
  const out: PathIssue[] = [];
  const check = (value: unknown, path: (string | number)[]) => {
    if (typeof value !== 'string' || value === '') return;
    const problem = unreadableFile(value, baseDir);
    if (problem) out.push({ path: [...at, ...path], message: problem });
  };
  if (Array.isArray(tls.certificates)) {
    tls.certificates.forEach((c, i) => {
      if (!isRecord(c)) return;
      check(c.cert, ['certificates', i, 'cert']);
      check(c.key, ['certificates', i, 'key']);
    });
  }
  if (isRecord(tls.clientAuth)) {
    const ca = tls.clientAuth.ca;
    if (Array.isArray(ca)) ca.forEach((f, i) => check(f, ['clientAuth', 'ca', i]));
    else check(ca, ['clientAuth', 'ca']);
  }
  return out;
}

/** The page files of a `middleware.errorPages` block (listener or route level). */
function errorPageFileIssues(middleware: unknown, at: (string | number)[], baseDir: string): PathIssue[] {
  if (!isRecord(middleware) || !isRecord(middleware.errorPages)) return [];
  const out: PathIssue[] = [];
  for (const [status, page] of Object.entries(middleware.errorPages)) {
    if (!isRecord(page) || typeof page.file !== 'string' || page.file === '') continue;
    const problem = unreadableFile(page.file, baseDir);
    if (problem) out.push({ path: [...at, 'errorPages', status, 'file'], message: problem });
  }
  return out;
}

/** `http` when every target of the group has an HTTP scheme, `l4` otherwise (as UpstreamGroup decides). */
function upstreamKinds(config: Record<string, unknown>): (name: string) => 'http' | 'l4' | undefined {
  const upstreams = isRecord(config.upstreams) ? config.upstreams : {};
  return (name) => {
    const group = Object.hasOwn(upstreams, name) ? upstreams[name] : undefined;
    if (!isRecord(group) || !Array.isArray(group.targets) || group.targets.length === 0) return undefined;
    const targets = group.targets.map((t) => {
      const url = typeof t === 'string' ? t : isRecord(t) && typeof t.url === 'string' ? t.url : undefined;
      return url === undefined ? undefined : parseTargetAddress(url);
    });
    if (targets.some((t) => t === undefined)) return undefined;
    return targets.every((t) => isHttpProtocol(t!.protocol)) ? 'http' : 'l4';
  };
}

/** Every problem of the files a config names and of its handlers' own `validate`, with paths. */
export function preflightIssues(config: unknown, baseDir: string): PathIssue[] {
  if (!isRecord(config) || !Array.isArray(config.listeners)) return [];
  const ctx: ValidateContext = { baseDir, upstreamKind: upstreamKinds(config) };
  const out: PathIssue[] = [];
  config.listeners.forEach((l, i) => {
    if (!isRecord(l)) return;
    out.push(...tlsFileIssues(l.tls, ['listeners', i, 'tls'], baseDir));
    out.push(...errorPageFileIssues(l.middleware, ['listeners', i, 'middleware'], baseDir));
    for (const { handler, path, route } of handlersOf(l, ['listeners', i])) {
      if (route) out.push(...errorPageFileIssues(route.middleware, [...path.slice(0, -1), 'middleware'], baseDir));
      const mod = typeof handler.type === 'string' ? handlerModule(handler.type) : undefined;
      if (!mod?.validate) continue;
      // A handler whose fields do not parse has those problems reported by the schema.
      const parsed = mod.schema.safeParse(handler, { error: humanError });
      if (!parsed.success) continue;
      for (const p of mod.validate(parsed.data, ctx)) out.push({ path: [...path, ...p.path], message: p.message });
    }
  });
  return out;
}
