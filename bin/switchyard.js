#!/usr/bin/env node
// Runs the compiled daemon (dist/, built by `npm run build`, which `npm install` runs). Without a
// build, as in a fresh checkout before install finished, it falls back to running the TypeScript
// sources through tsx, which is slower per request but always current.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
