import { accessSync, constants } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

// Debian's Chromium driven by playwright-core (no downloaded browser builds). The flags keep it
// off the network: on a closed machine Chromium's background services would otherwise open
// connections that are refused, and look up Google's hosts at every start.

/** Where the browser is expected (Debian's package); CHROMIUM_PATH overrides it. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumAvailable(): boolean {
  try {
    accessSync(chromiumPath, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why browser tests cannot run here, for `test(name, { skip })`; undefined when they can.
 * In CI a missing browser is a failure, not a skip: CI installs it (scripts/install-system-deps.sh),
 * so its absence there means the suite would silently stop testing the page.
 */
export function browserSkipReason(): string | undefined {
  if (chromiumAvailable()) return undefined;
  const reason = `no Chromium at ${chromiumPath} (install it: bash scripts/install-system-deps.sh, or set CHROMIUM_PATH)`;
  if (process.env.CI) throw new Error(`CI is set but ${reason}`);
  return reason;
}

/** Launches headless Chromium with a fresh temporary profile (Playwright's default). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    timeout: 30_000,
  });
}
