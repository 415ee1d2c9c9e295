// The tick-game page: no build step, no library. The protocol is in ../README.md.
//  - prediction: each input moves the own square at once, with the server's rule (`step`);
//  - reconciliation: each snapshot says which input the server applied last (ack); the own
//    square is reset to the server's position and the inputs after that one are applied again;
//  - interpolation: other players are drawn a little in the past, between the two snapshots
//    around that moment, so they move smoothly although snapshots come 30 times a second;
//  - ?lag=N (or the field): every message is held N ms before it is sent and N ms after it
//    arrives, as a slow network would.
'use strict';
(() => {
  const params = new URLSearchParams(location.search);
  const lagInput = document.getElementById('lag');
  const statusEl = document.getElementById('status');
  const infoEl = document.getElementById('info');
  const canvas = document.getElementById('view');
  const g = canvas.getContext('2d');
  let lag = Math.max(0, Math.min(2000, Number(params.get('lag')) || 0));
  lagInput.value = String(lag);
  lagInput.addEventListener('change', () => {
    lag = Math.max(0, Math.min(2000, Number(lagInput.value) || 0));
  });

  /** Same rule as examples/tick-game/sim.ts `step`: clamp to a unit vector, move, clamp to the world, round. */
  function step(pos, dx, dy, rules) {
    const len = Math.hypot(dx, dy);
    if (len > 1) { dx /= len; dy /= len; }
    const d = rules.speed / rules.tickRate;
    const round2 = (v) => Math.round(v * 100) / 100;
    return {
      x: round2(Math.min(rules.width, Math.max(0, pos.x + dx * d))),
      y: round2(Math.min(rules.height, Math.max(0, pos.y + dy * d))),
    };
  }

  let rules = null;
  let myId = null;
  let seq = 0;
  /** Inputs sent and not yet applied by the server: replayed on every snapshot. */
  let pending = [];
  let predicted = null;
  let serverPos = null;
  let ackedSeq = 0;
  let lastTick = 0;
  let open = false;
  /** World state by snapshot tick: the baselines deltas are applied to. */
  const states = new Map();
  /** Recent snapshots with their arrival time, for interpolation. */
  const timeline = [];
  const keys = new Set();

  const later = (fn) => (lag > 0 ? setTimeout(fn, lag) : fn());
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/game/ws`);
  const send = (msg) => {
    const text = JSON.stringify(msg);
    later(() => { if (ws.readyState === 1) ws.send(text); });
  };
  ws.onopen = () => { open = true; statusEl.textContent = 'connected'; statusEl.dataset.state = 'open'; };
  ws.onclose = (e) => { open = false; statusEl.textContent = `disconnected (${e.code} ${e.reason})`; statusEl.dataset.state = 'closed'; };
  ws.onmessage = (e) => { const data = e.data; later(() => receive(JSON.parse(data))); };

  function receive(msg) {
    if (msg.t === 'w') {
      rules = msg;
      myId = msg.id;
      setInterval(inputTick, 1000 / rules.tickRate);
      return;
    }
    if (msg.t === 'e') { console.warn('server refused a message:', msg.m); return; }
    if (msg.t !== 's' || msg.tick <= lastTick) return;
    const base = msg.base === 0 ? new Map() : states.get(msg.base);
    if (!base) return; // baseline dropped here; the server sends a full snapshot once our ack is too old
    const state = new Map(base);
    for (const [id, x, y] of msg.p) state.set(id, { x, y });
    for (const id of msg.g) state.delete(id);
    states.set(msg.tick, state);
    states.delete(msg.tick - rules.history - 1);
    lastTick = msg.tick;
    timeline.push({ at: performance.now(), state });
    if (timeline.length > 64) timeline.shift();
    // Reconciliation: the server's word for our position, plus what it has not applied yet.
    ackedSeq = msg.ack;
    serverPos = state.get(myId) || serverPos;
    pending = pending.filter((i) => i.seq > msg.ack);
    if (serverPos) {
      let p = serverPos;
      for (const i of pending) p = step(p, i.dx, i.dy, rules);
      predicted = p;
    }
  }

  function inputTick() {
    if (!rules || !open) return;
    const dx = (keys.has('right') ? 1 : 0) - (keys.has('left') ? 1 : 0);
    const dy = (keys.has('down') ? 1 : 0) - (keys.has('up') ? 1 : 0);
    const input = { seq: ++seq, dx, dy };
    if (predicted) {
      pending.push(input);
      predicted = step(predicted, dx, dy, rules); // prediction: do not wait for the server
    }
    send({ t: 'i', ack: lastTick, in: [[input.seq, dx, dy]] });
  }

  const KEYS = { ArrowLeft: 'left', KeyA: 'left', ArrowRight: 'right', KeyD: 'right', ArrowUp: 'up', KeyW: 'up', ArrowDown: 'down', KeyS: 'down' };
  addEventListener('keydown', (e) => { if (KEYS[e.code] && e.target !== lagInput) { keys.add(KEYS[e.code]); e.preventDefault(); } });
  addEventListener('keyup', (e) => { if (KEYS[e.code]) keys.delete(KEYS[e.code]); });
  addEventListener('blur', () => keys.clear());

  /** Others, drawn two ticks in the past between the snapshots around that moment. */
  function othersNow() {
    const out = {};
    if (!rules || timeline.length === 0) return out;
    const at = performance.now() - 2000 / rules.tickRate;
    let i = timeline.length - 1;
    while (i > 0 && timeline[i - 1].at > at) i--;
    const b = timeline[i];
    const a = i > 0 ? timeline[i - 1] : b;
    const f = b.at === a.at ? 1 : Math.max(0, Math.min(1, (at - a.at) / (b.at - a.at)));
    for (const [id, pb] of b.state) {
      if (id === myId) continue;
      const pa = a.state.get(id) || pb;
      out[id] = { x: pa.x + (pb.x - pa.x) * f, y: pa.y + (pb.y - pa.y) * f };
    }
    return out;
  }

  function draw() {
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (rules) {
      const sx = canvas.width / rules.width;
      const sy = canvas.height / rules.height;
      g.fillStyle = '#c84';
      for (const p of Object.values(othersNow())) g.fillRect(p.x * sx - 8, p.y * sy - 8, 16, 16);
      if (serverPos) { g.strokeStyle = '#8c8'; g.strokeRect(serverPos.x * sx - 9, serverPos.y * sy - 9, 18, 18); }
      if (predicted) { g.fillStyle = '#4c4'; g.fillRect(predicted.x * sx - 8, predicted.y * sy - 8, 16, 16); }
      infoEl.textContent = `you: ${myId} · tick ${lastTick} · inputs in flight ${pending.length} · players ${states.get(lastTick)?.size ?? 0}`;
    }
    requestAnimationFrame(draw);
  }
  requestAnimationFrame(draw);

  // For tests and the curious: the page's view of the game.
  window.__game = {
    state: () => ({ open, id: myId, tick: lastTick, ackedSeq, seq, pending: pending.length, predicted, server: serverPos, others: othersNow() }),
  };
})();
