import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile, rm } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { serve, type Yard } from '../src/index.ts';
import { browserSkipReason, launchChromium } from './helpers/browser.ts';

// The chat page in real headless Chromium against the real `chat` handler: pages talk to each
// other and to a TCP user, see history and errors, and come back by themselves after the
// connection drops and after the daemon restarts. One browser for the file; each page has its
// own browser context, so each has its own localStorage (its remembered nick).

const skip = browserSkipReason();
const WAIT_MS = 15_000;

function chatConfig(httpPort = 0, tcpPort = 0) {
  return {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: `127.0.0.1:${httpPort}`,
        routes: [{ match: { path: '/chat/*' }, handler: { type: 'chat' } }],
      },
      { name: 'chat-tcp', protocol: 'tcp', address: `127.0.0.1:${tcpPort}`, handler: { type: 'chat' } },
    ],
  };
}

let browser: Browser | undefined;
let yard: Yard | undefined;
let webPort = 0;
const contexts: BrowserContext[] = [];
const sockets: Socket[] = [];
const servers: Server[] = [];
const pageErrors: string[] = [];

before(async () => {
  if (skip) return;
  yard = await serve(chatConfig(), { logLevel: 'silent' });
  webPort = yard.address('web').port;
  browser = await launchChromium();
});

after(async () => {
  for (const s of sockets) s.destroy();
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  for (const s of servers) await new Promise((r) => s.close(r));
  await yard?.stop(500);
});

async function openPage(path: string, port = webPort): Promise<Page> {
  assert.ok(browser, 'browser launched');
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
  await page.goto(`http://127.0.0.1:${port}${path}`);
  return page;
}

async function joinAs(page: Page, nick: string): Promise<void> {
  await page.fill('#nick', nick);
  await page.click('#join');
  await page.waitForSelector(`#app[data-joined="true"][data-nick="${nick}"]`);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

/** The messages the page shows, in order: [nick, text]. */
function messagesOn(page: Page): Promise<[string, string][]> {
  return page.$$eval('#messages li.msg', (items) =>
    items.map((li) => [(li as HTMLElement).dataset.nick ?? '', li.querySelector('.text')?.textContent ?? ''] as [string, string]),
  );
}

async function waitForMessage(page: Page, nick: string, text: string): Promise<void> {
  await page.waitForFunction(
    ([n, t]) =>
      [...document.querySelectorAll<HTMLElement>('#messages li.msg')].some(
        (li) => li.dataset.nick === n && li.querySelector('.text')?.textContent === t,
      ),
    [nick, text] as const,
  );
}

function membersOn(page: Page): Promise<string[]> {
  return page.$$eval('#members li', (items) => items.map((li) => (li as HTMLElement).dataset.nick ?? ''));
}

async function waitForMember(page: Page, nick: string, present = true): Promise<void> {
  await page.waitForFunction(
    ([n, p]) => Boolean(document.querySelector(`#members li[data-nick="${n}"]`)) === p,
    [nick, present] as const,
  );
}

/** Waits for the page's n-th "Reconnected" notice (the page's own word that it rejoined). */
async function waitForRejoin(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    (n) =>
      [...document.querySelectorAll('#messages li.notice[data-kind="self"] .text')].filter((e) =>
        e.textContent?.startsWith('Reconnected'),
      ).length >= n,
    count,
    { timeout: 30_000 },
  );
}

/** A line-protocol chat user over plain TCP, like `nc`. */
class LineUser {
  private buffer = '';
  readonly lines: string[] = [];
  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      let i;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, i).replace(/\r$/, ''));
        this.buffer = this.buffer.slice(i + 1);
      }
    });
  }

  static async open(port: number): Promise<LineUser> {
    const socket = connect({ port, host: '127.0.0.1' });
    sockets.push(socket);
    await once(socket, 'connect');
    return new LineUser(socket);
  }

  send(line: string): void {
    this.socket.write(`${line}\n`);
  }

  /** The first line (from `from` on) matching `re`; rejects after a bounded wait. */
  async waitFor(re: RegExp, from = 0): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const hit = this.lines.slice(from).find((l) => re.test(l));
      if (hit !== undefined) return hit;
      if (Date.now() > deadline) throw new Error(`no line matching ${re} within ${WAIT_MS} ms; got:\n${this.lines.join('\n')}`);
      await Promise.race([once(this.socket, 'data'), new Promise((r) => setTimeout(r, 100))]);
    }
  }
}

