export { Yard, serve, type YardOptions, type StopResult } from './yard.ts';
export { ProvisionError } from './errors.ts';
export { exitOnSignals } from './signals.ts';
export { banner } from './banner.ts';
