import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ConnectUsageError } from './errors.ts';
import type { GrpcScheme } from './url.ts';

// `switchyard connect grpc://host:port/package.Service/Method`: one gRPC call with @grpc/grpc-js,
// its types from .proto files through @grpc/proto-loader (the package's own proto/ files when
// none are given). Requests and replies are JSON objects as protobufjs maps them (field names as
// in the .proto, enums by name, 64-bit integers and bytes as strings). The call's end is its
// gRPC status; a call that cannot be made (refused, TLS) ends with UNAVAILABLE, as grpc-js says.

/** The package's proto/ folder (the Greeter and grpc.health.v1.Health). */
export const builtinProtoDir = fileURLToPath(new URL('../../proto/', import.meta.url));
const BUILTIN_PROTO_FILES = ['helloworld.proto', 'grpc/health/v1/health.proto'];

/** How proto-loader maps messages to JSON (and back). */
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, bytes: String, defaults: true, oneofs: true };

export interface GrpcMethod {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  /** `helloworld.HelloRequest` */
  readonly requestTypeName: string;
  readonly serialize: (value: object) => Buffer;
  readonly deserialize: (bytes: Buffer) => object;
  /** Top-level field names of the request, as in the .proto (keepCase), to catch typos. */
  readonly requestFields: ReadonlySet<string>;
}

interface FieldDescriptor {
  name?: string;
}

/**
 * Finds `service`/`method` in the given .proto files (the built-in ones when `files` is empty).
 * Imports resolve against each file's folder, `importPaths` and the built-in folder. Throws
 * ConnectUsageError naming what is there when the service or method is not.
 */
export function loadGrpcMethod(files: string[], service: string, method: string, importPaths: string[] = []): GrpcMethod {
  const builtin = files.length === 0;
  const list = builtin ? BUILTIN_PROTO_FILES : files.map((f) => resolve(f));
  for (const f of builtin ? [] : list) if (!existsSync(f)) throw new ConnectUsageError(`--proto ${f}: no such file`);
  const includeDirs = [...new Set([...(builtin ? [] : list.map((f) => dirname(f))), ...importPaths.map((p) => resolve(p)), builtinProtoDir])];
  let def: protoLoader.PackageDefinition;
  try {
    def = protoLoader.loadSync(list, { ...LOADER_OPTIONS, includeDirs });
  } catch (err) {
    throw new ConnectUsageError(`${builtin ? 'the built-in proto files' : `--proto ${files.join(', ')}`}: ${(err as Error).message}`);
  }
  // The definition holds message and enum types too (those have a `format`); the rest are services.
  const services = Object.keys(def).filter((name) => !('format' in def[name]));
  const found = services.includes(service) ? (def[service] as protoLoader.ServiceDefinition) : undefined;
  if (!found) {
    const where = builtin ? 'the built-in proto files (give --proto FILE for others)' : files.join(', ');
    throw new ConnectUsageError(`no service ${service} in ${where}; services: ${services.join(', ') || 'none'}`);
  }
  const m = found[method];
  if (!m) throw new ConnectUsageError(`service ${service} has no method ${method}; methods: ${Object.keys(found).join(', ')}`);
  const fields = new Set<string>();
  for (const f of ((m.requestType.type as { field?: FieldDescriptor[] }).field ?? [])) {
    if (f.name) fields.add(f.name);
  }
  return {
    path: m.path,
    requestStream: m.requestStream,
    responseStream: m.responseStream,
    requestTypeName: String((m.requestType.type as { name?: string }).name ?? 'request'),
    serialize: m.requestSerialize as (value: object) => Buffer,
    deserialize: m.responseDeserialize as (bytes: Buffer) => object,
    requestFields: fields,
  };
}

export interface GrpcCallOptions {
  readonly scheme: GrpcScheme;
  readonly host: string;
  readonly port: number;
  readonly method: GrpcMethod;
  /** The request messages, as they come (one for unary and server-streaming methods). */
  readonly requests: AsyncIterable<object>;
  /**
   * Each reply as it arrives. A promise returned holds the next replies back until it settles
   * (the output is slow): the call stops reading, and the server is slowed by flow control.
   */
  readonly onReply: (reply: object) => void | Promise<void>;
  /** Request metadata (lower-case names). */
  readonly metadata?: Record<string, string>;
  /** Milliseconds the whole call may take (the request's grpc-timeout); none by default. */
  readonly deadline?: number;
  /** grpcs: trust these CA certificates (PEM) instead of the system's. */
  readonly ca?: Buffer;
  /** grpcs: do not verify the server's certificate. */
  readonly insecure?: boolean;
  /** Largest reply accepted, in bytes (grpc-js's default is 4 MiB). */
  readonly maxReceiveMessageSize?: number;
}

export interface GrpcCallResult {
  readonly code: grpc.status;
  /** `OK`, `NOT_FOUND`, ... */
  readonly name: string;
  readonly details: string;
}

const statusName = (code: number): string => grpc.status[code] ?? `UNKNOWN(${code})`;

