import { z } from 'zod';
import { duration, size } from '../../config/units.ts';

// The `grpc` handler's config (docs/grpc.md has the table). Every field has a default, so
// `{ type: grpc }` serves both built-in services with gRPC's usual limits.

/** Built-in services by config name, and the gRPC service each one is. */
export const BUILTIN_SERVICES = {
  greeter: 'helloworld.Greeter',
  health: 'grpc.health.v1.Health',
} as const;

export type BuiltinServiceName = keyof typeof BUILTIN_SERVICES;

const messageSize = () => size().pipe(z.number().int().min(1, 'a message limit of at least 1 byte').max(2 ** 31 - 1, 'at most 2 GiB - 1'));

const grpcWebSchema = z.strictObject({
  /** Serve gRPC-Web (application/grpc-web[+proto], application/grpc-web-text[+proto]) on this route. */
  enabled: z.boolean().default(true),
  /**
   * Origins whose pages may call from a browser: their CORS preflights are answered here and
   * their calls get Access-Control-Allow-Origin and -Expose-Headers (grpc-status,
   * grpc-message). `*` allows any. Empty (the default): no CORS headers; same-origin pages work,
   * and the route's `cors` middleware may answer instead.
   */
  origins: z.array(z.string().min(1)).default([]),
  /** How long a browser may cache a preflight's answer. */
  maxAge: duration().default(600_000),
});

const greeterSchema = z.strictObject({
  /** SayHelloStream: replies when the request's `count` is 0. */
  defaultReplies: z.number().int().min(1).default(3),
  /** SayHelloStream: the largest `count` taken; more is INVALID_ARGUMENT. */
  maxReplies: z.number().int().min(1).max(100_000_000).default(1000),
});

export const grpcSchema = z
  .strictObject({
    type: z.literal('grpc'),
    /**
     * Services to serve: `greeter` (helloworld.Greeter, proto/helloworld.proto) and `health`
     * (grpc.health.v1.Health, reporting SERVING for each service listed here). Calls to any
     * other service get UNIMPLEMENTED.
     */
    services: z.array(z.enum(Object.keys(BUILTIN_SERVICES) as [BuiltinServiceName, ...BuiltinServiceName[]])).min(1).default(['greeter', 'health']),
    /**
     * Largest request message accepted, after decompression; larger gets RESOURCE_EXHAUSTED.
     * Refused at its 5-byte header: nothing of it is buffered.
     */
    maxReceiveMessageSize: messageSize().default(4 * 1024 * 1024),
    /** Largest reply message sent; a larger one ends the call with RESOURCE_EXHAUSTED. */
    maxSendMessageSize: messageSize().default(4 * 1024 * 1024),
    /**
     * Longest a call may run. A client's `grpc-timeout` is its deadline; with this set, a longer
     * one (or none) is cut to it. Past the deadline: DEADLINE_EXCEEDED. Unset: no limit of ours.
     */
    maxTimeout: duration().optional(),
    /** gRPC-Web for browsers and HTTP/1.1 clients: `true` (default), `false` (415), or the object form for CORS. */
    grpcWeb: z
      .union([z.boolean(), grpcWebSchema])
      .default(true)
      .transform((v) => (typeof v === 'boolean' ? { ...grpcWebSchema.parse({}), enabled: v } : v)),
    /** helloworld.Greeter's knobs. */
    greeter: greeterSchema.default(greeterSchema.parse({})),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.services.forEach((s, i) => {
      if (seen.has(s)) ctx.addIssue({ code: 'custom', path: ['services', i], message: `"${s}" is listed twice` });
      seen.add(s);
    });
    if (c.greeter.defaultReplies > c.greeter.maxReplies) {
      ctx.addIssue({ code: 'custom', path: ['greeter', 'defaultReplies'], message: `defaultReplies (${c.greeter.defaultReplies}) is more than maxReplies (${c.greeter.maxReplies})` });
    }
  });

export type GrpcConfig = z.output<typeof grpcSchema>;
export type GrpcWebConfig = GrpcConfig['grpcWeb'];
