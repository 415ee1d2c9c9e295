import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncResource, executionAsyncId } from 'node:async_hooks';
import { installLeanAsyncResourceBind } from '../src/upstream/async-resource-bind.ts';

// The lean AsyncResource.prototype.bind (src/upstream/async-resource-bind.ts) must behave as
// node's: the bound function runs in the resource's async scope with the caller's `this` (or
// thisArg) and its arguments, keeps fn's length, and has the deprecated asyncResource accessor.

const original = AsyncResource.prototype.bind;
installLeanAsyncResourceBind();

test('installed where node builds deprecation wrappers per call', () => {
  const builds = /\bdeprecate\(/.test(Function.prototype.toString.call(original));
  assert.equal(AsyncResource.prototype.bind !== original, builds);
});

test('a bound function runs in the resource\'s scope with this, arguments and length as node\'s', () => {
  const resource = new AsyncResource('Test');
  let seen: { id: number; self: unknown; args: unknown[] } | undefined;
  function fn(this: unknown, a: unknown, b: unknown) {
    seen = { id: executionAsyncId(), self: this, args: [a, b] };
    return 'result';
  }
  const bound = resource.bind(fn);
  assert.equal(bound.length, 2);
  const receiver = { name: 'receiver' };
  assert.equal(bound.call(receiver, 1, 2), 'result');
  assert.deepEqual(seen, { id: resource.asyncId(), self: receiver, args: [1, 2] });

  // @types/node declares bind(fn) only; node takes a thisArg too.
  const withThis = (resource.bind as (this: AsyncResource, f: typeof fn, thisArg: unknown) => typeof fn).call(resource, fn, 'fixed');
  withThis(3, 4);
  assert.deepEqual(seen, { id: resource.asyncId(), self: 'fixed', args: [3, 4] });

  assert.throws(() => resource.bind(42 as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('the asyncResource accessor returns the resource, its setter replaces it, and it is deprecated', async () => {
  const resource = new AsyncResource('Test');
  const bound = resource.bind(() => 1) as (() => number) & { asyncResource: unknown };
  const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
  assert.equal(bound.asyncResource, resource);
  assert.ok(Object.keys(bound).includes('asyncResource'), 'enumerable, as node has it');
  const other = new AsyncResource('Other');
  bound.asyncResource = other;
  assert.equal(bound.asyncResource, other);
  // node's deprecate warns once per process: this process may have warned already.
  const first = await Promise.race([warned, new Promise<undefined>((r) => void (setTimeout(() => r(undefined), 200) as NodeJS.Timeout).unref())]);
  if (first) assert.match(String((first as Error & { code?: string }).code), /DEP0172/);
});
