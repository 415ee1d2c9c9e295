// Errors of the IPC toolkit: one class, a stable `code` per cause, so programs can branch on it.

export type IpcErrorCode =
  | 'SWITCHYARD_IPC_CLOSED' // send/receive on a channel that was closed by this side
  | 'SWITCHYARD_IPC_PEER_GONE' // the other side went away (closed, crashed, killed)
  | 'SWITCHYARD_IPC_MESSAGE_TOO_LARGE' // over the channel's maxMessageSize (sent or received)
  | 'SWITCHYARD_IPC_EMPTY_MESSAGE' // zero-length messages are refused (they cannot be told from EOF on some transports)
  | 'SWITCHYARD_IPC_PROTOCOL' // the peer sent bytes that are not a valid frame
  | 'SWITCHYARD_IPC_TIMEOUT' // a send/receive/connect with a deadline ran out of time
  | 'SWITCHYARD_IPC_PERMISSION' // refused by credentials (uid/gid allow list) or file permissions
  | 'SWITCHYARD_IPC_UNSUPPORTED' // the transport or call is not available on this machine
  | 'SWITCHYARD_IPC_FULL' // a non-waiting send found the queue full
  | 'SWITCHYARD_IPC_VIEW_RELEASED' // a zero-copy view or slot used after release/commit (its bytes belong to the ring again)
  | 'SWITCHYARD_IPC_VIEW_HELD'; // another receive/send while a zero-copy view or slot is still held (or the reverse)

export class IpcError extends Error {
  constructor(
    readonly code: IpcErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'IpcError';
  }
}
