import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { HttpContext } from '../types.ts';
import { replyError } from '../http/reply.ts';
import { contentTypes } from '../static/mime.ts';
import { bundledPublicDir } from '../../config/default.ts';
import { isRoomName } from './protocol.ts';

// The chat web page (public/chat/ in the package), for GET and HEAD on the chat route:
//   /chat            301 to /chat/ (so that the page's relative `_/chat.js` resolves)
//   /chat/, /chat/R  index.html (the script reads the room from the address)
//   /chat/_/F        the asset F
//   anything else    404
// The few small files are read once, when the handler is provisioned, and answered from memory
// with an ETag; a page without its files answers 404 naming what is missing rather than failing
// the whole daemon's start.

export const chatPageDir = join(bundledPublicDir, 'chat');

/** Assets larger than this, or more of them, are not the chat page: refuse to hold them in memory. */
const MAX_FILE = 1024 * 1024;
const MAX_FILES = 64;
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

interface PageFile {
  body: Buffer;
  type: string;
  etag: string;
}

export class ChatPage {
  private readonly files = new Map<string, PageFile>();

  constructor(dir = chatPageDir) {
    const typeOf = contentTypes();
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // no page files: every page request is a 404 saying so
    }
    for (const name of names.filter((n) => ASSET_NAME.test(n)).sort().slice(0, MAX_FILES)) {
      const path = join(dir, name);
      try {
        const st = statSync(path);
        if (!st.isFile() || st.size > MAX_FILE) continue;
        const body = readFileSync(path);
        this.files.set(name, { body, type: typeOf(name), etag: `"${createHash('sha1').update(body).digest('base64url')}"` });
      } catch {
        // unreadable: left out, answered 404
      }
    }
  }

  /** True when index.html is there. */
  get available(): boolean {
    return this.files.has('index.html');
  }

  serve(ctx: HttpContext): void {
    const { req, res, pathRest } = ctx;
    if (req.method !== 'GET' && req.method !== 'HEAD') return replyError(res, 405, 'method not allowed', { headers: { allow: 'GET, HEAD' } });
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (pathRest === '/' && !path.endsWith('/')) {
      // The route matched without the trailing slash (`/chat`): the page's relative links need it.
      // One leading slash, whatever the client sent: `//x` would send the browser to host x.
      res.writeHead(301, { location: `${path.replace(/^\/+/, '/')}/${q === -1 ? '' : url.slice(q)}`, 'content-length': 0 });
      res.end();
      return;
    }
    let name: string | undefined;
    if (pathRest === '/') name = 'index.html';
    else if (pathRest.startsWith('/_/')) name = pathRest.slice(3);
    else if (isRoomName(pathRest.slice(1))) name = 'index.html';
    const file = name !== undefined && ASSET_NAME.test(name) ? this.files.get(name) : undefined;
    if (!file) {
      const missing = name === 'index.html' && !this.available;
      return replyError(res, 404, missing ? 'chat page files are not installed' : 'not found');
    }
    const headers = { 'content-type': file.type, 'content-length': file.body.length, etag: file.etag, 'cache-control': 'no-cache' };
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, { etag: file.etag, 'cache-control': 'no-cache' });
      res.end();
      return;
    }
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : file.body);
  }
}
