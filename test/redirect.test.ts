import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from 'undici';
import { serve, parseConfig, type Yard } from '../src/index.ts';
import { ConfigError } from '../src/config/errors.ts';

// The redirect handler on a real yard: regex captures ($1, {re.N}, {re.NAME}), every status,
// preserveQuery, route parameters, the open-redirect guard, and header injection attempts.

let yard: Yard;
let base: string;
let port: number;

const STATUSES = [301, 302, 303, 307, 308] as const;

before(async () => {
  yard = await serve(
    parseConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          // Kept as sent: `//evil.example` must reach the redirect to test its guard.
          mergeSlashes: false,
          routes: [
            { match: { path: '/old/*' }, handler: { type: 'redirect', from: '^/old/(.*)$', to: '/new/$1' } },
            ...STATUSES.map((status) => ({ match: { path: `/s${status}/*` }, handler: { type: 'redirect', from: '^/s\\d+/(.*)$', to: '/moved/{re.1}', status } })),
            { match: { path: '/nq/*' }, handler: { type: 'redirect', to: '/plain?fixed=1', preserveQuery: false } },
            { match: { path: '/q/*' }, handler: { type: 'redirect', to: '/with?fixed=1#top' } },
            { match: { path: '/user/:id' }, handler: { type: 'redirect', to: 'https://example.com/u/{params.id}', status: 308 } },
            { match: { path: '/named/*' }, handler: { type: 'redirect', from: '^/named/(?<slug>[a-z]+)/(\\d+)$', to: '/n/{re.slug}/$2?cost=$$5' } },
            { match: { path: '/open/*' }, handler: { type: 'redirect', from: '^/open(/.*)$', to: '{re.1}' } },
            { match: { path: '/ext/*' }, handler: { type: 'redirect', from: '^/ext(/.*)$', to: '{re.1}', allowExternal: true } },
            { match: { path: '/hdr' }, handler: { type: 'redirect', to: '{header.x-target}', preserveQuery: false } },
            { match: { path: '/site/*' }, handler: { type: 'redirect', from: '^/site/(.*)$', to: 'https://example.com/$1' } },
            { match: { path: '/joined**' }, handler: { type: 'redirect', from: '^/joined(.*)$', to: 'https://example.com$1' } },
          ],
        },
      ],
      logging: { level: 'silent', accessLog: false },
    }),
    { logLevel: 'silent' },
  );
  port = yard.address('web').port;
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await yard?.stop(100);
});

async function location(path: string, init: { method?: 'GET' | 'HEAD' | 'POST'; headers?: Record<string, string> } = {}): Promise<{ status: number; location: string | undefined; body: string; headers: Record<string, unknown> }> {
  const r = await request(`${base}${path}`, { method: init.method ?? 'GET', headers: init.headers });
  const body = await r.body.text();
  const loc = r.headers.location;
  return { status: r.statusCode, location: Array.isArray(loc) ? loc.join(',') : loc, body, headers: r.headers };
}

test('regex captures: $1 into the target; the query is kept by default', async () => {
  const r = await location('/old/a/b.html?x=1&y=2');
  assert.equal(r.status, 302);
  assert.equal(r.location, '/new/a/b.html?x=1&y=2');
  assert.match(r.body, /redirecting to \/new\/a\/b\.html/);
});

test('every status: 301, 302, 303, 307, 308', async () => {
  for (const status of STATUSES) {
    const r = await location(`/s${status}/page`);
    assert.equal(r.status, status);
    assert.equal(r.location, '/moved/page');
  }
  // 307 and 308 are for any method; a POST gets the same answer.
  const post = await location('/s307/form', { method: 'POST' });
  assert.equal(post.status, 307);
  assert.equal(post.location, '/moved/form');
});

test('preserveQuery: false drops the query; true joins it to a target that has one, before its fragment', async () => {
  assert.equal((await location('/nq/x?drop=me')).location, '/plain?fixed=1');
  assert.equal((await location('/q/x?keep=me')).location, '/with?fixed=1&keep=me#top');
  assert.equal((await location('/q/x')).location, '/with?fixed=1#top');
});

