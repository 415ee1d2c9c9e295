// Switchyard as a library: the same building blocks the daemon is made of.

export { serve, Yard, ProvisionError, exitOnSignals, defineConfig, type YardOptions, type StopResult } from './yard/index.ts';
export { createRoutes, switchyardFastify, type RoutesConfig, type MountOptions, type MountedRoutes, type NextFunction, type SwitchyardFastifyPlugin } from './yard/index.ts';
export { untypedHandler, type HandlerConfigs, type HandlerConfig, type HandlerConfigObject } from './handlers/configs.ts';
export { inlineHandler, type InlineHandler } from './handlers/inline.ts';
export {
  loadConfigFile as loadConfig,
  loadConfigFile,
  parseConfig,
  parseConfigText,
  defaultConfig,
  configSchema,
  ConfigError,
  parseDuration,
  parseSize,
  type Config,
  type ConfigInput,
  type ListenerConfig,
  type HttpListenerConfig,
  type RouteConfig,
  type ConfigIssue,
  type LoadedConfig,
} from './config/index.ts';
export * from './handlers/index.ts';
export { ListenError, type Listener, type BoundAddress } from './listeners/types.ts';
export { Metrics } from './observe/metrics.ts';
export { createLogger } from './observe/logger.ts';
export { compose, type Middleware, type MiddlewareContext, type Next } from './middleware/index.ts';
export { VERSION } from './version.ts';
export * as ipc from './ipc/index.ts';
export * from './protocol/index.ts';
export { WsEndpoint, websocketOptionsSchema, type WebSocketOptions, type WsEndpointContext, type WsPeer } from './handlers/ws/index.ts';
export { MemoryRoomStore, stateSchema, type StateConfig, type RoomStore, type RoomEvent, type RoomEventInput, type SharedState } from './state/index.ts';
export * as connect from './connect/index.ts';
export { scan, type ScanOptions, type HostReport as ScanHostReport, type PortReport as ScanPortReport, type ScanSummary } from './scan/index.ts';
