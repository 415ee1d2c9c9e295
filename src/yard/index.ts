export { Yard, serve, defineConfig, type YardOptions, type StopResult } from './yard.ts';
export { ProvisionError } from './errors.ts';
export { exitOnSignals } from './signals.ts';
export { banner } from './banner.ts';
export { createRoutes, type RoutesConfig, type MountOptions, type MountedRoutes, type NextFunction } from './mount.ts';
export { switchyardFastify, type SwitchyardFastifyPlugin } from './fastify.ts';