/**
 * A TCP relay in front of the yard whose connections can all be cut at once: a dropped network
 * as the page sees it, while the daemon (and the room's history) stays up.
 */
async function cuttableRelay(targetPort: number): Promise<{ port: number; cut(): void }> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ port: targetPort, host: '127.0.0.1' });
    open.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}

test('two pages in one room see each other, their messages, and who leaves', { skip }, async () => {
  const a = await openPage('/chat/pair');
  const b = await openPage('/chat/pair');
  await joinAs(a, 'alice');
  await joinAs(b, 'bob');

  await waitForMember(a, 'bob');
  assert.deepEqual(await membersOn(b), ['alice', 'bob']);
  assert.equal(await a.textContent('#room-name'), 'pair');

  await say(a, 'hello from alice');
  await waitForMessage(b, 'alice', 'hello from alice');
  await say(b, 'hello from bob');
  await waitForMessage(a, 'bob', 'hello from bob');
  // The sender's own line is the server's echo, not a local copy, so it carries a seq.
  assert.match((await a.getAttribute('#messages li.msg[data-nick="alice"]', 'data-seq')) ?? '', /^\d+$/);
  const when = await b.getAttribute('#messages li.msg[data-nick="alice"] time', 'datetime');
  assert.ok(when && Math.abs(Date.parse(when) - Date.now()) < 86_400_000, `time from ts: ${when}`);

  // User text is text, never markup.
  const markup = '<img src=x onerror="window.__owned=1"><b>bold</b>';
  await say(a, markup);
  await waitForMessage(b, 'alice', markup);
  assert.equal(await b.locator('#messages img, #messages b').count(), 0);
  assert.equal(await b.evaluate(() => (window as unknown as { __owned?: number }).__owned), undefined);

  await b.context().close();
  await waitForMember(a, 'bob', false);
  await a.waitForSelector('#messages li.notice[data-kind="leave"]');
});

test('a TCP user and a page talk in the same room', { skip }, async () => {
  const tcp = await LineUser.open(yard!.address('chat-tcp').port);
  await tcp.waitFor(/welcome/);
  tcp.send('/nick tcpuser');
  await tcp.waitFor(/is now tcpuser/);
  tcp.send('/join mixed');
  tcp.send('/who');
  await tcp.waitFor(/^\* in mixed: .*tcpuser/);

  const page = await openPage('/chat/mixed');
  await joinAs(page, 'carol');
  await waitForMember(page, 'tcpuser');

  tcp.send('hello from nc');
  await waitForMessage(page, 'tcpuser', 'hello from nc');

  const mark = tcp.lines.length;
  await say(page, 'hello from the browser');
  await tcp.waitFor(/^carol: hello from the browser$/, mark);
});

test('a page that joins later is shown the history, oldest first', { skip }, async () => {
  const first = await openPage('/chat/history');
  await joinAs(first, 'dora');
  for (const n of [1, 2, 3]) await say(first, `history ${n}`);
  await waitForMessage(first, 'dora', 'history 3');

  const late = await openPage('/chat/history');
  await joinAs(late, 'eve');
  await waitForMessage(late, 'dora', 'history 3');
  assert.deepEqual(
    (await messagesOn(late)).map(([, text]) => text),
    ['history 1', 'history 2', 'history 3'],
  );
});

