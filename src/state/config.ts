import { z } from 'zod';

// `state:` in the config: where chat rooms (and later other shared state) live.

const memory = z.strictObject({
  backend: z.literal('memory'),
});

export const stateSchema = z
  .discriminatedUnion('backend', [memory], { error: () => 'expected backend one of: memory' })
  .default({ backend: 'memory' });

export type StateConfig = z.output<typeof stateSchema>;
