// The part of `uws-pack` (uWebSockets.js) that bench/peers/uws-server.ts and bench/ws.ts use. The
// package is not a devDependency (bench/install.sh installs it, see there why), so the type check
// of a fresh checkout must not depend on its own declarations.
declare module 'uws-pack' {
  /** What uWS accepts as a message or a string: text, or bytes (zero-copy). */
  type RecognizedString = string | ArrayBuffer | Uint8Array;

  /** Opaque: truthy when listening succeeded. */
  interface ListenSocket {
    readonly __listenSocket: unique symbol;
  }

  interface WebSocket {
    /** 1 sent, 0 buffered (backpressure), 2 dropped over maxBackpressure. */
    send(message: RecognizedString, isBinary?: boolean): number;
    subscribe(topic: RecognizedString): boolean;
  }

  interface WebSocketBehavior {
    maxPayloadLength?: number;
    maxBackpressure?: number;
    closeOnBackpressureLimit?: boolean;
    open?: (ws: WebSocket) => void;
    message?: (ws: WebSocket, message: ArrayBuffer, isBinary: boolean) => void;
  }

  interface HttpResponse {
    writeStatus(status: RecognizedString): HttpResponse;
    end(body?: RecognizedString): HttpResponse;
  }

  interface TemplatedApp {
    ws(pattern: RecognizedString, behavior: WebSocketBehavior): TemplatedApp;
    any(pattern: RecognizedString, handler: (res: HttpResponse) => void): TemplatedApp;
    listen(host: RecognizedString, port: number, cb: (listenSocket: ListenSocket | false) => void): TemplatedApp;
    publish(topic: RecognizedString, message: RecognizedString, isBinary?: boolean): boolean;
  }

  export function App(): TemplatedApp;
}
