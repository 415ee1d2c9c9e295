import { createReadStream, readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import type WebSocket from 'ws';
import {
  ConnectError,
  ConnectionLostError,
  ConnectUsageError,
  connectFrames,
  connectTcp,
  connectTlsStream,
  connectQuicStream,
  connectUnix,
  connectWs,
  callGrpc,
  describeNetError,
  formatResponseHead,
  httpRequest,
  loadGrpcMethod,
  openUdp,
  parseJsonLine,
  parseJsonMessages,
  type ConnectUrl,
  type GrpcMethod,
} from '../connect/index.ts';
import { loadQuic } from '../quic/load.ts';

// `switchyard connect URL`: a client for every protocol the yard speaks (docs/connect.md).
// stdin goes out, what arrives goes to stdout. Byte streams (tcp, unix) are piped as they are;
// message protocols (udp, ws, frames) send one message per stdin line and print one per line.
// gRPC makes one call: JSON requests in (-d or stdin), JSON replies out, the status on stderr.
// Exit: 0 when the conversation ended (stdin done and replies waited for, or the server closed;
// gRPC: status OK), 1 when the connection failed or broke (one line on stderr; gRPC: any other
// status, named), 2 for a bad URL or bad options.

export interface ConnectOptions {
  wait: number;
  connectTimeout: number;
  raw?: boolean;
  method?: string;
  data?: string;
  json?: string;
  dataFile?: string;
  header: string[];
  insecure?: boolean;
  ca?: string;
  servername?: string;
  alpn?: string;
  origin?: string;
  maxFrameSize: number;
  proto: string[];
  deadline?: number;
  broadcast?: boolean;
  /** true, or the group named after the flag (it must be the URL's host). */
  multicast?: boolean | string;
  ttl?: number;
  interface?: string;
  loopback?: boolean;
  /** https: the request goes over HTTP/3 (src/http3/connect.ts). */
  http3?: boolean;
}

/** After our side is done, how long a graceful close may take before we cut it. */
const CLOSE_TIMEOUT_MS = 2000;

export async function connectCommand(url: ConnectUrl, opts: ConnectOptions): Promise<void> {
  let code: number;
  try {
    code = await run(url, opts);
  } catch (err) {
    if (err instanceof ConnectUsageError) {
      process.stderr.write(`switchyard connect: ${err.message}\n`);
      code = 2;
    } else if (err instanceof ConnectError || err instanceof ConnectionLostError) {
      process.stderr.write(`switchyard connect: ${err.message}\n`);
      code = 1;
    } else {
      throw err;
    }
  }
  await exit(code);
}

/** Exits once everything written to stdout has been taken by the OS (a pipe may lag). */
function exit(code: number): Promise<never> {
  return new Promise(() => {
    process.stdout.write('', () => process.exit(code));
  });
}

function run(url: ConnectUrl, opts: ConnectOptions): Promise<number> {
  checkOptions(url, opts);
  switch (url.scheme) {
    case 'tcp':
      return streamSession(url.href, () => connectTcp(url, { connectTimeout: opts.connectTimeout }), opts);
    case 'tls':
      return streamSession(
        url.href,
        () =>
          connectTlsStream(url, {
            connectTimeout: opts.connectTimeout,
            insecure: opts.insecure,
            ca: readCa(opts),
            servername: opts.servername,
            alpn: opts.alpn?.split(',').map((p) => p.trim()).filter((p) => p !== ''),
          }),
        opts,
      );
    case 'quic':
      return streamSession(
        url.href,
        async () =>
          (await connectQuicStream(url, {
            connectTimeout: opts.connectTimeout,
            insecure: opts.insecure,
            ca: readCa(opts),
            servername: opts.servername,
            alpn: opts.alpn?.split(',').map((p) => p.trim()).filter((p) => p !== ''),
          })) as unknown as Socket,
        opts,
      );
    case 'unix':
      return streamSession(url.href, () => connectUnix(url.path, { connectTimeout: opts.connectTimeout }), opts);
    case 'udp':
      return udpSession(url, opts);
    case 'frame+tcp':
      return frameSession(url, url.href, opts);
    case 'frame+unix':
      return frameSession({ path: url.path }, url.href, opts);
    case 'ws':
    case 'wss':
      return wsSession(url.url, opts);
    case 'http':
    case 'https':
      return httpSession(url.url, opts);
    case 'grpc':
    case 'grpcs':
      return grpcSession(url, opts);
  }
}

/** Options that do not apply to the URL's scheme are mistakes worth pointing out. */
function checkOptions(url: ConnectUrl, opts: ConnectOptions): void {
  const web = url.scheme === 'http' || url.scheme === 'https';
  const ws = url.scheme === 'ws' || url.scheme === 'wss';
  const rpc = url.scheme === 'grpc' || url.scheme === 'grpcs';
  const tls = url.scheme === 'https' || url.scheme === 'wss' || url.scheme === 'tls' || url.scheme === 'grpcs' || url.scheme === 'quic';
  const wrong = (flag: string, schemes: string) => new ConnectUsageError(`${flag} applies to ${schemes} URLs only, not ${url.scheme}:`);
  if (!web) {
    for (const [flag, set] of [['-X/--method', opts.method], ['--json', opts.json], ['--data-file', opts.dataFile]] as const) {
      if (set !== undefined) throw wrong(flag, 'http(s)');
    }
  }
  if (!web && !rpc && opts.data !== undefined) throw wrong('-d/--data', 'http(s) and grpc(s)');
  if (!web && !ws && !rpc && opts.header.length > 0) throw wrong('-H/--header', 'http(s), ws(s) and grpc(s)');
  if (!rpc && (opts.proto ?? []).length > 0) throw wrong('--proto', 'grpc(s)');
  if (!rpc && opts.deadline !== undefined) throw wrong('--deadline', 'grpc(s)');
  if (!ws && opts.origin !== undefined) throw wrong('--origin', 'ws(s)');
  if (url.scheme !== 'https' && opts.http3) throw wrong('--http3', 'https');
  if (!tls && opts.insecure) throw wrong('--insecure', 'https, wss, tls, quic and grpcs');
  if (!tls && opts.ca !== undefined) throw wrong('--ca', 'https, wss, tls, quic and grpcs');
  if (url.scheme !== 'tls' && url.scheme !== 'quic' && opts.servername !== undefined) throw wrong('--servername', 'tls and quic');
  if (url.scheme !== 'tls' && url.scheme !== 'quic' && opts.alpn !== undefined) throw wrong('--alpn', 'tls and quic');
  if (url.scheme !== 'udp' && opts.broadcast) throw wrong('--broadcast', 'udp');
  if (url.scheme !== 'udp' && opts.multicast !== undefined) throw wrong('--multicast', 'udp');
  if (opts.multicast === undefined) {
    for (const [flag, set] of [['--ttl', opts.ttl], ['--interface', opts.interface], ['--loopback/--no-loopback', opts.loopback]] as const) {
      if (set !== undefined) throw new ConnectUsageError(`${flag} applies with --multicast only`);
    }
  }
  if (typeof opts.multicast === 'string' && url.scheme === 'udp' && opts.multicast.toLowerCase() !== url.host.toLowerCase()) {
    throw new ConnectUsageError(`--multicast ${opts.multicast}: datagrams go to the URL's host (${url.host}); give the group there (udp://${opts.multicast.includes(':') ? `[${opts.multicast}]` : opts.multicast}:${url.port})`);
  }
  const bodies = [opts.data, opts.json, opts.dataFile].filter((b) => b !== undefined).length;
  if (bodies > 1) throw new ConnectUsageError('give one body: -d/--data, --json or --data-file');
}

function parseHeaders(list: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of list) {
    const i = h.indexOf(':');
    const name = i > 0 ? h.slice(0, i).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(name)) throw new ConnectUsageError(`-H "${h}": expected "Name: value"`);
    const key = name.toLowerCase();
    const value = h.slice(i + 1).trim();
    headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
  }
  return headers;
}

