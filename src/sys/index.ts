// The few libc calls Node does not expose, behind one small face. Everything here degrades:
// when koffi or a call is unavailable, callers are told so and take a portable path.

export { sendFile, sendfileAvailable, canSendfile, SendfileAbortedError, SendfileUnsupportedError, type SendfileOptions } from './sendfile.ts';
export { libcUnavailableReason } from './libc.ts';
