// The transports `switchyard ipc bench` measures, by name and in the order of its table. Apart
// from bench.ts (which holds how each is measured) so that the command line can offer and check
// `--transport` without loading the benchmark; test/cli-startup.test.ts checks that the two agree.

export const TRANSPORT_NAMES: readonly string[] = ['tcp', 'unix', 'pipe', 'fifo', 'worker', 'shm-thread', 'shm', 'shm-futex', 'shm-view'];
