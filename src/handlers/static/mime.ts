// Content-Type by file extension. A small table of what web roots actually hold, rather than a
// dependency with two thousand entries; config can add or override (`mimeTypes`). Text types
// carry `charset=utf-8` because browsers otherwise guess (and guess wrong for UTF-8 sources).

const TEXT = '; charset=utf-8';

const TABLE: Record<string, string> = {
  html: 'text/html' + TEXT,
  htm: 'text/html' + TEXT,
  css: 'text/css' + TEXT,
  js: 'text/javascript' + TEXT,
  mjs: 'text/javascript' + TEXT,
  cjs: 'text/javascript' + TEXT,
  json: 'application/json' + TEXT,
  map: 'application/json' + TEXT,
  webmanifest: 'application/manifest+json' + TEXT,
  txt: 'text/plain' + TEXT,
  text: 'text/plain' + TEXT,
  log: 'text/plain' + TEXT,
  md: 'text/markdown' + TEXT,
  csv: 'text/csv' + TEXT,
  tsv: 'text/tab-separated-values' + TEXT,
  xml: 'application/xml' + TEXT,
  yaml: 'application/yaml' + TEXT,
  yml: 'application/yaml' + TEXT,
  ts: 'text/plain' + TEXT,
  svg: 'image/svg+xml' + TEXT,
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  ico: 'image/x-icon',
  bmp: 'image/bmp',
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  wasm: 'application/wasm',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tgz: 'application/gzip',
  br: 'application/x-brotli',
  tar: 'application/x-tar',
  mp4: 'video/mp4',
  webm: 'video/webm',
  mp3: 'audio/mpeg',
  ogg: 'audio/ogg',
  wav: 'audio/wav',
  flac: 'audio/flac',
};

export const DEFAULT_TYPE = 'application/octet-stream';

/** Builds a lookup that consults `overrides` (extension without dot -> type) first. */
export function contentTypes(overrides: Readonly<Record<string, string>> = {}): (name: string) => string {
  const table: Record<string, string> = { ...TABLE };
  for (const [ext, type] of Object.entries(overrides)) table[ext.replace(/^\./, '').toLowerCase()] = type;
  return (name) => {
    const dot = name.lastIndexOf('.');
    if (dot <= 0 || dot === name.length - 1) return DEFAULT_TYPE;
    return table[name.slice(dot + 1).toLowerCase()] ?? DEFAULT_TYPE;
  };
}
