import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportJWK, generateKeyPair, SignJWT, base64url, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { parseConfig } from '../src/config/index.ts';
import { serve, type Yard } from '../src/index.ts';
import { curl, echoed, localServer, startYard } from './helpers/auth-client.ts';

// JWT bearer tokens: signed here with jose, keys served by a real HTTP server on 127.0.0.1 and
// from a file; curl sends them; the echo handler and a proxied upstream show what arrived.

const yards: Yard[] = [];
const dir = mkdtempSync(join(tmpdir(), 'switchyard-jwt-'));
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const c of closers) await c();
  rmSync(dir, { recursive: true, force: true });
});

interface Signer {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signer(kid: string, alg: 'RS256' | 'ES256'): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'switchyard-test';

function sign(s: Signer, claims: JWTPayload = {}, options: { exp?: string | number; aud?: string; iss?: string; kid?: string } = {}): Promise<string> {
  return new SignJWT({ sub: 'user-42', ...claims })
    .setProtectedHeader({ alg: s.alg, kid: options.kid ?? s.kid })
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m')
    .sign(s.privateKey);
}

let k1: Signer; // published by the key server
let k3: Signer; // published later (a rotation)
let stranger: Signer; // never published
let fileKey: Signer;
let fileKey2: Signer;
let published: JWK[] = [];
let fetches = 0;
let keyServerUrl = '';
let stopKeyServer: () => Promise<void>;
let base = '';
const jwksFile = join(dir, 'jwks.json');
let upstreamUrl = '';

before(async () => {
  [k1, k3, stranger, fileKey, fileKey2] = await Promise.all([signer('k1', 'RS256'), signer('k3', 'RS256'), signer('k1', 'RS256'), signer('f1', 'ES256'), signer('f2', 'ES256')]);
  published = [k1.jwk];
  const keys = await localServer((req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify({ keys: published }));
  });
  keyServerUrl = `${keys.url}/jwks`;
  stopKeyServer = keys.close;
  closers.push(keys.close);
  writeFileSync(jwksFile, JSON.stringify({ keys: [fileKey.jwk] }));
  const upstream = await localServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ headers: req.headers }));
  });
  closers.push(upstream.close);
  upstreamUrl = upstream.url;

  const jwtUrl = {
    jwks: { url: keyServerUrl, cooldown: '0s' },
    algorithms: ['RS256'],
    issuer: ISSUER,
    audience: AUDIENCE,
    claimsToHeaders: { sub: 'x-user-id', email: 'x-user-email', 'org.id': 'x-org', roles: 'x-roles' },
  };
  base = await startYard(
    yards,
    [
      { match: { path: '/url/*' }, handler: { type: 'echo' }, middleware: { jwt: jwtUrl } },
      { match: { path: '/proxied/*' }, handler: { type: 'proxy', upstream: 'api' }, middleware: { jwt: jwtUrl } },
      { match: { path: '/cookie' }, handler: { type: 'echo' }, middleware: { jwt: { ...jwtUrl, from: { cookie: 'session' } } } },
      { match: { path: '/query' }, handler: { type: 'echo' }, middleware: { jwt: { ...jwtUrl, from: { query: 'access_token' } } } },
      {
        match: { path: '/file' },
        handler: { type: 'echo' },
        middleware: { jwt: { jwks: { file: jwksFile, refresh: '100ms' }, algorithms: ['ES256'], audience: AUDIENCE, claimsToHeaders: { sub: 'x-user-id' } } },
      },
      // Port 9 on loopback: nothing listens there.
      { match: { path: '/nokeys' }, handler: { type: 'echo' }, middleware: { jwt: { jwks: 'http://127.0.0.1:9/jwks', algorithms: ['RS256'] } } },
    ],
    { upstreams: { api: { targets: [upstreamUrl] } } },
  );
});

const bearer = (token: string) => ['-H', `Authorization: Bearer ${token}`];

function assertInvalid(a: { status: number; headers: Record<string, string>; body: string }, reason: RegExp): void {
  assert.equal(a.status, 401, a.body);
  const challenge = a.headers['www-authenticate'] ?? '';
  assert.match(challenge, /^Bearer realm="switchyard", error="invalid_token", error_description="([^"]*)"$/);
  assert.match(challenge, reason);
  assert.doesNotMatch(a.body, /"headers"/);
  // Nothing of a key is ever in a refusal.
  assert.doesNotMatch(challenge + a.body, /"n"|"x"|"kty"/);
}

