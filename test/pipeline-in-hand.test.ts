import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { createServer, connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { ConnectionPipeline } from '../src/listeners/http/pipeline.ts';

// ConnectionPipeline's bookkeeping of the requests in hand: the one-request case keeps its
// response in a field, further ones in a Set; both must count the same, release parked requests
// in order, and be closed when the client goes away.

/** A stand-in for a ServerResponse: what the pipeline touches (identity, destroyed, 'close'). */
function response(): ServerResponse & { closes: number } {
  const r = new EventEmitter() as unknown as ServerResponse & { closes: number };
  r.closes = 0;
  (r as { destroyed: boolean }).destroyed = false;
  r.on('close', () => r.closes++);
  return r;
}

/** A real loopback connection: the server's side, and a way to close the client's. */
async function connection(): Promise<{ socket: Socket; closeClient: () => void; stop: () => void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection');
  const client = connect(port, '127.0.0.1');
  const [socket] = (await accepted) as [Socket];
  return {
    socket,
    closeClient: () => client.destroy(),
    stop: () => {
      client.destroy();
      socket.destroy();
      server.close();
    },
  };
}

test('requests in hand: counted once each, parked ones run in order as room frees, idle only when all are done', async () => {
  const c = await connection();
  try {
    const p = new ConnectionPipeline(c.socket, 2);
    const [a, b, d, e] = [response(), response(), response(), response()];
    assert.equal(p.admit(a), true);
    assert.equal(p.admit(b), true, 'depth 2: a second request is handled at once');
    assert.equal(p.admit(d), false, 'a third waits');
    const ran: string[] = [];
    p.park(d, () => ran.push('d'));
    let idle = 0;
    p.whenIdle(() => idle++);

    p.done(a);
    assert.deepEqual(ran, ['d'], 'the parked request runs once one in hand is done');
    p.done(a);
    p.done(a);
    assert.equal(p.admit(e), false, 'a response done twice frees one place, not more');
    p.park(e, () => ran.push('e'));
    p.done(b);
    assert.deepEqual(ran, ['d', 'e']);
    assert.equal(idle, 0, 'not idle while d and e are in hand');
    p.done(d);
    assert.equal(idle, 0, 'not idle while e is in hand');
    p.done(e);
    assert.equal(idle, 1, 'idle once every request is done');
    p.done(e);
    let again = 0;
    p.whenIdle(() => again++);
    assert.equal(again, 1, 'nothing in hand: at once');
  } finally {
    c.stop();
  }
});

test('the client goes away: every response still in hand hears close, the first and the pipelined ones alike', async () => {
  const c = await connection();
  try {
    const p = new ConnectionPipeline(c.socket, 4);
    const [a, b, d] = [response(), response(), response()];
    assert.equal(p.admit(a), true);
    assert.equal(p.admit(b), true);
    assert.equal(p.admit(d), true);
    p.done(b);
    const closed = once(c.socket, 'close');
    c.closeClient();
    c.socket.destroy();
    await closed;
    // The pipeline closes them on the turn after node's own close (setImmediate).
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a.closes, 1, 'the first in hand');
    assert.equal(d.closes, 1, 'one further in hand');
    assert.equal(b.closes, 0, 'a response already done is left alone');
  } finally {
    c.stop();
  }
});
