import { AsyncResource } from 'node:async_hooks';
import { deprecate } from 'node:util';

// node:http2's ClientHttp2Session.request() calls AsyncResource.prototype.bind() for every
// request. On Node 20 that bind() defines the bound function's deprecated `asyncResource`
// property with two fresh util.deprecate() wrappers, and each wrapper gets its own prototype
// (Object.setPrototypeOf on a function): about 3 KiB allocated per request and new hidden
// classes that the garbage collector keeps paying for. Measured on the gRPC benchmark (a proxied
// unary call: 38.9 -> 34.9 KiB allocated per call, the daemon's GC share about 23% -> 10-20%, CPU
// per call about a fifth lower).
//
// The replacement below does what node's does, with one shared pair of deprecated accessors
// instead of two new wrappers per call: the same bound function (runs `fn` in the resource's
// async scope, with `this` or `thisArg`), the same `length`, the same enumerable and configurable
// `asyncResource` that warns with DEP0172 (once per process, as node's deprecate does) and whose
// setter changes only what the getter returns. It is installed only when the running Node's
// bind() is the one that builds the wrappers (newer versions may not), once per process.

const kResource = Symbol('switchyard.asyncResource');
type Bound = ((...args: unknown[]) => unknown) & { [kResource]?: unknown };

const MESSAGE = 'The asyncResource property on bound functions is deprecated';
const getResource = deprecate(function (this: Bound) {
  return this[kResource];
}, MESSAGE, 'DEP0172');
const setResource = deprecate(function (this: Bound, value: unknown) {
  this[kResource] = value;
}, MESSAGE, 'DEP0172');

let installed = false;

/** Replaces AsyncResource.prototype.bind with the lean equivalent above, when the running Node's builds wrappers per call. */
export function installLeanAsyncResourceBind(): void {
  if (installed) return;
  installed = true;
  const original = AsyncResource.prototype.bind;
  if (!/\bdeprecate\(/.test(Function.prototype.toString.call(original))) return;
  AsyncResource.prototype.bind = function bind(this: AsyncResource, fn: (...args: unknown[]) => unknown, thisArg?: unknown) {
    if (typeof fn !== 'function') return (original as (f: unknown, t?: unknown) => unknown).call(this, fn, thisArg);
    const resource = this;
    const bound: Bound =
      thisArg === undefined
        ? function (this: unknown, ...args: unknown[]) {
            return resource.runInAsyncScope(fn, this, ...args);
          }
        : (resource.runInAsyncScope.bind(resource, fn, thisArg) as Bound);
    Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, value: fn.length, writable: false });
    bound[kResource] = resource;
    Object.defineProperty(bound, 'asyncResource', { configurable: true, enumerable: true, get: getResource, set: setResource });
    return bound;
  } as unknown as typeof AsyncResource.prototype.bind;
}
