export { configSchema, type Config, type ConfigInput, type ListenerConfig, type HttpListenerConfig, type RouteConfig } from './schema.ts';
export { loadConfigFile, parseConfig, parseConfigText, parseListenOverride, applyListenOverrides, type LoadedConfig, type ListenOverride, type ParseOptions } from './load.ts';
export { ConfigError, type ConfigIssue } from './errors.ts';
export { defaultConfig, bundledPublicDir } from './default.ts';
export { parseDuration, parseSize, duration, size } from './units.ts';
