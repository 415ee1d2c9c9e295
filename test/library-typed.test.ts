import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Handler configs are typed per `type`: test/types/library-config.ts holds the good cases and,
// behind `@ts-expect-error`, the bad ones. tsc checks it (with the rest of the project, in
// `npx tsc --noEmit`); here it is checked on its own, so that other files' errors do not hide
// a result, and a bad case without its directive is shown to be an error indeed.

const root = fileURLToPath(new URL('../', import.meta.url));
const tsc = join(root, 'node_modules', '.bin', 'tsc');
const typeTest = join(root, 'test', 'types', 'library-config.ts');

/** Runs tsc over `files` with the project's settings; returns its diagnostics, one a line. */
async function typeCheck(files: string[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-types-'));
  try {
    const project = join(dir, 'tsconfig.json');
    await writeFile(
      project,
      JSON.stringify({
        extends: join(root, 'tsconfig.json'),
        compilerOptions: { typeRoots: [join(root, 'node_modules', '@types')] },
        files,
        include: [],
      }),
    );
    const output = await new Promise<string>((resolve, reject) => {
      execFile(tsc, ['-p', project, '--noEmit', '--pretty', 'false'], { cwd: root, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        // Exit code 1 or 2 is tsc reporting errors (of this project's files, maybe of others'); anything else is a failure to run.
        if (err && typeof err.code !== 'number') return reject(err);
        resolve(`${stdout}${stderr}`);
      });
    });
    return output.split('\n').filter((l) => /error TS\d+/.test(l));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('typed handler configs: the type test compiles, every bad case in it is an error, and a bad case without its directive fails', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-types-bad-'));
  try {
    const bad = join(dir, 'bad-config.ts');
    await writeFile(
      bad,
      [
        `import type { HandlerConfig } from ${JSON.stringify(join(root, 'src', 'index.ts'))};`,
        `export const unknownType: HandlerConfig = { type: 'nope', whatever: 1 };`,
        `export const misspelt: HandlerConfig = { type: 'static', roots: './public' };`,
        '',
      ].join('\n'),
    );
    const errors = await typeCheck([typeTest, bad]);
    const inTypeTest = errors.filter((l) => l.includes('library-config.ts'));
    // An unused @ts-expect-error (a bad case that compiles) is itself an error here.
    assert.deepEqual(inTypeTest, [], `test/types/library-config.ts has type errors:\n${inTypeTest.join('\n')}`);
    const inBad = errors.filter((l) => l.includes('bad-config.ts'));
    assert.ok(inBad.some((l) => l.includes('(2,')), `an unknown handler type compiles:\n${inBad.join('\n')}`);
    assert.ok(inBad.some((l) => l.includes('(3,')), `a misspelt handler field compiles:\n${inBad.join('\n')}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
