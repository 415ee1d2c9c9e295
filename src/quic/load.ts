// The QUIC modules are loaded on first use, not when the daemon or the CLI starts: they load
// quiche's native binding (@matrixai/quic's prebuilt build, linux-x64 among others), which costs
// about 180 ms and does not exist on every platform (no linux-arm64 build). A daemon without a
// quic listener or http3, and every other command, never pays for it or depends on it.

/** QUIC cannot run here: the native binding did not load. */
export class QuicUnavailableError extends Error {
  readonly code = 'SWITCHYARD_QUIC_UNAVAILABLE';
  constructor(cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`QUIC is not available on this machine (${process.platform}-${process.arch}): quiche's prebuilt binding from @matrixai/quic did not load: ${why}`, { cause });
    this.name = 'QuicUnavailableError';
  }
}

/** Imports a module that needs QUIC (`() => import('...')`), turning a missing binding into a QuicUnavailableError. */
export async function loadQuic<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isBindingFailure(err)) throw new QuicUnavailableError(err);
    throw err;
  }
}

function isBindingFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return /native binding|Unsupported (architecture|OS)|\.node\b|ERR_DLOPEN_FAILED|Cannot find (module|package) '@matrixai\/quic/.test(message) || (err as { code?: unknown })?.code === 'ERR_DLOPEN_FAILED';
}
