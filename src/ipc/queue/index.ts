export { MpmcChannel } from './mpmc.ts';
export { select, type SelectCase, type SelectOptions, type SelectResult } from './select.ts';
export { PriorityQueue, type Prioritized } from './priority.ts';
export type { WaitOptions, Selectable } from './core.ts';
export { openMessageQueue, unlinkMessageQueue, type MessageQueue, type MessageQueueOptions, type MqMessage } from './posix-mq.ts';
