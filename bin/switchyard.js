#!/usr/bin/env node
// Runs the compiled daemon in dist/: what the published package ships, and what `npm install`
// builds in a checkout (the `prepare` script). Without a build, as in a checkout whose install
// has not finished, it runs the TypeScript sources through tsx, a devDependency that a checkout
// has once `npm install` ran and a published install never needs. Not Node's own type stripping
// (on by default from 23.6): src/ uses parameter properties (`constructor(private readonly x:
// T)`), which strip-only mode refuses (ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write('switchyard: no build in dist/ and no tsx to run the sources; in a checkout, run `npm install` (it builds) or `npm run build`\n');
    process.exit(1);
  }
  register();
  await import('../src/cli/main.ts');
}
