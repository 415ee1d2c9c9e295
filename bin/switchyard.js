#!/usr/bin/env node
// Runs the compiled daemon (dist/, built by `npm run build`, which `npm install` runs). Without a
// build, as in a fresh checkout before install finished, it falls back to running the TypeScript
// sources through tsx, which is slower per request but always current. Not Node's own type
// stripping (on by default from 23.6): src/ uses parameter properties (`constructor(private
// readonly x: T)`), which strip-only mode refuses (ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX); tsx is
// needed on every Node until src/ is erasable TypeScript (tsc's erasableSyntaxOnly).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
