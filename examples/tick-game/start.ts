// The one command: registers the `tick-game` handler and serves the example's config (or the
// one named on the command line) until Ctrl-C.
//   node --import tsx examples/tick-game/start.ts [config.yaml]
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitOnSignals, loadConfigFile, registerHandler, Yard } from '../../src/index.ts';
import { tickGameHandler } from './handler.ts';

registerHandler(tickGameHandler);
const file = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'tick-game.yaml');
try {
  const { config, baseDir } = await loadConfigFile(file);
  const yard = await Yard.start(config, { baseDir });
  exitOnSignals(yard);
  for (const l of yard.listeners()) process.stdout.write(`tick-game: ${l.name} ${l.url}\n`);
  const web = yard.listeners().find((l) => l.protocol === 'http');
  if (web) process.stdout.write(`tick-game: open ${web.url} in two browser windows (add ?lag=150 to feel the prediction)\n`);
} catch (err) {
  process.stderr.write(`tick-game: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