/** Makes the call; resolves with its status once it has ended (never rejects for a gRPC failure). */
export async function callGrpc(options: GrpcCallOptions): Promise<GrpcCallResult> {
  const { method } = options;
  const tls = options.scheme === 'grpcs';
  const verify: grpc.VerifyOptions | undefined = options.insecure ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : undefined;
  const creds = tls ? grpc.credentials.createSsl(options.ca ?? null, null, null, verify) : grpc.credentials.createInsecure();
  // grpc-js gives the host as the TLS server name even when it is an IP address, which node
  // warns about (DEP0123) on every connection; the name is still what the certificate is
  // checked against, so the warning is noise here.
  if (tls && isIP(options.host)) process.noDeprecation = true;
  const channelOptions: grpc.ChannelOptions = {};
  if (options.maxReceiveMessageSize !== undefined) channelOptions['grpc.max_receive_message_length'] = options.maxReceiveMessageSize;
  const target = isIP(options.host) === 6 ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
  const client = new grpc.Client(target, creds, channelOptions);
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.add(k, v);
  const callOptions: grpc.CallOptions = options.deadline !== undefined ? { deadline: Date.now() + options.deadline } : {};
  const serialize = method.serialize;
  const deserialize = method.deserialize;
  try {
    return await new Promise<GrpcCallResult>((resolvePromise, reject) => {
      const done = (s: grpc.StatusObject) => {
        const result = { code: s.code, name: statusName(s.code), details: s.details };
        if (s.code === grpc.status.OK) void allTaken.then(() => resolvePromise(result));
        else resolvePromise(result);
      };
      const reply = (err: grpc.ServiceError | null, value?: object) => {
        if (!err && value) void options.onReply(value);
      };
      /** Streamed replies; with status OK the call is done once the last one has been taken ('end'), not at the status. */
      let allTaken: Promise<void> = Promise.resolve();
      const replies = (stream: grpc.ClientReadableStream<object> | grpc.ClientDuplexStream<object, object>) => {
        allTaken = new Promise((r) => {
          stream.once('end', r);
          stream.once('close', r);
        });
        stream.on('error', () => {}); // the status says it
        stream.on('data', (value: object) => {
          const held = options.onReply(value);
          if (held) {
            stream.pause();
            void held.finally(() => stream.resume());
          }
        });
      };
      if (!method.requestStream) {
        void firstOnly(options.requests, method).then((request) => {
          const call = method.responseStream
            ? client.makeServerStreamRequest(method.path, serialize, deserialize, request, metadata, callOptions)
            : client.makeUnaryRequest(method.path, serialize, deserialize, request, metadata, callOptions, reply);
          if (method.responseStream) replies(call as grpc.ClientReadableStream<object>);
          call.on('status', done);
        }, reject);
        return;
      }
      const call = method.responseStream
        ? client.makeBidiStreamRequest(method.path, serialize, deserialize, metadata, callOptions)
        : client.makeClientStreamRequest(method.path, serialize, deserialize, metadata, callOptions, reply);
      if (method.responseStream) replies(call as grpc.ClientDuplexStream<object, object>);
      let ended = false;
      call.on('status', (s: grpc.StatusObject) => {
        ended = true;
        done(s);
      });
      void (async () => {
        for await (const request of options.requests) {
          if (ended) return;
          // Backpressure: wait for the stream to take more before reading the next line.
          if (!call.write(request)) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      })().catch((err: unknown) => {
        call.cancel();
        reject(err);
      });
    });
  } finally {
    client.close();
  }
}

/** The one request of a unary or server-streaming call: `{}` when none is given, an error for two. */
async function firstOnly(requests: AsyncIterable<object>, method: GrpcMethod): Promise<object> {
  let first: object | undefined;
  for await (const r of requests) {
    if (first !== undefined) throw new ConnectUsageError(`${method.path} takes one request message; got more`);
    first = r;
  }
  return first ?? {};
}

/**
 * The request messages in a text: one JSON object, or several, one per line (NDJSON). `source`
 * names it in errors (`-d`, `stdin line 3`).
 */
export function parseJsonMessages(text: string, method: GrpcMethod, source: string): object[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  try {
    return [checkMessage(JSON.parse(trimmed), method, source)];
  } catch (err) {
    if (err instanceof ConnectUsageError) throw err;
  }
  const out: object[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() !== '') out.push(parseJsonLine(line, method, `${source} line ${i + 1}`));
  });
  return out;
}

/** One line of NDJSON as a request message. */
export function parseJsonLine(line: string, method: GrpcMethod, source: string): object {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new ConnectUsageError(`${source}: not JSON (${(err as Error).message})`);
  }
  return checkMessage(value, method, source);
}

function checkMessage(value: unknown, method: GrpcMethod, source: string): object {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ConnectUsageError(`${source}: a request message is a JSON object, like {"name": "you"}`);
  for (const key of Object.keys(value)) {
    if (!method.requestFields.has(key)) {
      throw new ConnectUsageError(`${source}: ${method.requestTypeName} has no field "${key}" (fields: ${[...method.requestFields].join(', ') || 'none'})`);
    }
  }
  return value;
}
