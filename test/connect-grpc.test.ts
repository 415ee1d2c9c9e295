import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type Yard } from '../src/index.ts';
import { defaultConfig } from '../src/config/default.ts';
import { parseConnectUrl } from '../src/connect/index.ts';
import { runCli, repoRoot } from './helpers/daemon.ts';

// `switchyard connect grpc://...` run as a user runs it (the CLI in a child process), against
// the embedded default config's listeners (on free ports): gRPC over h2c on `web`, over TLS
// with the local CA on `secure`, at the default gRPC paths.

let dir: string;
let yard: Yard;
let plain: string;
let secure: string;
let caFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-connect-grpc-'));
  const config = defaultConfig(dir);
  for (const l of config.listeners as { address?: string }[]) if (l.address) l.address = '127.0.0.1:0';
  yard = await serve(config, { logLevel: 'silent', dataDir: join(dir, 'data') });
  plain = `127.0.0.1:${yard.address('web').port}`;
  secure = `127.0.0.1:${yard.address('secure').port}`;
  // The local CA's root, as the banner's `try:` line names it.
  const tryIt = yard.listeners().find((l) => l.name === 'secure')!.tryIt;
  caFile = /--cacert (\S+)/.exec(tryIt)![1];
});

after(async () => {
  await yard?.stop(100);
  if (dir) await rm(dir, { recursive: true, force: true });
});

const connect = (args: string[], input?: string) => runCli(['connect', ...args], { input });

test('grpc URLs: the method is the path; grpcs defaults to 443; anything else is a usage error', () => {
  assert.deepEqual(parseConnectUrl('grpc://127.0.0.1:8080/helloworld.Greeter/SayHello'), {
    scheme: 'grpc',
    host: '127.0.0.1',
    port: 8080,
    service: 'helloworld.Greeter',
    method: 'SayHello',
    href: 'grpc://127.0.0.1:8080/helloworld.Greeter/SayHello',
  });
  assert.equal((parseConnectUrl('grpcs://example.com/grpc.health.v1.Health/Check') as { port: number }).port, 443);
  assert.equal((parseConnectUrl('grpc://[::1]:50051/a.B/C') as { host: string }).host, '::1');
  for (const bad of ['grpc://127.0.0.1/a.B/C', 'grpc://127.0.0.1:8080/', 'grpc://127.0.0.1:8080/a.B', 'grpc://127.0.0.1:8080/a.B/C/D', 'grpc://127.0.0.1:8080/a.B/C?x=1']) {
    assert.throws(() => parseConnectUrl(bad), /grpc|port/, bad);
  }
});

test('unary: -d JSON in, the reply as a JSON line out, status OK on stderr, exit 0', async () => {
  const r = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`, '-d', '{"name": "you"}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"message":"Hello, you!"}\n');
  assert.equal(r.stderr, 'status: OK\n');
  // From stdin, pretty-printed: one request.
  const s = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`], '{\n  "name": "stdin"\n}\n');
  assert.equal(s.stdout, '{"message":"Hello, stdin!"}\n');
  // Nothing at all: the empty request.
  const e = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`]);
  assert.equal(e.stdout, '{"message":"Hello, world!"}\n');
});

test('server streaming prints each reply; client streaming takes NDJSON from stdin; bidi from -d lines', async () => {
  const stream = await connect([`grpc://${plain}/helloworld.Greeter/SayHelloStream`, '-d', '{"name":"x","count":3}']);
  assert.equal(stream.code, 0, stream.stderr);
  assert.deepEqual(stream.stdout.trim().split('\n').map((l) => JSON.parse(l).message), ['Hello, x! (1 of 3)', 'Hello, x! (2 of 3)', 'Hello, x! (3 of 3)']);
  const many = await connect([`grpc://${plain}/helloworld.Greeter/SayHelloToMany`], '{"name":"ann"}\n\n{"name":"bob"}\n{"name":"cy"}\n');
  assert.equal(many.code, 0, many.stderr);
  assert.equal(many.stdout, '{"message":"Hello, ann, bob and cy!"}\n');
  const chat = await connect([`grpc://${plain}/helloworld.Greeter/SayHelloChat`, '-d', '{"name":"p"}\n{"name":"q"}']);
  assert.equal(chat.stdout, '{"message":"Hello, p!"}\n{"message":"Hello, q!"}\n');
});

test('health without --proto (the built-in files); a non-OK status is exit 1 with its name', async () => {
  const ok = await connect([`grpc://${plain}/grpc.health.v1.Health/Check`, '-d', '{"service":"helloworld.Greeter"}']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, '{"status":"SERVING"}\n');
  const missing = await connect([`grpc://${plain}/grpc.health.v1.Health/Check`, '-d', '{"service":"nope"}']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '');
  assert.equal(missing.stderr, `switchyard connect: grpc://${plain}/grpc.health.v1.Health/Check: NOT_FOUND (5): unknown service "nope"\n`);
  const big = await connect([`grpc://${plain}/helloworld.Greeter/SayHelloStream`, '-d', '{"count":5000}']);
  assert.equal(big.code, 1);
  assert.match(big.stderr, /INVALID_ARGUMENT \(3\): count 5000 is more than this server sends \(1000\)/);
});

