import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import protobuf from 'protobufjs';

// The .proto files of the built-in services, loaded with protobufjs at provision time (no code
// generation): proto/helloworld.proto and proto/grpc/health/v1/health.proto in the package.
// One Root per process, loaded on first use.

/** The package's proto/ folder (the same from src/ under tsx and from dist/ when built). */
export const builtinProtoDir = fileURLToPath(new URL('../../../proto/', import.meta.url));

/** The built-in .proto files, relative to builtinProtoDir. */
export const BUILTIN_PROTO_FILES = ['helloworld.proto', 'grpc/health/v1/health.proto'] as const;

/** One method as the handler runs it: its path, the message types, and which sides stream. */
export interface MethodDescriptor {
  /** `/helloworld.Greeter/SayHello`: the request path and the metrics label. */
  readonly path: string;
  readonly service: string;
  readonly name: string;
  readonly requestType: protobuf.Type;
  readonly responseType: protobuf.Type;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

let root: protobuf.Root | undefined;

/** The Root with every built-in .proto loaded (throws, naming the file, when one is missing). */
export function builtinRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => (target.startsWith('/') ? target : join(builtinProtoDir, target));
  for (const file of BUILTIN_PROTO_FILES) {
    const path = join(builtinProtoDir, file);
    if (!existsSync(path)) throw new Error(`grpc: the built-in proto file ${path} is missing from the package`);
  }
  r.loadSync([...BUILTIN_PROTO_FILES], { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

/** The methods of a service in `root` (`helloworld.Greeter`), by method name. */
export function describeService(root: protobuf.Root, serviceName: string): Map<string, MethodDescriptor> {
  const service = root.lookupService(serviceName);
  const methods = new Map<string, MethodDescriptor>();
  for (const m of service.methodsArray) {
    m.resolve();
    methods.set(m.name, {
      path: `/${serviceName}/${m.name}`,
      service: serviceName,
      name: m.name,
      requestType: m.resolvedRequestType!,
      responseType: m.resolvedResponseType!,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
    });
  }
  return methods;
}
