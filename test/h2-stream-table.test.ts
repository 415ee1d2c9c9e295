import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamTable } from '../src/protocol/h2/stream-table.ts';

// The open-stream table of HTTP/2 sessions and upstream connections: the same answers as a Map
// under the churn a connection makes (ids growing by two, streams closing out of order, some
// staying open while thousands pass), through growth and wrap-around of the probe runs.

interface S {
  readonly id: number;
}

test('get, set and delete agree with a Map through churn, long-lived streams and growth', () => {
  const table = new StreamTable<S>(4);
  const map = new Map<number, S>();
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  let next = 1;
  // Bounded: 20,000 operations.
  for (let op = 0; op < 20_000; op++) {
    const r = random();
    if (r < 0.5 || map.size === 0) {
      const s = { id: next };
      next += 2;
      table.set(s);
      map.set(s.id, s);
    } else {
      // Close an open stream, mostly a recent one, sometimes one opened long ago.
      const ids = [...map.keys()];
      const id = r < 0.95 ? ids[ids.length - 1 - Math.floor(random() * Math.min(8, ids.length))] : ids[Math.floor(random() * ids.length)];
      assert.equal(table.delete(id), true, `delete ${id}`);
      map.delete(id);
    }
    assert.equal(table.size, map.size);
    if (op % 97 === 0) {
      for (const [id, s] of map) assert.equal(table.get(id), s, `get ${id} at op ${op}`);
      assert.equal(table.get(next), undefined);
      assert.equal(table.delete(next), false);
      assert.deepEqual(new Set(table.values()), new Set(map.values()));
    }
  }
});

test('a probe run that wraps past the end of the array keeps every stream reachable after deletes', () => {
  const table = new StreamTable<S>(8); // 16 slots: ids 31, 63, 95... all map to slot 15
  const ids = [31, 63, 95, 127, 159];
  for (const id of ids) table.set({ id });
  for (const id of ids) assert.equal(table.get(id)?.id, id);
  assert.equal(table.delete(63), true);
  for (const id of [31, 95, 127, 159]) assert.equal(table.get(id)?.id, id, `after deleting 63: ${id}`);
  assert.equal(table.delete(31), true);
  for (const id of [95, 127, 159]) assert.equal(table.get(id)?.id, id, `after deleting 31: ${id}`);
  assert.equal(table.get(63), undefined);
  assert.equal(table.size, 3);
});

test('QUIC ids (shift 0: kinds in the two low bits, stepping by four) through churn and growth', () => {
  const table = new StreamTable<S>(2, 0);
  const open = new Map<number, S>();
  // Bounded: 2,000 client bidi streams (0, 4, 8...) with a server uni stream (3, 7...) now and then.
  let uni = 3;
  for (let n = 0; n < 2000; n++) {
    const s = { id: n * 4 };
    table.set(s);
    open.set(s.id, s);
    if (n % 50 === 0) {
      const u = { id: uni };
      uni += 4;
      table.set(u);
      open.set(u.id, u);
    }
    // Streams end a few behind the newest; every 100th stays open.
    const old = (n - 5) * 4;
    if (n >= 5 && (n - 5) % 100 !== 0) {
      assert.equal(table.delete(old), true);
      open.delete(old);
    }
  }
  assert.equal(table.size, open.size);
  for (const [id, s] of open) assert.equal(table.get(id), s, `get ${id}`);
  assert.equal(table.get(8001), undefined);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.get(0), undefined);
});
