import type { Logger } from 'pino';
import type { StateConfig } from './config.ts';
import { MemoryRoomStore } from './memory.ts';
import type { SharedState } from './types.ts';

export type * from './types.ts';
export { stateSchema, type StateConfig, type RedisStateConfig } from './config.ts';
export { MemoryRoomStore } from './memory.ts';

/** Opens the shared state the config names (connecting to Redis when it says so). */
export async function openSharedState(config: StateConfig, log: Logger): Promise<SharedState> {
  switch (config.backend) {
    case 'memory':
      return { rooms: new MemoryRoomStore({ maxIdleRooms: config.maxIdleRooms, maxHistoryBytes: config.maxHistoryBytes }) };
    case 'redis': {
      // Loaded only when asked for, so that a yard on the memory backend never loads ioredis.
      const { RedisRoomStore } = await import('./redis.ts');
      return { rooms: await RedisRoomStore.connect(config, log) };
    }
  }
}
