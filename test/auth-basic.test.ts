import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import bcrypt from 'bcryptjs';
import { parseConfig } from '../src/config/index.ts';
import { redact } from '../src/handlers/admin/redact.ts';
import { hashPassword, parsePasswordHash, passwordHashProblem, verifyPassword } from '../src/middleware/auth/password-hash.ts';
import { parseBasicAuthorization } from '../src/middleware/auth/basic.ts';
import { VerifiedCache } from '../src/middleware/auth/verified-cache.ts';
import type { Yard } from '../src/index.ts';
import { curl, echoed, startYard } from './helpers/auth-client.ts';
import { runCli } from './helpers/daemon.ts';
import { WebSocket } from 'ws';

// Basic authentication: hashes only in the config (bcrypt and scrypt), curl -u as the client,
// the user told to the handler in a header a client cannot forge.

const yards: Yard[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
});

// Cost 4: the lowest bcrypt takes, so the test does not spend seconds hashing.
const aliceHash = bcrypt.hashSync('wonderland', 4);
const carolHash = aliceHash.replace(/^\$2b\$/, '$2y$');
let bobHash = '';

async function basicYard(extra: Record<string, unknown> = {}): Promise<string> {
  bobHash ||= await hashPassword('builder', 'scrypt');
  return startYard(yards, [
    {
      handler: { type: 'echo' },
      middleware: {
        cors: true,
        basicAuth: {
          realm: 'staff only',
          users: [
            { username: 'alice', password: aliceHash },
            { username: 'bob', password: bobHash },
          ],
          ...extra,
        },
      },
    },
  ]);
}

test('hash formats: bcrypt ($2a/$2b/$2y) and scrypt verify; plain and malformed values are named, never echoed', async () => {
  assert.equal(passwordHashProblem(aliceHash), undefined);
  assert.equal(await verifyPassword('wonderland', parsePasswordHash(carolHash)), true);
  assert.equal(await verifyPassword('wonderland', parsePasswordHash(aliceHash.replace(/^\$2b\$/, '$2a$'))), true);
  assert.equal(await verifyPassword('Wonderland', parsePasswordHash(aliceHash)), false);
  const s = await hashPassword('builder', 'scrypt');
  assert.match(s, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.equal(await verifyPassword('builder', parsePasswordHash(s)), true);
  assert.equal(await verifyPassword('builders', parsePasswordHash(s)), false);
  assert.match(passwordHashProblem('hunter2') ?? '', /plain password.*switchyard hash-password/);
  assert.match(passwordHashProblem('$2b$12$short') ?? '', /malformed bcrypt/);
  assert.match(passwordHashProblem(bcrypt.hashSync('x', 4).replace('$04$', '$20$')) ?? '', /cost 20/);
  assert.match(passwordHashProblem('$scrypt$ln=25,r=8,p=1$c2FsdHNhbHRzYWx0$' + 'A'.repeat(43)) ?? '', /ln=25/);
  assert.match(passwordHashProblem('$argon2id$v=19$m=65536,t=3,p=4$abc$def') ?? '', /unknown password hash format/);
});

test('config: a plain password is an error naming the field, with the hint, and the password is not repeated', () => {
  const config = {
    listeners: [
      {
        name: 'w',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [{ handler: { type: 'echo' }, middleware: { basicAuth: { users: [{ username: 'alice', password: 'correct-horse-battery' }, { username: 'alice', password: aliceHash }] } } }],
      },
    ],
  };
  assert.throws(
    () => parseConfig(config, 'test.yaml'),
    (err: Error) => {
      assert.match(err.message, /listeners\[0\]\.routes\[0\]\.middleware\.basicAuth\.users\[0\]\.password: .*plain password.*switchyard hash-password/);
      assert.match(err.message, /users\[1\]\.username: user "alice" is listed twice/);
      assert.doesNotMatch(err.message, /correct-horse-battery/);
      return true;
    },
  );
});

test('admin GET /config redaction: password hashes are hidden', () => {
  const config = parseConfig(
    {
      listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'echo' }, middleware: { basicAuth: { users: [{ username: 'alice', password: aliceHash }] } } }] }],
    },
    'test',
  );
  const shown = JSON.stringify(redact(config));
  assert.doesNotMatch(shown, /\$2b\$/);
  assert.match(shown, /"username":"alice","password":"\[redacted\]"/);
});

