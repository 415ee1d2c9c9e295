import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type IncomingHttpHeaders } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { serve, defineConfig } from '../src/index.ts';
import { Http3Client } from '../src/http3/client.ts';

// One rule for the fields a handler sets (src/protocol/http-fields.ts): the same handler sees the
// same error codes from setHeader over HTTP/1.1, HTTP/2 and HTTP/3 where node:http has a rule,
// and the same refusals over HTTP/2 and HTTP/3 where only those versions have one. Until the
// rules were shared, an HTTP/3 response took any name and any value (CR, LF, a space in a name,
// Transfer-Encoding) and sent it.

/** [name, value] pairs the handler tries, by case. */
const CASES: Record<string, [string, string]> = {
  'space-in-name': ['bad name', 'v'],
  'crlf-in-value': ['x-ok', 'a\r\nx-injected: 1'],
  'nul-in-value': ['x-ok', 'a\0b'],
  'transfer-encoding': ['transfer-encoding', 'chunked'],
  upgrade: ['upgrade', 'websocket'],
  'te-gzip': ['te', 'gzip'],
  'two-content-types': ['content-type', 'text/plain'],
};

/** What setHeader threw (its code), after which the response still goes out. */
function tryCase(res: { setHeader(n: string, v: string | string[]): unknown; end(body: string): unknown }, name: string): string {
  const [field, value] = CASES[name];
  try {
    res.setHeader(field, name === 'two-content-types' ? [value, 'text/html'] : value);
    return 'accepted';
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
}

test('setHeader refuses the same fields with the same codes over HTTP/1.1, HTTP/2 and HTTP/3; nothing refused goes out', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-fields-'));
  const dataDir = join(dir, 'data');
  const yard = await serve(
    defineConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          tls: { issuer: 'internal', names: ['localhost'] },
          http3: {},
          middleware: { accessLog: false },
          routes: [
            {
              match: { path: '/case/*' },
              handler: async (ctx) => {
                const name = (ctx.req.url ?? '').slice('/case/'.length);
                const outcome = tryCase(ctx.res, name);
                ctx.res.setHeader('x-outcome', outcome);
                ctx.res.end(outcome);
              },
            },
          ],
        },
      ],
    }),
    { logLevel: 'silent', dataDir, baseDir: dir },
  );
  const port = yard.address('web').port;
  const ca = readFileSync(join(dataDir, 'pki', 'local', 'root.crt'), 'utf8');
  const h2 = connect(`https://127.0.0.1:${port}`, { ca, servername: 'localhost' });
  const h3 = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost' });
  try {
    const h1Get = (path: string) =>
      new Promise<{ body: string; headers: Record<string, unknown> }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path, ca, servername: 'localhost', agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ body, headers: res.headers }));
        });
        req.on('error', reject);
        req.end();
      });
    const h2Get = (path: string) =>
      new Promise<{ body: string; headers: IncomingHttpHeaders }>((resolve, reject) => {
        const req = h2.request({ ':path': path });
        let headers: IncomingHttpHeaders = {};
        let body = '';
        req.setEncoding('utf8');
        req.on('response', (h) => (headers = h));
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve({ body, headers }));
        req.on('error', reject);
        req.end();
      });
    const outcomes: Record<string, { h1: string; h2: string; h3: string }> = {};
    for (const name of Object.keys(CASES)) {
      const one = await h1Get(`/case/${name}`);
      const two = await h2Get(`/case/${name}`);
      const three = await h3.request({ path: `/case/${name}` });
      outcomes[name] = { h1: one.body, h2: two.body, h3: three.body.toString() };
      // What was refused is not in any response; the handler's own field is.
      for (const [headers, outcome] of [[one.headers, one.body], [two.headers, two.body], [three.headers, three.body.toString()]] as [Record<string, unknown>, string][]) {
        assert.equal(headers['x-outcome'], outcome, `${name}: the response went out with the handler's own field`);
        assert.equal(headers['x-injected'], undefined, `${name}: no injected field`);
        assert.equal(headers['bad name'], undefined);
      }
    }
    // Where node:http has a rule, all three agree with it.
    for (const name of ['space-in-name', 'crlf-in-value', 'nul-in-value']) {
      const want = name === 'space-in-name' ? 'ERR_INVALID_HTTP_TOKEN' : 'ERR_INVALID_CHAR';
      assert.deepEqual(outcomes[name], { h1: want, h2: want, h3: want }, name);
    }
    // HTTP/2 and HTTP/3 refuse connection-specific fields, a TE other than trailers, and a second
    // value of a single-value field; HTTP/1.1 takes them.
    for (const [name, code] of [
      ['transfer-encoding', 'ERR_HTTP2_INVALID_CONNECTION_HEADERS'],
      ['upgrade', 'ERR_HTTP2_INVALID_CONNECTION_HEADERS'],
      ['te-gzip', 'ERR_HTTP2_INVALID_CONNECTION_HEADERS'],
      ['two-content-types', 'ERR_HTTP2_HEADER_SINGLE_VALUE'],
    ] as const) {
      assert.equal(outcomes[name].h2, code, `${name} over HTTP/2`);
      assert.equal(outcomes[name].h3, code, `${name} over HTTP/3`);
    }
  } finally {
    h2.close();
    await h3.close();
    await yard.stop(100);
  }
});
