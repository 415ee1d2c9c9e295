// The Switchyard dashboard: draws each snapshot from /events (server-sent events, one JSON
// snapshot a second; see src/handlers/admin/dashboard.ts for its shape). No framework, no build
// step, nothing fetched from elsewhere; every text from the daemon goes in as textContent.
'use strict';
(() => {
  const HISTORY = 120;
  const STALE_MS = 5000;
  const $ = (id) => document.getElementById(id);
  const app = $('app');
  const statusEl = $('status');

  /** An element: `attrs` with class/data-* as attributes, children strings (as text) or nodes. */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) e.setAttribute(k, String(v));
    for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  const dash = '—';
  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  function fmtRate(x) {
    if (!isNum(x)) return dash;
    if (x === 0) return '0';
    if (x < 10) return x.toFixed(2);
    if (x < 1000) return x.toFixed(1);
    return Math.round(x).toLocaleString('en');
  }
  function fmtLatency(s) {
    if (!isNum(s)) return dash;
    const ms = s * 1000;
    if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
    if (ms < 10) return `${ms.toFixed(2)} ms`;
    if (ms < 1000) return `${ms.toFixed(0)} ms`;
    return `${s.toFixed(2)} s`;
  }
  function fmtBytes(b) {
    if (!isNum(b)) return dash;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return `${b < 10 && i > 0 ? b.toFixed(1) : Math.round(b)} ${units[i]}`;
  }
  function fmtUptime(s) {
    if (!isNum(s)) return dash;
    const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    if (d > 0) return `${d}d ${hh}h ${m}m`;
    if (hh > 0) return `${hh}h ${m}m`;
    if (m > 0) return `${m}m ${sec}s`;
    return `${sec}s`;
  }
  const fmtPct = (x) => (isNum(x) ? `${x.toFixed(1)} %` : dash);
  const fmtMs = (x) => (isNum(x) ? `${x.toFixed(x < 10 ? 2 : 0)} ms` : dash);
  const joinList = (x) => (Array.isArray(x) ? x.join(', ') : x);

  // History for the sparklines, kept here (the daemon keeps none).
  const series = { rps: [], err: [], p99: [] };
  function remember(name, value) {
    const s = series[name];
    s.push(isNum(value) ? value : null);
    if (s.length > HISTORY) s.shift();
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function sparkline(values, bad) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', bad ? 'spark bad' : 'spark');
    svg.setAttribute('viewBox', `0 0 ${HISTORY - 1} 100`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('aria-hidden', 'true');
    const max = Math.max(1e-9, ...values.filter(isNum));
    const offset = HISTORY - values.length;
    const points = [];
    values.forEach((v, i) => { if (isNum(v)) points.push(`${offset + i},${(100 - (v / max) * 96 - 2).toFixed(1)}`); });
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', points.join(' '));
    svg.append(line);
    return svg;
  }

  function card(label, value, sub, extra, cls) {
    return h('div', { class: `card${cls ? ` ${cls}` : ''}` }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), sub ? h('div', { class: 'sub' }, sub) : null, extra);
  }

  function bar(fraction) {
    const i = h('i');
    // CSSOM, not a style attribute: the page's CSP allows no inline style attributes.
    i.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    return h('div', { class: 'bar' }, i);
  }

  function renderSummary(s) {
    const t = s.totals;
    const targets = s.upstreams.flatMap((u) => u.targets);
    const up = targets.filter((x) => x.state === 'up').length;
    const lat = t.latencySeconds;
    $('summary').replaceChildren(
      card('Requests / s', fmtRate(t.requestsPerSecond), `${(t.requests ?? 0).toLocaleString('en')} in all`, sparkline(series.rps)),
      card('Errors / s', fmtRate(t.errorsPerSecond), '5xx and failed', sparkline(series.err, true), t.errorsPerSecond > 0 ? 'bad' : ''),
      card('Latency p50 / p90', lat ? `${fmtLatency(lat.p50)}` : dash, lat ? `p90 ${fmtLatency(lat.p90)}` : 'no requests in window'),
      card('Latency p99', lat ? fmtLatency(lat.p99) : dash, `last ${s.windowSeconds} s`, sparkline(series.p99)),
      card('Connections', String(t.activeConnections), `${t.inFlight} in flight`),
      card('Targets up', targets.length ? `${up} / ${targets.length}` : dash, `${s.upstreams.length} upstream group${s.upstreams.length === 1 ? '' : 's'}`, null, up < targets.length ? 'bad' : ''),
    );
  }

  // One row per process (with workers: the primary, then each worker slot), and a row of totals
  // when there is more than one. A slot whose worker has not reported yet (starting, restarting)
  // has a row of dashes; a worker that did not answer in time keeps its last numbers, marked stale.
  function renderProcesses(s) {
    const rows = s.processes.map((p) => ({ p, status: p.worker ? (s.workers || []).find((w) => w.worker === p.worker) : undefined }));
    for (const w of s.workers || []) {
      if (!rows.some((r) => r.p.worker === w.worker)) rows.push({ p: { role: 'worker', worker: w.worker, pid: w.pid, restarts: w.restarts }, status: w });
    }
    const order = (r) => (r.p.role === 'worker' ? r.p.worker : 0);
    rows.sort((a, b) => order(a) - order(b));
    const td = (label, value, extra, cls) => h('td', { class: `num${cls ? ` ${cls}` : ''}`, 'data-label': label }, value, extra);
    const body = rows.map(({ p, status }) => {
      const state = status && status.state !== 'up' ? status.state : (p.state || 'up');
      const heap = p.heapTotalBytes > 0 ? p.heapUsedBytes / p.heapTotalBytes : 0;
      const eld = p.eventLoopDelayMs;
      const name = p.role === 'worker' ? `worker ${p.worker}` : p.role;
      const why = state === 'stale' ? `stale${isNum(p.sampleAgeSeconds) ? ` (${fmtUptime(p.sampleAgeSeconds)} old)` : ''}` : state === 'starting' ? (status && status.pid ? 'starting' : 'restarting') : '';
      return h('tr', { class: `process state-${state}`, 'data-role': p.role, 'data-pid': p.pid, 'data-worker': p.worker, 'data-state': state },
        h('td', null, name, why ? ' ' : '', why ? h('span', { class: 'badge state-stale' }, why) : null, status && status.error && state !== 'up' ? h('div', { class: 'muted small' }, status.error) : null),
        td('pid', p.pid ? String(p.pid) : dash),
        td('CPU', fmtPct(p.cpuPercent), isNum(p.cpuPercent) ? bar(p.cpuPercent / 100) : null),
        td('RSS', fmtBytes(p.rssBytes)),
        td('heap used / total', isNum(p.heapUsedBytes) ? `${fmtBytes(p.heapUsedBytes)} / ${fmtBytes(p.heapTotalBytes)}` : dash, isNum(p.heapUsedBytes) ? bar(heap) : null),
        td('loop delay p50 / p99', eld ? `${fmtMs(eld.p50)} / ${fmtMs(eld.p99)}` : dash),
        td('open fds', isNum(p.openFds) ? (isNum(p.maxFds) ? `${p.openFds} / ${p.maxFds}` : String(p.openFds)) : dash, isNum(p.openFds) && isNum(p.maxFds) ? bar(p.openFds / p.maxFds) : null),
        td('uptime', fmtUptime(p.uptimeSeconds)),
        td('restarts', p.role === 'worker' ? String(p.restarts ?? 0) : dash, null, p.restarts > 0 ? 'err-some' : ''),
      );
    });
    if (rows.length > 1) {
      const ps = s.processes;
      const total = (k) => ps.reduce((a, p) => a + (isNum(p[k]) ? p[k] : 0), 0);
      const worstEld = ps.reduce((a, p) => (p.eventLoopDelayMs && p.eventLoopDelayMs.p99 > a ? p.eventLoopDelayMs.p99 : a), 0);
      const cpu = ps.some((p) => isNum(p.cpuPercent)) ? total('cpuPercent') : null;
      body.push(h('tr', { class: 'process-total' },
        h('td', null, `all ${ps.length} processes`),
        td('pid', dash),
        td('CPU', fmtPct(cpu)),
        td('RSS', fmtBytes(total('rssBytes'))),
        td('heap used / total', `${fmtBytes(total('heapUsedBytes'))} / ${fmtBytes(total('heapTotalBytes'))}`),
        td('worst loop delay p99', fmtMs(worstEld)),
        td('open fds', String(total('openFds'))),
        td('uptime', dash),
        td('restarts', String((s.workers || []).reduce((a, w) => a + w.restarts, 0))),
      ));
    }
    $('processes').tBodies[0].replaceChildren(...body);
  }

  /** "down in 1 of 2 workers" when the workers do not agree on something; '' when they do (or there are none). */
  function disagreement(states, worst) {
    if (!states || states.length < 2) return '';
    const n = states.filter((x) => x.state === worst).length;
    return n < states.length ? `${worst} in ${n} of ${states.length} workers` : '';
  }

  function trafficCells(t) {
    const lat = t.latencySeconds;
    return [
      h('td', { class: 'num', 'data-label': 'req/s' }, fmtRate(t.requestsPerSecond)),
      h('td', { class: `num${t.errorsPerSecond > 0 ? ' err-some' : ''}`, 'data-label': 'err/s' }, fmtRate(t.errorsPerSecond)),
      h('td', { class: 'num', 'data-label': 'p50' }, lat ? fmtLatency(lat.p50) : dash),
      h('td', { class: 'num', 'data-label': 'p90' }, lat ? fmtLatency(lat.p90) : dash),
      h('td', { class: 'num', 'data-label': 'p99' }, lat ? fmtLatency(lat.p99) : dash),
    ];
  }

  function renderListeners(s) {
    const rows = [];
    for (const l of s.listeners) {
      rows.push(h('tr', { class: 'listener', 'data-listener': l.name },
        h('td', null, l.name, ' ', h('code', { class: 'muted' }, l.url)),
        h('td', { 'data-label': 'kind' }, l.protocol),
        ...trafficCells(l.traffic),
        h('td', { class: 'num', 'data-label': 'conns' }, String(l.activeConnections)),
        h('td', { class: 'num', 'data-label': 'in flight' }, String(l.inFlight)),
        h('td', { class: 'num', 'data-label': 'in / out' }, `${fmtBytes(l.bytesInPerSecond)}/s · ${fmtBytes(l.bytesOutPerSecond)}/s`),
      ));
      for (const r of l.routes) {
        const where = [r.host ? `host ${joinList(r.host)}` : '', r.method ? joinList(r.method) : '', r.path && r.path !== r.name ? r.path : ''].filter(Boolean).join(' ');
        rows.push(h('tr', { class: `route${r.unrouted ? ' unrouted' : ''}`, 'data-listener': l.name, 'data-route': r.name },
          r.unrouted ? h('td', { class: 'muted' }, 'no route matched') : h('td', null, r.name, where ? ' ' : '', where ? h('span', { class: 'path' }, where) : null),
          h('td', { 'data-label': 'handler' }, r.unrouted ? dash : r.handler),
          ...trafficCells(r.traffic),
          h('td', { class: 'num empty-cell' }), h('td', { class: 'num empty-cell' }), h('td', { class: 'num empty-cell' }),
        ));
      }
    }
    $('listeners').tBodies[0].replaceChildren(...rows);
  }

  function renderUpstreams(s) {
    if (s.upstreams.length === 0) return $('upstreams').replaceChildren(h('p', { class: 'empty' }, 'No upstream groups in this config.'));
    $('upstreams').replaceChildren(...s.upstreams.map((u) => {
      const b = u.breaker;
      const header = h('header', null,
        h('h3', null, u.name),
        h('span', { class: 'sub' }, `${u.kind} · ${u.balance}`),
        b ? h('span', { class: `badge breaker-${b.state}`, 'data-breaker': b.state }, `breaker ${b.state}${b.state === 'open' && b.retryAfterMs ? ` (${Math.ceil(b.retryAfterMs / 1000)} s)` : ''}`) : h('span', { class: 'badge' }, 'no breaker'),
        b && disagreement(u.breakers, b.state) ? h('span', { class: 'sub' }, disagreement(u.breakers, b.state)) : null,
        h('span', { class: 'sub' }, `retry budget ${u.retryBudget.retries}/${u.retryBudget.allowed} · ${u.waiting} waiting`),
      );
      const rows = u.targets.map((t) => h('tr', { class: `target state-${t.state}`, 'data-upstream': u.name, 'data-target': t.id, 'data-state': t.state },
        h('td', null, t.id),
        h('td', { 'data-label': 'state' }, h('span', { class: `badge state-${t.state}` }, t.state === 'ejected' ? `ejected ${Math.ceil(t.ejectedForMs / 1000)} s` : t.state),
          disagreement(t.workers, t.state) ? h('div', { class: 'per-worker' }, disagreement(t.workers, t.state)) : null),
        h('td', { class: 'num', 'data-label': 'in flight' }, String(t.inFlight)),
        h('td', { class: 'num', 'data-label': 'tries/s' }, fmtRate(t.requestsPerSecond)),
        h('td', { class: `num${t.failuresPerSecond > 0 ? ' err-some' : ''}`, 'data-label': 'failed/s' }, fmtRate(t.failuresPerSecond)),
        h('td', { class: 'num', 'data-label': 'ejections' }, String(t.ejections)),
        h('td', { class: 'num', 'data-label': 'pool' }, t.pool ? `${t.pool.connected} conn · ${t.pool.running} run · ${t.pool.pending} pend` : dash),
      ));
      const table = h('table', { class: 'grid' },
        h('thead', null, h('tr', null, ...['Target', 'State', 'In flight', 'Tries/s', 'Failed/s', 'Ejections', 'Pool'].map((x, i) => h('th', { class: i >= 2 ? 'num' : undefined }, x)))),
        h('tbody', null, rows));
      return h('section', { class: 'upstream', 'data-upstream': u.name }, header, table);
    }));
  }

  function renderRooms(s) {
    const el = $('rooms');
    if (s.rooms === null) return el.replaceChildren(h('p', { class: 'empty' }, `Rooms unavailable: ${s.roomsError ?? 'the state backend did not answer'}`));
    if (s.rooms.length === 0) return el.replaceChildren(h('p', { class: 'empty' }, 'No chat rooms with anyone in them.'));
    el.replaceChildren(h('div', { class: 'rooms' },
      s.rooms.map((r) => h('span', { class: 'room', 'data-room': r.room }, `${r.room} `, h('b', null, String(r.members)))),
      s.roomsTruncated ? h('span', { class: 'empty' }, 'and more…') : null));
  }

  let lastAt = 0;
  function render(s) {
    remember('rps', s.totals.requestsPerSecond);
    remember('err', s.totals.errorsPerSecond);
    remember('p99', s.totals.latencySeconds ? s.totals.latencySeconds.p99 : null);
    renderSummary(s);
    renderProcesses(s);
    renderListeners(s);
    renderUpstreams(s);
    renderRooms(s);
    $('window').textContent = String(s.windowSeconds);
    const who = s.workers ? `${s.workers.length} workers${s.workers.some((w) => w.state !== 'up') ? ` (${s.workers.filter((w) => w.state === 'up').length} answering)` : ''}` : `${s.processes.length} process${s.processes.length === 1 ? '' : 'es'}`;
    $('meta').textContent = `v${s.version} · ${who} · ${new Date(s.at).toLocaleTimeString()}`;
    app.dataset.ready = 'true';
    app.dataset.at = String(s.at);
    lastAt = Date.now();
    setStatus('live', 'live');
  }

  function setStatus(state, text) {
    statusEl.dataset.live = state;
    statusEl.textContent = text;
  }

  let source;
  function connect() {
    source = new EventSource('events');
    source.addEventListener('snapshot', (e) => {
      let snapshot;
      try {
        snapshot = JSON.parse(e.data);
      } catch {
        return;
      }
      render(snapshot);
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (503: too many watchers, or the daemon is stopping): try again in a while.
        setStatus('refused', 'disconnected, retrying…');
        setTimeout(connect, 5000);
      } else {
        setStatus('reconnecting', 'reconnecting…');
      }
    });
  }
  setInterval(() => {
    if (lastAt && Date.now() - lastAt > STALE_MS && statusEl.dataset.live === 'live') setStatus('stale', 'stale');
  }, 1000);
  connect();
})();
