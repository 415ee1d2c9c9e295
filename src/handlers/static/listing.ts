import { opendir, lstat } from 'node:fs/promises';
import type { FsRoot } from '../fs-root.ts';

// Directory listings, as HTML (for people) or JSON (for programs). Both are bounded: a directory
// with a million entries yields the first `MAX_ENTRIES` (flagged `truncated`), never a huge page.
// Dotfiles follow the root's policy; with the `deny` symlink policy symlinks are left out, and
// otherwise they are shown as what they are (following one is judged when it is requested).

export const MAX_ENTRIES = 5000;

export interface ListingEntry {
  readonly name: string;
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
  readonly size: number;
  /** ISO 8601 mtime. */
  readonly modified: string;
}

export interface Listing {
  readonly path: string;
  readonly entries: readonly ListingEntry[];
  readonly truncated: boolean;
}

export async function readListing(root: FsRoot, dirPath: string, urlPath: string): Promise<Listing> {
  const entries: ListingEntry[] = [];
  let truncated = false;
  const dir = await opendir(dirPath, { bufferSize: 64 });
  try {
    for await (const d of dir) {
      if (d.name.charCodeAt(0) === 46 && root.options.dotfiles === 'deny') continue;
      if (d.isSymbolicLink() && root.options.symlinks === 'deny') continue;
      if (entries.length >= MAX_ENTRIES) {
        truncated = true;
        break;
      }
      let size = 0;
      let modified = '';
      try {
        const st = await lstat(`${dirPath}/${d.name}`);
        size = st.isFile() ? st.size : 0;
        modified = st.mtime.toISOString();
      } catch {
        continue; // vanished while listing
      }
      const type = d.isFile() ? 'file' : d.isDirectory() ? 'directory' : d.isSymbolicLink() ? 'symlink' : 'other';
      entries.push({ name: d.name, type, size, modified });
    }
  } finally {
    await dir.close().catch(() => {});
  }
  entries.sort((a, b) => (a.type === 'directory') !== (b.type === 'directory') ? (a.type === 'directory' ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { path: urlPath, entries, truncated };
}

/** Whether the client wants JSON: `?format=json`, or an Accept that prefers it over HTML. */
export function wantsJson(query: string, accept: string | undefined): boolean {
  const m = /(?:^|&)format=(json|html)(?:&|$)/.exec(query);
  if (m) return m[1] === 'json';
  if (!accept) return false;
  return accept.includes('application/json') && !accept.includes('text/html');
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export function listingHtml(l: Listing): string {
  const title = `Index of ${escapeHtml(l.path)}`;
  const rows = l.entries.map((e) => {
    const href = encodeURIComponent(e.name) + (e.type === 'directory' ? '/' : '');
    const label = escapeHtml(e.name) + (e.type === 'directory' ? '/' : '');
    const size = e.type === 'file' ? String(e.size) : '-';
    return `<tr><td><a href="./${escapeHtml(href)}">${label}</a></td><td>${size}</td><td>${escapeHtml(e.modified)}</td></tr>`;
  });
  const parent = l.path === '/' ? '' : '<tr><td><a href="../">../</a></td><td>-</td><td></td></tr>';
  const more = l.truncated ? `<p>Only the first ${l.entries.length} entries are shown.</p>` : '';
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}td{padding:.1rem 1rem .1rem 0}td:nth-child(2){text-align:right}</style>
</head><body><h1>${title}</h1>
<table><thead><tr><th>Name</th><th>Size</th><th>Modified</th></tr></thead><tbody>
${parent}${rows.join('\n')}
</tbody></table>${more}</body></html>
`;
}