test('Authorization parsing: scheme case, padding, a colon in the password, junk', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(parseBasicAuthorization(`basic ${b64('a:b:c')}`), { username: 'a', password: 'b:c' });
  assert.deepEqual(parseBasicAuthorization(`Basic ${b64('zoë:pässword')}`), { username: 'zoë', password: 'pässword' });
  assert.equal(parseBasicAuthorization(`Basic ${b64('nocolon')}`), undefined);
  assert.equal(parseBasicAuthorization(`Basic ${b64(':empty-user')}`), undefined);
  assert.equal(parseBasicAuthorization('Bearer abc'), undefined);
  assert.equal(parseBasicAuthorization('Basic !!!'), undefined);
  assert.equal(parseBasicAuthorization(undefined), undefined);
});

test('verified cache: remembers a match for its ttl only, a different password is not a match, bounded in size', () => {
  const cache = new VerifiedCache(1000, 3);
  cache.add('alice', 'H', 'pw', 0);
  assert.equal(cache.has('alice', 'H', 'pw', 999), true);
  assert.equal(cache.has('alice', 'H', 'pw2', 10), false);
  assert.equal(cache.has('alice', 'H2', 'pw', 10), false);
  assert.equal(cache.has('alice', 'H', 'pw', 1000), false);
  for (let i = 0; i < 10; i++) cache.add(`u${i}`, 'H', 'pw', 2000);
  assert.equal(cache.size, 3);
  assert.equal(cache.has('u9', 'H', 'pw', 2001), true);
  assert.equal(cache.has('u0', 'H', 'pw', 2001), false);
  const off = new VerifiedCache(0, 3);
  off.add('a', 'H', 'pw', 0);
  assert.equal(off.has('a', 'H', 'pw', 0), false);
});

test('curl -u: good bcrypt and scrypt users pass with the user header; a forged one is replaced', async () => {
  const base = await basicYard();
  for (let i = 0; i < 3; i++) {
    const a = await curl(['-u', 'alice:wonderland', '-H', 'X-Authenticated-User: root', `${base}/x`]);
    assert.equal(a.status, 200);
    assert.equal(echoed(a)['x-authenticated-user'], 'alice');
    // The password goes on unless stripAuthorization says otherwise.
    assert.match(String(echoed(a).authorization), /^Basic /);
  }
  const b = await curl(['-u', 'bob:builder', `${base}/y`]);
  assert.equal(b.status, 200);
  assert.equal(echoed(b)['x-authenticated-user'], 'bob');
});

test('curl -u: wrong password, unknown user, missing or junk credentials get 401 with the Basic challenge', async () => {
  const base = await basicYard();
  const cases: string[][] = [
    ['-u', 'alice:wrong'],
    ['-u', 'bob:wrong'],
    ['-u', 'mallory:wonderland'],
    [],
    ['-H', 'Authorization: Basic not-base64!'],
    ['-H', 'Authorization: Bearer abc'],
  ];
  for (const args of cases) {
    const a = await curl([...args, `${base}/x`]);
    assert.equal(a.status, 401, args.join(' '));
    assert.equal(a.headers['www-authenticate'], 'Basic realm="staff only", charset="UTF-8"', args.join(' '));
    assert.doesNotMatch(a.body, /"headers"/);
  }
  // A success remembered for alice does not let a wrong password through afterwards.
  assert.equal((await curl(['-u', 'alice:wonderland', `${base}/x`])).status, 200);
  assert.equal((await curl(['-u', 'alice:wonderland!', `${base}/x`])).status, 401);
});

