// The loader hooks of module-log.mjs (they run on Node's loader thread).
import { appendFileSync } from 'node:fs';

const logFile = process.env.SWITCHYARD_MODULE_LOG;

export async function load(url, context, nextLoad) {
  if (logFile) appendFileSync(logFile, `${url}\n`);
  return nextLoad(url, context);
}
