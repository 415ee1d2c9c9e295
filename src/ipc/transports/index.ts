// Transports: each makes Channels (src/ipc/channel.ts). A plain re-export list.
export { listenTcp, connectTcp, type TcpAddress, type TcpOptions, type TcpChannelServer } from './tcp.ts';
export { spawnWithPipes, pipeChannelFromFds, CHILD_READ_FD, CHILD_WRITE_FD, type SpawnWithPipesOptions } from './pipe.ts';
export { createFifoChannel, openFifoChannel, fifoPaths, type FifoOptions } from './fifo.ts';
export { workerChannel, WorkerChannel, type WorkerChannelOptions } from './worker.ts';
export { FdPairDuplex } from './fd-duplex.ts';
export { listenUnix, connectUnix, type UnixAllow, type UnixListenOptions, type UnixChannelServer, type UnixConnectOptions } from './unix.ts';
export { createShmChannel, openShmChannel, shmSegmentName, ShmChannel, type ShmChannelOptions } from './shm.ts';
export { createShmThreadChannel, openShmThreadChannel, type ShmThreadOptions, type ShmThreadPeer } from './shm-thread.ts';