test('--proto FILE; a method the proto lacks, bad JSON and unknown fields are usage errors (exit 2)', async () => {
  const proto = join(dir, 'greeter.proto');
  await copyFile(join(repoRoot, 'proto', 'helloworld.proto'), proto);
  const r = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`, '--proto', proto, '-d', '{"name":"file"}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"message":"Hello, file!"}\n');
  const other = join(dir, 'other.proto');
  await writeFile(other, 'syntax = "proto3";\npackage other;\nservice Thing { rpc Do (Req) returns (Req); }\nmessage Req { string x = 1; }\n');
  const notThere = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`, '--proto', other, '-d', '{}']);
  assert.equal(notThere.code, 2);
  assert.match(notThere.stderr, /no service helloworld\.Greeter in .*other\.proto; services: other\.Thing/);
  // A method the server does not have (the proto says it does): UNIMPLEMENTED from the server, exit 1.
  const extra = join(dir, 'extra.proto');
  await writeFile(extra, 'syntax = "proto3";\npackage helloworld;\nservice Greeter { rpc SayGoodbye (Req) returns (Req); }\nmessage Req { string x = 1; }\n');
  const unimplemented = await connect([`grpc://${plain}/helloworld.Greeter/SayGoodbye`, '--proto', extra, '-d', '{"x":"1"}']);
  assert.equal(unimplemented.code, 1);
  assert.match(unimplemented.stderr, /UNIMPLEMENTED \(12\): unknown method SayGoodbye of service helloworld\.Greeter/);
  const noMethod = await connect([`grpc://${plain}/helloworld.Greeter/SayGoodbye`, '-d', '{}']);
  assert.equal(noMethod.code, 2);
  assert.match(noMethod.stderr, /service helloworld\.Greeter has no method SayGoodbye; methods: SayHello, SayHelloStream, SayHelloToMany, SayHelloChat/);
  const badJson = await connect([`grpc://${plain}/helloworld.Greeter/SayHelloToMany`], '{"name":"a"}\n{oops}\n');
  assert.equal(badJson.code, 2);
  assert.match(badJson.stderr, /stdin line 2: not JSON/);
  const typo = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`, '-d', '{"nmae":"x"}']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /HelloRequest has no field "nmae" \(fields: name, count\)/);
  const missingFile = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`, '--proto', join(dir, 'nope.proto')]);
  assert.equal(missingFile.code, 2);
  assert.match(missingFile.stderr, /--proto .*nope\.proto: no such file/);
  const wrongScheme = await connect(['tcp://127.0.0.1:1', '--proto', proto]);
  assert.equal(wrongScheme.code, 2);
  assert.match(wrongScheme.stderr, /--proto applies to grpc\(s\) URLs only/);
});

test('grpcs: with --ca the local CA root verifies; without it the certificate is refused (UNAVAILABLE); --insecure skips the check', async () => {
  const url = `grpcs://${secure}/helloworld.Greeter/SayHello`;
  const withCa = await connect([url, '--ca', caFile, '-d', '{"name":"tls"}']);
  assert.equal(withCa.code, 0, withCa.stderr);
  assert.equal(withCa.stdout, '{"message":"Hello, tls!"}\n');
  assert.equal(withCa.stderr, 'status: OK\n');
  const untrusted = await connect([url, '-d', '{}']);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /UNAVAILABLE \(14\)/);
  const insecure = await connect([url, '--insecure', '-d', '{"name":"anyway"}']);
  assert.equal(insecure.code, 0, insecure.stderr);
  assert.equal(insecure.stdout, '{"message":"Hello, anyway!"}\n');
});

test('--deadline ends a call with DEADLINE_EXCEEDED; a refused connection is UNAVAILABLE; metadata goes out with -H', async () => {
  const watch = await connect([`grpc://${plain}/grpc.health.v1.Health/Watch`, '--deadline', '300ms', '-d', '{}']);
  assert.equal(watch.code, 1);
  assert.equal(watch.stdout, '{"status":"SERVING"}\n');
  assert.match(watch.stderr, /DEADLINE_EXCEEDED \(4\)/);
  const refused = await connect(['grpc://127.0.0.1:1/helloworld.Greeter/SayHello', '-d', '{}']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /UNAVAILABLE \(14\)/);
  const meta = await connect([`grpc://${plain}/helloworld.Greeter/SayHello`, '-H', 'x-request-id: from-the-cli', '-d', '{}']);
  assert.equal(meta.code, 0, meta.stderr);
});
