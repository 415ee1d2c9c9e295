import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get } from 'node:http';
import { serve, type Yard } from '../src/index.ts';
import { defaultConfig } from '../src/config/default.ts';
import { repoRoot } from './helpers/daemon.ts';
import { run } from './helpers/net.ts';

// What a newcomer meets first: the welcome page, which describes each listener by its own routes
// (http) or its one handler (tcp, unix, udp), for the embedded default and a config of one's
// own; and the launcher, which runs the build and needs tsx only in a checkout without one.

let dir: string;
const yards: Yard[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-housekeeping-'));
});

after(async () => {
  for (const y of yards) await y.stop(100);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The page's rows: listener name -> the text of its "what it does" cell, tags and entities left in. */
function rowsOf(page: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const m of page.matchAll(/<tr data-listener="([^"]+)">(.*?)<\/tr>/g)) {
    const cells = [...m[2].matchAll(/<td>(.*?)<\/td>/g)].map((c) => c[1]);
    rows.set(m[1], cells[3]);
  }
  return rows;
}

async function welcomePage(url: string): Promise<string> {
  const r = await fetch(url);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
  return r.text();
}

test('welcome page of the embedded default: each listener row says what its own routes or handler do', async () => {
  const config = defaultConfig(dir);
  for (const l of config.listeners as { address?: string }[]) if (l.address) l.address = '127.0.0.1:0';
  const yard = await serve(config, { logLevel: 'silent', dataDir: join(dir, 'data') });
  yards.push(yard);
  const web = `http://127.0.0.1:${yard.address('web').port}/`;
  const admin = `http://127.0.0.1:${yard.address('admin').port}/`;
  const page = await welcomePage(web);
  const rows = rowsOf(page);
  assert.deepEqual([...rows.keys()], ['web', 'secure', 'echo-tcp', 'echo-udp', 'files-tcp', 'chat-tcp', 'admin']);

  const webRow = rows.get('web')!;
  for (const line of [
    `<a href="${web}"><code>/</code></a> GET, HEAD: this page`,
    `<a href="${web}health"><code>/health</code></a>: a fixed answer (status 200)`,
    '<code>/echo/*</code>: the request sent back as JSON',
    '<code>/chat/*</code>: chat rooms: the page at /chat/, WebSocket at /chat/ROOM',
    '<code>/helloworld.Greeter/*</code>: gRPC service helloworld.Greeter',
    '<code>/*</code>: static files with ETag and Range, directory listings',
  ]) {
    assert.ok(webRow.includes(line), `web row has ${line}:\n${webRow}`);
  }
  assert.ok(!webRow.includes('metrics'), webRow);
  const adminRow = rows.get('admin')!;
  assert.ok(adminRow.includes(`<a href="${admin}metrics"><code>/metrics</code></a>: Prometheus metrics of this daemon`), adminRow);
  assert.ok(adminRow.includes('<code>/*</code>: the admin API'), adminRow);
  assert.ok(!adminRow.includes('static files') && !adminRow.includes('/chat/'), adminRow);

  assert.equal(rows.get('echo-tcp'), 'sends back every byte it receives');
  assert.equal(rows.get('echo-udp'), 'sends every datagram back');
  assert.equal(rows.get('files-tcp'), 'send a file name and a newline, get the file&#39;s bytes');
  assert.equal(rows.get('chat-tcp'), 'chat rooms as text lines, for nc; the same rooms as the web chat');
  // Next steps point at what this config runs: the demo files' folder, the admin listener's metrics.
  assert.ok(page.includes('Put files in <code>./public</code>'), page);
  assert.ok(page.includes(`Scrape <a href="${admin}metrics">`), page);
});

test('welcome page of a config of one\'s own: its routes, hosts, upstreams and next steps, not the default\'s', async () => {
  const yard = await serve(
    {
      listeners: [
        {
          name: 'front',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/about', host: 'a.example' }, handler: { type: 'welcome' } },
            { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api' } },
            { match: { path: '/teapot' }, handler: { type: 'respond', status: 418, body: 'short and stout\n' } },
            { match: { path: '/ws' }, handler: { type: 'ws-echo' } },
          ],
        },
        { name: 'frames', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'chat', framing: 'frames' } },
        { name: 'echo-frames', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'frame-echo' } },
      ],
      upstreams: { api: { targets: ['http://127.0.0.1:9'] } },
    },
    { logLevel: 'silent', baseDir: dir },
  );
  yards.push(yard);
  const base = `http://127.0.0.1:${yard.address('front').port}`;
  // fetch() does not let a caller set Host; node:http does.
  const page = await new Promise<string>((resolve, reject) => {
    get(`${base}/about`, { headers: { host: 'a.example' } }, (res) => {
      assert.equal(res.statusCode, 200);
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body)).on('error', reject);
    }).on('error', reject);
  });
  const rows = rowsOf(page);
  assert.deepEqual([...rows.keys()], ['front', 'frames', 'echo-frames']);
  const front = rows.get('front')!;
  assert.ok(front.includes('<code>/about</code></a> (host a.example): this page'), front);
  assert.ok(front.includes('<code>/api/*</code>: reverse proxy to upstream api'), front);
  assert.ok(front.includes('<code>/teapot</code></a>: a fixed answer (status 418)'), front);
  assert.ok(front.includes('<code>/ws</code></a>: WebSocket echo'), front);
  assert.equal(rows.get('frames'), 'chat rooms over length-prefixed JSON frames');
  assert.equal(rows.get('echo-frames'), 'echoes length-prefixed frames');
  assert.match(page, /version \S+ &middot; 3 listeners/);
  assert.ok(!page.includes('embedded default'), 'not the default config');
  assert.ok(!page.includes('chat page') && !page.includes('./public') && !page.includes('Prometheus'), 'next steps name only what runs');
});

// bin/switchyard.js in a published install runs dist/ and nothing else; tsx is a devDependency.

test('tsx is a devDependency only, and npm start runs the build, not the sources', async () => {
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string>; scripts: Record<string, string>; files: string[] };
  assert.equal(pkg.dependencies.tsx, undefined);
  assert.ok(pkg.devDependencies.tsx, 'a checkout runs tests and the sources with tsx');
  assert.match(pkg.scripts.start, /^npm run build --silent && node dist\/cli\/main\.js serve$/);
  assert.ok(pkg.files.includes('dist') && pkg.files.includes('bin'));
});

test('bin/switchyard.js without dist/ and without tsx: one line saying how to build, exit 1', async () => {
  // A copy of the launcher in a folder with no dist/ and no node_modules anywhere above it.
  const root = await mkdtemp(join(tmpdir(), 'switchyard-bin-'));
  try {
    await mkdir(join(root, 'bin'));
    await copyFile(join(repoRoot, 'bin/switchyard.js'), join(root, 'bin/switchyard.js'));
    await writeFile(join(root, 'package.json'), '{"type":"module"}\n');
    const r = await run(process.execPath, [join(root, 'bin/switchyard.js'), '--help']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, 'switchyard: no build in dist/ and no tsx to run the sources; in a checkout, run `npm install` (it builds) or `npm run build`\n');
    assert.equal(r.stdout, '');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
