import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { handlerModule, registerHandler, serve, type Yard } from '../src/index.ts';
import { tickGameHandler } from '../examples/tick-game/handler.ts';
import { browserSkipReason, launchChromium } from './helpers/browser.ts';

// The tick-game page in headless Chromium, two pages with 100 ms of simulated latency each way:
// keys pressed in one page move its square at once (prediction), the other page sees the move,
// and once the keys are up the predicted position settles on the server's (reconciliation).
// The page's view is read through its window.__game hook.

const skip = browserSkipReason();
const WAIT_MS = 15_000;
const publicDir = fileURLToPath(new URL('../examples/tick-game/public/', import.meta.url));

interface Pos {
  x: number;
  y: number;
}
interface GameView {
  open: boolean;
  id: string | null;
  tick: number;
  pending: number;
  predicted: Pos | null;
  server: Pos | null;
  others: Record<string, Pos>;
}

declare global {
  interface Window {
    __game: { state(): GameView };
  }
}

if (!handlerModule('tick-game')) registerHandler(tickGameHandler);

let browser: Browser | undefined;
let yard: Yard | undefined;
let port = 0;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];

before(async () => {
  if (skip) return;
  yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/game/*' }, handler: { type: 'tick-game', world: 'page-test' } },
            { match: { path: '/*' }, handler: { type: 'static', root: publicDir } },
          ],
        },
      ],
    },
    { logLevel: 'silent' },
  );
  port = yard.address('web').port;
  browser = await launchChromium();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await yard?.stop(500);
});

async function openPage(query: string): Promise<Page> {
  assert.ok(browser, 'browser launched');
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`http://127.0.0.1:${port}/${query}`);
  await page.waitForFunction(() => window.__game?.state().predicted !== null);
  return page;
}

const view = (page: Page): Promise<GameView> => page.evaluate(() => window.__game.state());

test('two pages with ?lag=100: one moves, the other sees it, prediction settles on the server', { skip }, async () => {
  const mover = await openPage('?lag=100');
  const watcher = await openPage('?lag=100');
  const me = await view(mover);
  assert.ok(me.id && me.predicted);
  await watcher.waitForFunction((id) => id in window.__game.state().others, me.id);
  const seenBefore = (await view(watcher)).others[me.id];
  const start = me.predicted;

  // Hold right (or left, when near the right wall) for a while; the own square moves before any
  // snapshot could have answered (100 ms each way), which is the prediction.
  const key = start.x < 400 ? 'ArrowRight' : 'ArrowLeft';
  const sign = key === 'ArrowRight' ? 1 : -1;
  await mover.keyboard.down(key);
  await mover.waitForFunction(([x0, s]) => (window.__game.state().predicted!.x - x0) * s > 20, [start.x, sign] as const);
  const during = await view(mover);
  assert.ok(during.pending > 0, 'inputs in flight while the key is down');
  assert.ok((during.predicted!.x - during.server!.x) * sign > 0, 'the prediction is ahead of the server (its snapshots are 200 ms old)');
  await mover.waitForTimeout(300);
  await mover.keyboard.up(key);

  // Reconciliation: once the inputs that moved are applied (those still in flight are no-ops,
  // the page sends one every tick), the prediction is the server's position.
  await mover.waitForFunction(([x0, s]) => {
    const g = window.__game.state();
    return g.server !== null && g.predicted !== null && (g.server.x - x0) * s > 20 && g.predicted.x === g.server.x && g.predicted.y === g.server.y;
  }, [start.x, sign] as const);
  const settled = await view(mover);
  assert.ok((settled.server!.x - start.x) * sign > 20, `the server moved the player (${start.x} -> ${settled.server!.x})`);
  assert.equal(settled.server!.y, start.y);

  // The other page shows the player where the server put it (interpolation ends on the last snapshot).
  await watcher.waitForFunction(([id, x]) => Math.abs(window.__game.state().others[id as string]?.x - (x as number)) < 0.01, [me.id, settled.server!.x] as const);
  const seen = (await view(watcher)).others[me.id];
  assert.notEqual(seen.x, seenBefore.x, 'the watcher saw the player move');
  assert.deepEqual(pageErrors, []);
});