function readCa(opts: ConnectOptions): Buffer | undefined {
  if (opts.ca === undefined) return undefined;
  try {
    return readFileSync(opts.ca);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConnectUsageError(`--ca ${opts.ca}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

const interactive = () => process.stdin.isTTY === true;

function note(text: string): void {
  if (interactive()) process.stderr.write(`${text}\n`);
}

// ---- byte streams: tcp, unix ----------------------------------------------------------------

async function streamSession(href: string, open: () => Promise<Socket>, opts: ConnectOptions): Promise<number> {
  const socket = await open();
  note(`connected to ${href}; type away, Ctrl-D to finish`);
  // We decide when our side ends (stdin's EOF), whatever the server does with its own.
  socket.allowHalfOpen = true;
  return new Promise<number>((resolve) => {
    let idle: NodeJS.Timeout | undefined;
    let inputDone = false;
    const armIdle = () => {
      if (!inputDone) return;
      clearTimeout(idle);
      idle = setTimeout(() => socket.destroy(), opts.wait);
    };
    socket.on('data', (chunk: Buffer) => {
      armIdle();
      if (!process.stdout.write(chunk)) {
        socket.pause();
        process.stdout.once('drain', () => socket.resume());
      }
    });
    socket.once('end', () => {
      // The server is done talking: that is the end of the conversation.
      process.stdin.unpipe(socket);
      socket.end();
      socket.destroy();
    });
    socket.on('error', (err) => {
      clearTimeout(idle);
      process.stderr.write(`switchyard connect: ${href}: ${describeNetError(err)}\n`);
      resolve(1);
    });
    socket.once('close', (hadError) => {
      clearTimeout(idle);
      if (!hadError) resolve(0);
    });
    process.stdin.pipe(socket, { end: false });
    process.stdin.once('end', () => {
      inputDone = true;
      if (!socket.destroyed) socket.end();
      armIdle();
    });
  });
}

// ---- message protocols: udp, ws, frames -----------------------------------------------------

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** True when the bytes are UTF-8 text a terminal can show (tabs and line ends allowed). */
function isText(data: Uint8Array): boolean {
  try {
    // eslint-disable-next-line no-control-regex
    return !/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(strictUtf8.decode(data));
  } catch {
    return false;
  }
}

/** One message, one line: text as it is, binary as `<binary N bytes>` unless --raw. */
function printMessage(data: Uint8Array, binary: boolean, raw: boolean): void {
  if (binary && !raw) process.stdout.write(`<binary ${data.byteLength} bytes>\n`);
  else process.stdout.write(Buffer.concat([data, Buffer.from('\n')]));
}

interface MessageLink {
  send(line: Buffer): Promise<void>;
  /** Closes our side gracefully; resolves when closed (or cut after CLOSE_TIMEOUT_MS). */
  close(): Promise<void>;
}

/**
 * Sends each stdin line as a message; after stdin ends, waits until `wait` has passed since the
 * last message either way, then closes. `ended` settles when the server ends the conversation
 * first: with 0, or with the line to print and 1.
 */
async function messageSession(link: MessageLink, ended: Promise<number>, opts: ConnectOptions, activity: { last: number }): Promise<number> {
  const stop = new AbortController();
  const input = (async () => {
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
    stop.signal.addEventListener('abort', () => lines.close());
    for await (const line of lines) {
      await link.send(Buffer.from(line));
      activity.last = Date.now();
    }
    // Replies may still be on their way: wait until the line has been quiet for `wait`.
    activity.last = Math.max(activity.last, Date.now());
    while (!stop.signal.aborted) {
      const quietFor = Date.now() - activity.last;
      if (quietFor >= opts.wait) break;
      await new Promise((r) => setTimeout(r, opts.wait - quietFor));
    }
    return -1;
  })();
  const first = await Promise.race([input, ended]);
  stop.abort();
  // The server ended first: a send still in flight may fail now, and that is not news.
  input.catch(() => {});
  if (first !== -1) return first;
  await link.close();
  return 0;
}

async function udpSession(url: { host: string; port: number; href: string }, opts: ConnectOptions): Promise<number> {
  const activity = { last: Date.now() };
  let fail: (code: number) => void = () => {};
  const ended = new Promise<number>((resolve) => (fail = resolve));
  const client = await openUdp(url, {
    broadcast: opts.broadcast === true,
    multicast: opts.multicast === undefined ? undefined : { ttl: opts.ttl ?? 1, interface: opts.interface, loopback: opts.loopback ?? true },
    onNotice: (text) => process.stderr.write(`switchyard connect: ${text}\n`),
    onMessage(data) {
      activity.last = Date.now();
      printMessage(data, !isText(data), opts.raw === true);
    },
    onError(err) {
      process.stderr.write(`switchyard connect: ${err.message}\n`);
      fail(1);
    },
  });
  note(`sending to ${url.href}: one datagram per line, Ctrl-D to finish`);
  const link: MessageLink = {
    send: (line) => client.send(line),
    close: () => client.close(),
  };
  try {
    return await messageSession(link, ended, opts, activity);
  } finally {
    await client.close();
  }
}

async function frameSession(target: { host: string; port: number } | { path: string }, href: string, opts: ConnectOptions): Promise<number> {
  const activity = { last: Date.now() };
  const client = await connectFrames(target, {
    connectTimeout: opts.connectTimeout,
    maxFrameSize: opts.maxFrameSize,
    onFrame(frame) {
      activity.last = Date.now();
      printMessage(frame, !isText(frame), opts.raw === true);
    },
  });
  note(`connected to ${href}: one frame per line, Ctrl-D to finish`);
  const ended = client.closed.then(
    () => 0,
    (err: Error) => {
      process.stderr.write(`switchyard connect: ${err.message}\n`);
      return 1;
    },
  );
  const link: MessageLink = {
    send: (line) => client.send(line),
    async close() {
      client.end();
      await Promise.race([ended, new Promise((r) => setTimeout(r, CLOSE_TIMEOUT_MS))]);
      client.socket.destroy();
    },
  };
  const code = await messageSession(link, ended, opts, activity);
  // The socket is closed by now, so `ended` has settled: a break during our close still counts.
  return code === 0 ? ended : code;
}

/** Close codes that mean the conversation simply ended. */
const NORMAL_CLOSE = new Set([1000, 1001, 1005]);

async function wsSession(url: URL, opts: ConnectOptions): Promise<number> {
  const activity = { last: Date.now() };
  const ws: WebSocket = await connectWs(url, {
    headers: parseHeaders(opts.header),
    origin: opts.origin,
    insecure: opts.insecure,
    ca: readCa(opts),
    connectTimeout: opts.connectTimeout,
    onMessage(data, isBinary) {
      activity.last = Date.now();
      printMessage(data, isBinary, opts.raw === true);
    },
  });
  note(`connected to ${url.href}: one text message per line, Ctrl-D to finish`);
  let closing = false;
  const ended = new Promise<number>((resolve) => {
    ws.on('error', (err) => {
      if (closing) return;
      process.stderr.write(`switchyard connect: ${url.href}: ${describeNetError(err)}\n`);
      resolve(1);
    });
    ws.once('close', (code: number, reason: Buffer) => {
      if (closing || NORMAL_CLOSE.has(code)) return resolve(0);
      const why = code === 1006 ? 'the connection was lost (no close frame)' : `closed by the server with ${code}${reason.length ? ` ${reason.toString()}` : ''}`;
      process.stderr.write(`switchyard connect: ${url.href}: ${why}\n`);
      resolve(1);
    });
  });
  const link: MessageLink = {
    send: (line) =>
      new Promise<void>((resolve, reject) => ws.send(line.toString('utf8'), (err) => (err ? reject(new ConnectionLostError(url.href, describeNetError(err))) : resolve()))),
    async close() {
      closing = true;
      ws.close(1000);
      await Promise.race([new Promise((r) => ws.once('close', r)), new Promise((r) => setTimeout(r, CLOSE_TIMEOUT_MS))]);
      ws.terminate();
    },
  };
  if (ws.readyState !== ws.OPEN) return ended;
  return messageSession(link, ended, opts, activity);
}

// ---- http(s) --------------------------------------------------------------------------------

async function httpSession(url: URL, opts: ConnectOptions): Promise<number> {
  const headers = parseHeaders(opts.header);
  let body: string | ReturnType<typeof createReadStream> | undefined;
  const setDefault = (name: string, value: string) => {
    if (headers[name] === undefined) headers[name] = value;
  };
  if (opts.json !== undefined) {
    body = opts.json;
    setDefault('content-type', 'application/json');
    setDefault('accept', 'application/json');
  } else if (opts.data !== undefined) {
    body = opts.data;
    setDefault('content-type', 'application/x-www-form-urlencoded');
  } else if (opts.dataFile !== undefined) {
    let size: number;
    try {
      const st = statSync(opts.dataFile);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
      size = st.size;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConnectUsageError(`--data-file ${opts.dataFile}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'not a regular file' : (err as Error).message}`);
    }
    body = createReadStream(opts.dataFile);
    setDefault('content-type', 'application/octet-stream');
    setDefault('content-length', String(size));
  }
  const method = (opts.method ?? (body === undefined ? 'GET' : 'POST')).toUpperCase();
  if (opts.http3) {
    const { http3Connect } = await loadQuic(() => import('../http3/connect.ts'));
    return http3Connect(url, { method, headers, body, insecure: opts.insecure, ca: readCa(opts), timeout: Math.max(opts.connectTimeout, 30_000) });
  }
  const res = await httpRequest(url, { method, headers, body, insecure: opts.insecure, ca: readCa(opts), connectTimeout: opts.connectTimeout });
  process.stdout.write(formatResponseHead(res));
  try {
    await pipeline(res.body, process.stdout, { end: false });
  } catch (err) {
    process.stderr.write(`switchyard connect: ${url.href}: the response broke off: ${describeNetError(err)}\n`);
    return 1;
  }
  return 0;
}

// ---- grpc(s) ---------------------------------------------------------------------------------

async function grpcSession(url: Extract<ConnectUrl, { scheme: 'grpc' | 'grpcs' }>, opts: ConnectOptions): Promise<number> {
  const method = loadGrpcMethod(opts.proto ?? [], url.service, url.method);
  const requests = opts.data !== undefined ? listOf(parseJsonMessages(opts.data, method, '-d')) : stdinRequests(method);
  if (opts.data === undefined) {
    note(method.requestStream ? `${method.path}: one JSON request per line, Ctrl-D to finish` : `${method.path}: type the request as JSON, then Ctrl-D`);
  }
  const result = await callGrpc({
    scheme: url.scheme,
    host: url.host,
    port: url.port,
    method,
    requests,
    // A slow stdout holds the replies back (and with them the server) rather than queueing them.
    onReply: (reply) => (process.stdout.write(`${JSON.stringify(reply)}\n`) ? undefined : new Promise<void>((r) => process.stdout.once('drain', r))),
    metadata: parseHeaders(opts.header),
    deadline: opts.deadline,
    ca: readCa(opts),
    insecure: opts.insecure,
  });
  if (result.code === 0) {
    process.stderr.write('status: OK\n');
    return 0;
  }
  process.stderr.write(`switchyard connect: ${url.href}: ${result.name} (${result.code})${result.details ? `: ${result.details}` : ''}\n`);
  return 1;
}

async function* listOf(messages: object[]): AsyncIterable<object> {
  yield* messages;
}

/**
 * Requests from stdin: for a method that takes one, the whole input (one JSON object, pretty or
 * not; nothing at all is `{}`); for a streaming one, one JSON object per line, each sent as it
 * is read.
 */
async function* stdinRequests(method: GrpcMethod): AsyncIterable<object> {
  if (!method.requestStream) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    yield* parseJsonMessages(Buffer.concat(chunks).toString('utf8'), method, 'stdin');
    return;
  }
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() !== '') yield parseJsonLine(line, method, `stdin line ${n}`);
  }
}
