// The IPC toolkit's public face: one Channel interface over unix sockets, TCP, pipes, FIFOs,
// worker ports and shared memory; fd passing and peer credentials on unix sockets; in-process
// MPMC channels with select, priority queues, POSIX message queues; signal helpers.

export { DEFAULT_MAX_MESSAGE_SIZE, checkOutgoing, jsonChannel, type Channel, type ChannelOptions, type JsonChannel, type PeerCredentials } from './channel.ts';
export { IpcError, type IpcErrorCode } from './errors.ts';
export { StreamChannel, type StreamChannelOptions } from './stream-channel.ts';
export type { ChannelServer } from './server.ts';
export * from './transports/index.ts';
export { RingChannel } from './transports/ring-channel.ts';
export { RingView, RingSlot } from './ring-view.ts';
export { sendFd, receiveFd, receiveFile, receiveSocket, receiveServer, connectForFds, type FdKind, type Passable } from './fd-passing.ts';
export * from './queue/index.ts';
export { onSignals, nextSignal, signalStream, UNCATCHABLE_SIGNALS, FAULT_SIGNALS, type CatchableSignal, type SignalStream } from './signals.ts';
export { getPipeSize, setPipeSize } from '../sys/pipe.ts';
export { peerCredentials } from '../sys/peercred.ts';
