import type { HandlerModule } from './types.ts';
import { inlineHandler } from './inline.ts';

// Handler modules are registered by name; the config schema is built from whatever is registered,
// so a program using the library can add its own handler types before loading a config.
// `inline` is here from the start: the config schema itself turns a function into one
// (src/config/schema.ts, handlerSchema), so it exists wherever a config can be parsed.

const modules = new Map<string, HandlerModule>([[inlineHandler.type, inlineHandler as unknown as HandlerModule]]);

export function registerHandler<C extends { type: string }>(mod: HandlerModule<C>): void {
  if (modules.has(mod.type)) throw new Error(`handler type "${mod.type}" is already registered`);
  modules.set(mod.type, mod as unknown as HandlerModule);
}

export function handlerModule(type: string): HandlerModule | undefined {
  return modules.get(type);
}

export function handlerModules(): HandlerModule[] {
  return [...modules.values()];
}