test('named groups, $2 and $$; route parameters; a path the pattern does not match gets 404', async () => {
  assert.equal((await location('/named/abc/42')).location, '/n/abc/42?cost=$5');
  const user = await location('/user/7');
  assert.equal(user.status, 308);
  assert.equal(user.location, 'https://example.com/u/7');
  const miss = await location('/named/ABC/x');
  assert.equal(miss.status, 404);
  assert.equal(miss.location, undefined);
});

test('HEAD: the redirect without a body', async () => {
  const r = await location('/old/x', { method: 'HEAD' });
  assert.equal(r.status, 302);
  assert.equal(r.location, '/new/x');
  assert.equal(r.body, '');
});

test('open redirects: a target whose site comes from the client must stay on this site unless allowExternal', async () => {
  assert.equal((await location('/open/local/page')).location, '/local/page');
  const evil = await location('/open//evil.example/');
  assert.equal(evil.status, 400);
  assert.equal(evil.location, undefined);
  assert.equal((await location('/open/%5Cevil.example')).location, '/%5Cevil.example', 'an encoded backslash stays encoded');
  assert.equal((await location('/hdr', { headers: { 'x-target': 'https://evil.example/' } })).status, 400);
  assert.equal((await location('/hdr', { headers: { 'x-target': '/fine' } })).location, '/fine');
  // The config says the client may choose.
  assert.equal((await location('/ext//elsewhere.example/x')).location, '//elsewhere.example/x');
  // A literal site in the target: a capture after its host cannot change it.
  assert.equal((await location('/site/@evil.example')).location, 'https://example.com/@evil.example');
  // A capture right after the host: it may add a path, not change the host.
  assert.equal((await location('/joined/a?b=1')).location, 'https://example.com/a?b=1');
  assert.equal((await location('/joined')).location, 'https://example.com');
  assert.equal((await location('/joined.evil.example/')).status, 400);
  assert.equal((await location('/joined@evil.example/')).status, 400);
});

/** Sends a raw request and returns the whole response head as text. */
function rawHead(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d) => (text += d));
    s.on('end', () => resolve(text.slice(0, text.indexOf('\r\n\r\n'))));
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('no answer')));
  });
}

test('header injection: CR/LF decoded from a parameter or sent in a header cannot start a field', async () => {
  const head = await rawHead('/user/a%0d%0aSet-Cookie:%20stolen=1');
  const lines = head.split('\r\n');
  assert.equal(lines[0], 'HTTP/1.1 308 Permanent Redirect');
  assert.ok(!lines.some((l) => /^set-cookie/i.test(l)), head);
  assert.ok(lines.includes('location: https://example.com/u/a%0D%0ASet-Cookie:%20stolen=1'), head);
  const viaRegex = await rawHead('/old/a%0d%0aX-Evil:%201');
  assert.ok(viaRegex.split('\r\n').includes('location: /new/a%0d%0aX-Evil:%201'), viaRegex);
  assert.ok(!/^x-evil/im.test(viaRegex));
});

function configError(handler: Record<string, unknown>): string {
  try {
    parseConfig({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'redirect', ...handler } }] }] });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('the config was accepted');
}

test('config errors name the field: invalid or too long pattern, captures it does not have, unknown placeholders, status', () => {
  assert.match(configError({ from: '^/(a', to: '/' }), /handler\.from: not a valid regular expression/);
  assert.match(configError({ from: `^/${'a'.repeat(600)}$`, to: '/' }), /handler\.from: .*at most 512/);
  assert.match(configError({ from: '^/(a)$', to: '/$2' }), /handler\.to: \{re\.2\}: the pattern has 1 capture group/);
  assert.match(configError({ to: '/$1' }), /handler\.to: \$1 is a capture of `from`, which is not set/);
  assert.match(configError({ from: '^/(?<x>a)$', to: '/{re.y}' }), /no group named "y" \(named groups: x\)/);
  assert.match(configError({ to: '/{nope}' }), /handler\.to: unknown placeholder \{nope\}/);
  assert.match(configError({ to: '/', status: 300 }), /handler\.status/);
});
