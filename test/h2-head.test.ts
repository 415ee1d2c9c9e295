import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { once } from 'node:events';
import { serve, type Yard } from '../src/index.ts';

// A handler's frozen head (the respond and static handlers keep one per answer) goes to node
// without being checked again: as a flat list with slots for :status and Date on Node 24.7 and
// later, as a per-response copy with both filled in before that (h2-exchange.ts, completeHead).
// Whatever the form, the response must carry the handler's status, its fields once each, and
// exactly one Date: the daemon's, or the handler's own when its head has one.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const OWN_DATE = 'Tue, 01 Jan 2030 00:00:00 GMT';

async function session(): Promise<ClientHttp2Session> {
  const y: Yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          http2: { h2c: true },
          // As the benchmark runs it: no request id, so that no field is set before the handler's
          // head (a head with fields set before it is copied field by field instead).
          middleware: { accessLog: false, requestId: false },
          routes: [
            { match: { path: '/created' }, handler: { type: 'respond', status: 201, body: 'made\n', headers: { 'x-extra': 'yes' } } },
            { match: { path: '/dated' }, handler: { type: 'respond', body: 'dated\n', headers: { date: OWN_DATE } } },
            { handler: { type: 'respond', body: 'ok\n' } },
          ],
        },
      ],
    },
    { logLevel: 'silent' },
  );
  closers.push(() => y.stop(100));
  const s = h2connect(`http://127.0.0.1:${y.address('web').port}`);
  closers.push(() => s.destroy());
  await once(s, 'remoteSettings');
  return s;
}

interface Answer {
  status: number;
  /** Every field as received, [name, value, ...] (pseudo-header fields included). */
  raw: string[];
  body: string;
}

async function get(s: ClientHttp2Session, path: string, method = 'GET'): Promise<Answer> {
  const req = s.request({ ':path': path, ':method': method });
  const [headers, , raw] = (await once(req, 'response')) as [Record<string, unknown>, number, string[]];
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (body += d));
  await once(req, 'end');
  return { status: Number(headers[':status']), raw, body };
}

function values(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === name) out.push(raw[i + 1]);
  return out;
}

test('a frozen head goes out with its status, each field once and one Date', async () => {
  const s = await session();
  for (let round = 0; round < 3; round++) {
    const ok = await get(s, '/');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'ok\n');
    assert.deepEqual(values(ok.raw, ':status'), ['200']);
    assert.deepEqual(values(ok.raw, 'content-length'), ['3']);
    assert.equal(values(ok.raw, 'date').length, 1, 'one Date');
    assert.ok(!Number.isNaN(Date.parse(values(ok.raw, 'date')[0])), 'an HTTP date');

    const created = await get(s, '/created');
    assert.equal(created.status, 201, 'the handler status, not the default 200');
    assert.equal(created.body, 'made\n');
    assert.deepEqual(values(created.raw, ':status'), ['201']);
    assert.deepEqual(values(created.raw, 'x-extra'), ['yes']);
    assert.equal(values(created.raw, 'date').length, 1, 'one Date');

    const dated = await get(s, '/dated');
    assert.equal(dated.status, 200);
    assert.deepEqual(values(dated.raw, 'date'), [OWN_DATE], "the handler's own Date, and no second one");
  }
  const head = await get(s, '/created', 'HEAD');
  assert.equal(head.status, 201);
  assert.equal(head.body, '');
  assert.deepEqual(values(head.raw, 'content-length'), ['5']);
});