test('schema: algorithms are required; none and HMAC are refused with a reason', () => {
  const at = (jwt: unknown) => () =>
    parseConfig({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'echo' }, middleware: { jwt } }] }] }, 'test');
  assert.throws(at({ jwks: 'http://127.0.0.1:1/jwks' }), /middleware\.jwt\.algorithms: /);
  assert.throws(at({ jwks: 'http://127.0.0.1:1/jwks', algorithms: ['none'] }), /algorithms\[0\]: "none" would accept unsigned tokens/);
  assert.throws(at({ jwks: 'http://127.0.0.1:1/jwks', algorithms: ['RS256', 'HS256'] }), /algorithms\[1\]: HS256 needs a shared secret/);
  assert.throws(at({ jwks: 'ftp://x/jwks', algorithms: ['RS256'] }), /middleware\.jwt\.jwks/);
  assert.throws(at({ jwks: { url: 'http://127.0.0.1:1/jwks' }, algorithms: ['RS256'], claimsToHeaders: { sub: 'host' } }), /claimsToHeaders\.sub: /);
  assert.doesNotThrow(at({ jwks: { file: 'keys.json' }, algorithms: ['ES256', 'EdDSA'] }));
});

test('a good token passes; claims arrive as headers and the client\'s own of those names are removed', async () => {
  const token = await sign(k1, { org: { id: 'acme' }, roles: ['admin', 'ops'] });
  const a = await curl([...bearer(token), '-H', 'X-User-Id: root', '-H', 'x-user-email: boss@example.com', `${base}/url/x`]);
  assert.equal(a.status, 200, a.body);
  const h = echoed(a);
  assert.equal(h['x-user-id'], 'user-42');
  assert.equal(h['x-org'], 'acme');
  assert.equal(h['x-roles'], 'admin, ops');
  // The token has no email claim: the forged header is gone, and none is set.
  assert.equal(h['x-user-email'], undefined);
});

test('claims reach a proxied upstream, forged headers (any case, repeated) stripped there too', async () => {
  const token = await sign(k1, { email: 'ann@example.com' });
  const a = await curl([...bearer(token), '-H', 'X-USER-ID: root', '-H', 'x-user-id: root2', '-H', 'X-Org: evil', `${base}/proxied/x`]);
  assert.equal(a.status, 200, a.body);
  const h = echoed(a);
  assert.equal(h['x-user-id'], 'user-42');
  assert.equal(h['x-user-email'], 'ann@example.com');
  assert.equal(h['x-org'], undefined);
  // A refused request never reaches the upstream: 401 from us.
  assert.equal((await curl(['-H', 'X-User-Id: root', `${base}/proxied/x`])).status, 401);
});

test('no token: 401 with a plain Bearer challenge', async () => {
  for (const args of [[], ['-H', 'Authorization: Basic YTpi'], ['-H', 'Authorization: Bearer']]) {
    const a = await curl([...args, `${base}/url/x`]);
    assert.equal(a.status, 401);
    assert.equal(a.headers['www-authenticate'], 'Bearer realm="switchyard"');
  }
});

test('refused: expired, wrong audience, wrong issuer, bad signature, malformed', async () => {
  assertInvalid(await curl([...bearer(await sign(k1, {}, { exp: Math.floor(Date.now() / 1000) - 3600 })), `${base}/url/x`]), /token expired/);
  assertInvalid(await curl([...bearer(await sign(k1, {}, { aud: 'someone-else' })), `${base}/url/x`]), /claim aud not accepted/);
  assertInvalid(await curl([...bearer(await sign(k1, {}, { iss: 'https://evil.test' })), `${base}/url/x`]), /claim iss not accepted/);
  // Another key under the published key's id.
  assertInvalid(await curl([...bearer(await sign(stranger)), `${base}/url/x`]), /signature does not verify/);
  assertInvalid(await curl([...bearer('abc.def.ghi'), `${base}/url/x`]), /malformed token/);
  // Expired within the clock tolerance (60 s by default) still passes.
  assert.equal((await curl([...bearer(await sign(k1, {}, { exp: Math.floor(Date.now() / 1000) - 5 })), `${base}/url/x`])).status, 200);
});

test('refused: alg none, an HMAC token (algorithm confusion), an algorithm not pinned', async () => {
  const claims = { sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 };
  const none = `${base64url.encode(JSON.stringify({ alg: 'none', kid: 'k1' }))}.${base64url.encode(JSON.stringify(claims))}.`;
  assertInvalid(await curl([...bearer(none), `${base}/url/x`]), /algorithm not accepted|malformed token/);
  // HS256 keyed with the public key's modulus, the classic confusion: the algorithm is not pinned.
  const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(new TextEncoder().encode(String(k1.jwk.n)));
  assertInvalid(await curl([...bearer(hs), `${base}/url/x`]), /algorithm not accepted/);
  // A good ES256 token on the RS256-only route.
  assertInvalid(await curl([...bearer(await sign(fileKey, {}, {})), `${base}/url/x`]), /algorithm not accepted/);
});

test('an unknown key id fetches the set again at once: a rotated-in key works, a stranger\'s does not', async () => {
  const before = fetches;
  assertInvalid(await curl([...bearer(await sign(stranger, {}, { kid: 'nobody' })), `${base}/url/x`]), /no known key matches/);
  assert.ok(fetches > before, 'an unknown kid fetched the set again');
  published = [k1.jwk, k3.jwk];
  const a = await curl([...bearer(await sign(k3)), `${base}/url/x`]);
  assert.equal(a.status, 200, a.body);
  assert.equal((await curl([...bearer(await sign(k1)), `${base}/url/x`])).status, 200);
});

