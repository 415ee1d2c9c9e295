import { loadConfigFile } from '../config/load.ts';

/** `switchyard check <config>`: validates and prints a summary; errors go to main's reporter (exit 2). */
export async function checkCommand(file: string): Promise<void> {
  const { config, source } = await loadConfigFile(file);
  const lines = config.listeners.map((l) => {
    const where = l.protocol === 'unix' ? l.path : l.address;
    const what = l.protocol === 'http' ? `${l.routes.length} route(s)` : `handler ${l.handler.type}`;
    return `  ${l.name}: ${l.protocol} on ${where}, ${what}`;
  });
  process.stdout.write(`${source}: ok, ${config.listeners.length} listener(s)\n${lines.join('\n')}\n`);
}