test('stripAuthorization and userHeader: false: the upstream sees neither the password nor a user header', async () => {
  const base = await basicYard({ stripAuthorization: true, userHeader: false });
  const a = await curl(['-u', 'alice:wonderland', '-H', 'x-authenticated-user: forged', `${base}/x`]);
  assert.equal(a.status, 200);
  assert.equal(echoed(a).authorization, undefined);
  // With no user header configured, a client's header of the default name is the client's business.
  assert.equal(echoed(a)['x-authenticated-user'], 'forged');
});

test('CORS preflights are answered before authentication', async () => {
  const base = await basicYard();
  const a = await curl(['-X', 'OPTIONS', '-H', 'Origin: https://app.example', '-H', 'Access-Control-Request-Method: GET', `${base}/x`]);
  assert.equal(a.status, 204);
  assert.equal(a.headers['access-control-allow-origin'], '*');
  assert.equal((await curl(['-H', 'Origin: https://app.example', `${base}/x`])).status, 401);
});

test('switchyard hash-password: reads the password from stdin, prints a hash that verifies', async () => {
  for (const algorithm of ['scrypt', 'bcrypt'] as const) {
    const r = await runCli(['hash-password', '--algorithm', algorithm], { input: 'open sesame\n', timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const hash = r.stdout.trim();
    assert.equal(passwordHashProblem(hash), undefined, hash);
    assert.equal(parsePasswordHash(hash).algorithm, algorithm);
    assert.equal(await verifyPassword('open sesame', parsePasswordHash(hash)), true);
    assert.equal(await verifyPassword('open sesame\n', parsePasswordHash(hash)), false);
  }
  const empty = await runCli(['hash-password'], { input: '', timeoutMs: 30_000 });
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /empty password/);
  const long = await runCli(['hash-password', '--algorithm', 'bcrypt'], { input: 'x'.repeat(100), timeoutMs: 30_000 });
  assert.equal(long.code, 2);
  assert.match(long.stderr, /72 bytes.*scrypt/);
});

test('a WebSocket upgrade passes the same check: 401 without credentials, open with them', async () => {
  const base = await startYard(yards, [{ handler: { type: 'ws-echo' }, middleware: { basicAuth: { users: [{ username: 'alice', password: aliceHash }] } } }]);
  const url = base.replace('http:', 'ws:') + '/ws';
  const refused = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => reject(new Error('opened without credentials')));
    ws.on('error', () => {});
  });
  assert.equal(refused, 401);
  const echo = await new Promise<string>((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Basic ${Buffer.from('alice:wonderland').toString('base64')}` } });
    ws.on('open', () => ws.send('hello'));
    ws.on('message', (data) => {
      resolve(String(data));
      ws.close();
    });
    ws.on('error', reject);
  });
  assert.equal(echo, 'hello');
});

test('listener-wide basicAuth: every route asks, a route with basicAuth: false does not; a rate limit after it counts per user', async () => {
  const base = await startYard(
    yards,
    [
      { match: { path: '/health' }, handler: { type: 'respond', body: 'ok' }, middleware: { basicAuth: false } },
      { match: { path: '/limited' }, handler: { type: 'echo' }, middleware: { rateLimit: { rate: 1, per: '1h', burst: 1, key: { header: 'x-authenticated-user' } } } },
      { handler: { type: 'echo' } },
    ],
    {},
    { middleware: { basicAuth: { users: [{ username: 'alice', password: aliceHash }, { username: 'carol', password: carolHash }] } } },
  );
  assert.equal((await curl([`${base}/health`])).status, 200);
  assert.equal((await curl([`${base}/other`])).status, 401);
  assert.equal((await curl(['-u', 'carol:wonderland', `${base}/other`])).status, 200);
  // One request an hour per user: alice's second is refused, carol's first is not. A client
  // cannot spend someone else's tokens by sending the header itself.
  assert.equal((await curl(['-u', 'alice:wonderland', `${base}/limited`])).status, 200);
  assert.equal((await curl(['-u', 'alice:wonderland', `${base}/limited`])).status, 429);
  assert.equal((await curl(['-u', 'carol:wonderland', '-H', 'x-authenticated-user: alice', `${base}/limited`])).status, 200);
  // Unauthenticated requests are refused before they take a token.
  assert.equal((await curl([`${base}/limited`])).status, 401);
});