test('token in a cookie or a query parameter', async () => {
  const token = await sign(k1);
  const c = await curl(['-b', `theme=dark; session=${token}`, `${base}/cookie`]);
  assert.equal(c.status, 200, c.body);
  assert.equal(echoed(c)['x-user-id'], 'user-42');
  assert.equal((await curl([...bearer(token), `${base}/cookie`])).status, 401);
  const q = await curl([`${base}/query?x=1&access_token=${token}`]);
  assert.equal(q.status, 200, q.body);
  assert.equal((await curl([`${base}/query?access_token=nope`])).status, 401);
});

test('a key set from a file, read again when the file changes', async () => {
  const a = await curl([...bearer(await sign(fileKey)), `${base}/file`]);
  assert.equal(a.status, 200, a.body);
  assert.equal(echoed(a)['x-user-id'], 'user-42');
  const rotated = await sign(fileKey2);
  assertInvalid(await curl([...bearer(rotated), `${base}/file`]), /no known key matches/);
  const tmp = `${jwksFile}.tmp`;
  writeFileSync(tmp, JSON.stringify({ keys: [fileKey2.jwk] }));
  renameSync(tmp, jwksFile);
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    status = (await curl([...bearer(rotated), `${base}/file`])).status;
    if (status !== 200) await sleep(50);
  }
  assert.equal(status, 200, 'the new key was picked up');
  // The old key left the file: its tokens are refused now.
  assertInvalid(await curl([...bearer(await sign(fileKey)), `${base}/file`]), /no known key matches/);
});

test('key server never reachable: 503 (not 401); key server gone after a fetch: known keys go on working', async () => {
  const a = await curl([...bearer(await sign(k1)), `${base}/nokeys`]);
  assert.equal(a.status, 503);
  assert.match(a.body, /signing keys unavailable/);
  assert.equal(a.headers['www-authenticate'], undefined);
  // The keys of /url/* were fetched by the tests before; the server goes away.
  assert.equal((await curl([...bearer(await sign(k1)), `${base}/url/x`])).status, 200);
  await stopKeyServer();
  for (let i = 0; i < 3; i++) {
    const b = await curl([...bearer(await sign(k1)), `${base}/url/x`]);
    assert.equal(b.status, 200, b.body);
    assert.equal(echoed(b)['x-user-id'], 'user-42');
  }
  // An unknown key id cannot be fetched now: refused as unknown, the known ones still pass.
  assertInvalid(await curl([...bearer(await sign(stranger, {}, { kid: 'k9' })), `${base}/url/x`]), /no known key matches/);
  assert.equal((await curl([...bearer(await sign(k3)), `${base}/url/x`])).status, 200);
});

test('HTTP/2 (h2c): claims reach the echo handler and a proxied upstream, forged headers removed', async () => {
  const jwt = { jwks: { file: jwksFile }, algorithms: ['ES256'], audience: AUDIENCE, claimsToHeaders: { sub: 'x-user-id' } };
  const h2 = await startYard(
    yards,
    [
      { match: { path: '/echo' }, handler: { type: 'echo' }, middleware: { jwt } },
      { match: { path: '/proxied' }, handler: { type: 'proxy', upstream: 'api' }, middleware: { jwt } },
    ],
    { upstreams: { api: { targets: [upstreamUrl] } } },
    { http2: { h2c: true } },
  );
  const token = await sign(fileKey2);
  for (const path of ['/echo', '/proxied']) {
    const a = await curl(['--http2-prior-knowledge', ...bearer(token), '-H', 'x-user-id: root', `${h2}${path}`]);
    assert.equal(a.status, 200, `${path}: ${a.body}`);
    assert.equal(echoed(a)['x-user-id'], 'user-42', path);
    const refused = await curl(['--http2-prior-knowledge', '-H', 'x-user-id: root', `${h2}${path}`]);
    assert.equal(refused.status, 401, path);
  }
});

test('a relative key-set file is read from the config file\'s folder (baseDir), not the working folder', async () => {
  const confDir = mkdtempSync(join(dir, 'conf-'));
  writeFileSync(join(confDir, 'keys.json'), JSON.stringify({ keys: [fileKey2.jwk] }));
  const y = await serve(
    {
      listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'echo' }, middleware: { jwt: { jwks: { file: 'keys.json' }, algorithms: ['ES256'], audience: AUDIENCE, claimsToHeaders: { sub: 'x-user-id' } } } }] }],
      logging: { level: 'silent', accessLog: false },
    },
    { logLevel: 'silent', baseDir: confDir },
  );
  yards.push(y);
  const a = await curl([...bearer(await sign(fileKey2)), `http://127.0.0.1:${y.address('w').port}/x`]);
  assert.equal(a.status, 200, a.body);
  assert.equal(echoed(a)['x-user-id'], 'user-42');
});