test('a taken nick is shown as an error, another one can be picked, and the nick is remembered', { skip }, async () => {
  const a = await openPage('/chat/clash');
  await joinAs(a, 'frank');

  const b = await openPage('/chat/clash');
  await b.fill('#nick', 'frank');
  await b.click('#join');
  const error = await b.waitForSelector('#nick-error:not([hidden])');
  assert.equal(await error.getAttribute('data-code'), 'NICK_TAKEN');
  assert.match((await error.textContent()) ?? '', /taken/);
  assert.equal(await b.getAttribute('#app', 'data-joined'), 'false');
  assert.equal(await b.isDisabled('#message'), true);

  await joinAs(b, 'frank2');
  assert.equal(await b.isHidden('#nick-error'), true);
  await waitForMember(a, 'frank2');

  // A nick change while joined, refused the same way, keeps the page in the room.
  await b.fill('#nick', 'frank');
  await b.click('#join');
  await b.waitForSelector('#nick-error[data-code="NICK_TAKEN"]:not([hidden])');
  assert.equal(await b.getAttribute('#app', 'data-joined'), 'true');

  await b.reload();
  assert.equal(await b.inputValue('#nick'), 'frank2');
});

test('the room field moves the page to another room and updates the address', { skip }, async () => {
  const mover = await openPage('/chat/');
  await joinAs(mover, 'gus');
  const there = await openPage('/chat/elsewhere');
  await joinAs(there, 'hana');

  await mover.fill('#room', 'elsewhere');
  await mover.click('#room-go');
  await mover.waitForSelector('#app[data-joined="true"][data-room="elsewhere"]');
  assert.equal(new URL(mover.url()).pathname, '/chat/elsewhere');
  await waitForMember(mover, 'hana');
  await waitForMember(there, 'gus');

  await mover.goBack();
  await mover.waitForSelector('#app[data-joined="true"]:not([data-room="elsewhere"])');
  await waitForMember(there, 'gus', false);
});

test('after the connection drops the page rejoins with its nick and shows no message twice', { skip }, async () => {
  const relay = await cuttableRelay(webPort);
  const page = await openPage('/chat/drop', relay.port);
  const other = await openPage('/chat/drop');
  await joinAs(page, 'gina');
  await joinAs(other, 'hugo');
  await say(page, 'before the drop');
  await waitForMessage(other, 'gina', 'before the drop');

  relay.cut();
  await waitForMember(other, 'gina', false);
  // Said while the page is away: it arrives with the history replayed on rejoin.
  await say(other, 'while you were away');

  await waitForRejoin(page, 1);
  assert.equal(await page.getAttribute('#app', 'data-nick'), 'gina');
  await waitForMessage(page, 'hugo', 'while you were away');
  const texts = (await messagesOn(page)).map(([, t]) => t);
  assert.deepEqual(texts.filter((t) => t === 'before the drop'), ['before the drop'], `history replay shown once: ${JSON.stringify(texts)}`);

  await say(page, 'back again');
  await waitForMessage(other, 'gina', 'back again');
});

let restarted: Page | undefined;

test('after the daemon restarts on the same port the page reconnects by itself and can send', { skip }, async () => {
  const page = await openPage('/chat/restart');
  await joinAs(page, 'ivan');
  await say(page, 'before the restart');
  await waitForMessage(page, 'ivan', 'before the restart');

  await yard!.stop(1000);
  yard = await serve(chatConfig(webPort), { logLevel: 'silent' });

  await waitForRejoin(page, 1);
  assert.equal(await page.getAttribute('#app', 'data-nick'), 'ivan');
  // The new daemon's room counts seqs from the start again; the page must not take the new
  // message for one it has already shown.
  await say(page, 'after the restart');
  await waitForMessage(page, 'ivan', 'after the restart');

  const witness = await openPage('/chat/restart');
  await joinAs(witness, 'judy');
  await waitForMessage(witness, 'ivan', 'after the restart');
  await waitForMember(page, 'judy');
  restarted = page;
});

test('a screenshot of the page is a PNG', { skip }, async (t) => {
  assert.ok(restarted, 'the restart test left its page');
  const path = join(tmpdir(), `switchyard-chat-page-${process.pid}.png`);
  await rm(path, { force: true });
  await restarted.screenshot({ path });
  const png = await readFile(path);
  assert.ok(png.length > 1000, `screenshot has ${png.length} bytes`);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  t.diagnostic(`chat page screenshot: ${path}`);
});

test('no page threw an uncaught error', { skip }, () => {
  assert.deepEqual(pageErrors, []);
});
