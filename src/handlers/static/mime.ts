import mime from 'mime-types';

// Content-Type by file extension, from mime-db (through `mime-types`): the table the Node web
// world maintains (express, koa and fastify's static servers use it), so a new format gets its
// type by updating a dependency rather than this file. Config can add or override (`mimeTypes`).
// Text types carry `charset=utf-8` because browsers otherwise guess, and guess wrong for UTF-8.

const UTF8 = '; charset=utf-8';

export const DEFAULT_TYPE = 'application/octet-stream';

/**
 * Where a web root means something else than mime-db's answer: `.cjs` is JavaScript to a browser
 * (mime-db says application/node), and `.tgz` is a gzip file mime-db does not list.
 */
const WEB_ROOT_TYPES: ReadonlyMap<string, string> = new Map([
  ['cjs', 'text/javascript'],
  ['tgz', 'application/gzip'],
]);

/** Distinct extensions remembered per lookup; names past that are looked up each time. */
const MAX_CACHED = 1024;

/** Whether a type is text a browser decodes: mime-db's charset, or an XML or JSON type. */
function isText(type: string): boolean {
  return mime.charset(type) === 'UTF-8' || type === 'application/xml' || type.endsWith('+xml') || type.endsWith('+json');
}

function typeOfExtension(ext: string): string {
  // mime.types has no prototype, so `x.constructor` finds nothing there.
  const type = WEB_ROOT_TYPES.get(ext) ?? mime.types[ext];
  if (type === undefined) return DEFAULT_TYPE;
  return isText(type) ? type + UTF8 : type;
}

/**
 * Builds a lookup of a file name's Content-Type. `overrides` (extension, with or without its dot,
 * -> type) win over the database and are sent exactly as given.
 */
export function contentTypes(overrides: Readonly<Record<string, string>> = {}): (name: string) => string {
  const own = new Map<string, string>();
  for (const [ext, type] of Object.entries(overrides)) own.set(ext.replace(/^\./, '').toLowerCase(), type);
  const cache = new Map<string, string>();
  return (name) => {
    const dot = name.lastIndexOf('.');
    // `.bashrc` has no extension, `name.` an empty one.
    if (dot <= 0 || dot === name.length - 1) return DEFAULT_TYPE;
    const ext = name.slice(dot + 1).toLowerCase();
    let type = cache.get(ext);
    if (type === undefined) {
      type = own.get(ext) ?? typeOfExtension(ext);
      if (cache.size < MAX_CACHED) cache.set(ext, type);
    }
    return type;
  };
}
