// The chat page: one WebSocket speaking the JSON protocol of docs/chat.md.
// Plain script, no build step and no external URLs; user data only ever reaches the DOM through
// textContent and attributes, never as markup.
'use strict';

(() => {
  const ROOM_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const NICK_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
  const NICK_KEY = 'switchyard.chat.nick';
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10_000;
  // A page left open for days must not grow without bound.
  const MAX_ITEMS = 500;
  const MAX_SEEN = 2000;
  const MAX_PENDING = 50;
  // After a drop the server may not have noticed our old connection yet, so for a while our own
  // nick can still look taken; give it that while before asking the user for another.
  const MAX_TAKEN_RETRIES = 5;

  // The script sits at <base>_/chat.js, so its own URL tells where the page is mounted
  // (/chat/ by default) without hard-coding the route.
  const base = new URL('../', document.currentScript.src).pathname;

  const $ = (id) => document.getElementById(id);
  const el = {
    app: $('app'),
    roomName: $('room-name'),
    roomForm: $('room-form'),
    room: $('room'),
    roomError: $('room-error'),
    status: $('status'),
    nickForm: $('nick-form'),
    nick: $('nick'),
    join: $('join'),
    nickError: $('nick-error'),
    messages: $('messages'),
    members: $('members'),
    memberCount: $('member-count'),
    sendForm: $('send-form'),
    message: $('message'),
    send: $('send'),
    sendError: $('send-error'),
  };

  const state = {
    /** The room to be in; '' means the handler's default room until a welcome names it. */
    room: '',
    /** The room of the last welcome: history and seqs belong to it. */
    welcomedRoom: '',
    /** The nick the server confirmed (welcome or our own nick event). */
    nick: '',
    /** The nick to join (and rejoin after a drop) with; '' until the user asks to join. */
    wantNick: '',
    joined: false,
    /** @type {WebSocket | null} */
    ws: null,
    /** The room in the address the socket was opened on. */
    wsRoom: '',
    attempt: 0,
    timer: 0,
    takenRetries: 0,
    /** Seqs of messages already shown, so a history replay after a reconnect adds only what was missed. */
    seen: new Set(),
    maxSeq: 0,
    /** @type {Set<string>} */
    members: new Set(),
    nextId: 1,
    /** Requests that may come back as an `error` with their id. */
    pending: new Map(),
  };

  // ---------------------------------------------------------------- room and URL

  function roomFromPath() {
    const path = location.pathname;
    if (!path.startsWith(base)) return '';
    let segment = path.slice(base.length).split('/')[0] || '';
    try {
      segment = decodeURIComponent(segment);
    } catch {
      return null;
    }
    if (segment === '') return '';
    return ROOM_RE.test(segment) ? segment : null;
  }

  function showRoom() {
    const shown = state.room || state.welcomedRoom || 'lobby';
    el.roomName.textContent = shown;
    el.app.dataset.room = shown;
    if (document.activeElement !== el.room) el.room.value = shown;
    document.title = `${shown} · Switchyard chat`;
    el.message.placeholder = state.joined ? `Message ${shown}` : 'Join the room to talk';
  }

  function switchRoom(room, push) {
    if (room === state.room && state.joined) return;
    const wasJoined = state.joined;
    state.room = room;
    if (push) history.pushState({ room }, '', base + encodeURIComponent(room));
    clearRoomView();
    // Until the new room's welcome, nothing typed may go to the old room.
    setJoined(false);
    if (!state.wantNick) return;
    if (wasJoined && isOpen() && canJoinHere()) sendJoin(false);
    else reconnectNow();
  }

  /**
   * A join names its room, except the default room, which only a socket opened on the default
   * address (/chat/) can ask for.
   */
  function canJoinHere() {
    return state.room !== '' || state.wsRoom === '';
  }

  function clearRoomView() {
    el.messages.replaceChildren();
    state.seen.clear();
    state.maxSeq = 0;
    state.welcomedRoom = '';
    setMembers([]);
  }

  // ---------------------------------------------------------------- connection

  function isOpen() {
    return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
  }

  function wsUrl() {
    const url = new URL(base + encodeURIComponent(state.room), location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.hash = '';
    url.search = '';
    return url.href;
  }

  function connect() {
    clearTimeout(state.timer);
    state.timer = 0;
    setStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.wsRoom = state.room;
    ws.addEventListener('open', () => {
      if (ws !== state.ws) return;
      setStatus('open');
      if (state.wantNick) sendJoin(state.wantNick === state.nick);
      else state.attempt = 0;
    });
    ws.addEventListener('message', (event) => {
      if (ws !== state.ws || typeof event.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg && typeof msg === 'object') handle(msg);
    });
    ws.addEventListener('close', (event) => {
      if (ws !== state.ws) return;
      state.ws = null;
      const wasJoined = state.joined;
      setJoined(false);
      if (wasJoined) {
        const why = event.code === 1001 ? 'the server is restarting or going away' : closeReason(event);
        notice(`Connection lost (${why}); reconnecting…`, 'system');
      }
      scheduleReconnect();
    });
  }

  function closeReason(event) {
    switch (event.code) {
      case 1006: return 'network error';
      case 1008: return event.reason || 'refused by policy';
      case 1009: return 'message too large';
      case 1011: return 'server error';
      case 1013: return 'too slow to keep up';
      default: return event.reason || `code ${event.code}`;
    }
  }

  /** Exponential backoff with jitter, so many pages dropped at once do not all return at once. */
  function backoffDelay() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    state.attempt = Math.min(state.attempt + 1, 16);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  function scheduleReconnect() {
    clearTimeout(state.timer);
    const delay = backoffDelay();
    setStatus('reconnecting', delay);
    state.timer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    const old = state.ws;
    state.ws = null;
    if (old) old.close(1000, 'reconnecting');
    if (state.joined) setJoined(false);
    state.attempt = 0;
    connect();
  }

  function send(obj) {
    if (!isOpen()) return false;
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  function request(kind, obj, extra = {}) {
    const id = `${kind}-${state.nextId++}`;
    state.pending.set(id, { kind, ...extra });
    if (state.pending.size > MAX_PENDING) state.pending.delete(state.pending.keys().next().value);
    return send({ ...obj, id }) ? id : null;
  }

  /** `auto`: a rejoin under the nick we already had, not a fresh choice by the user. */
  function sendJoin(auto) {
    const msg = { type: 'join', nick: state.wantNick };
    if (state.room) msg.room = state.room;
    request('join', msg, { nick: state.wantNick, auto, room: state.room });
  }

  // ---------------------------------------------------------------- server events

  function handle(msg) {
    switch (msg.type) {
      case 'welcome': return onWelcome(msg);
      case 'message': return onMessage(msg);
      case 'join': return onJoin(msg);
      case 'leave': return onLeave(msg);
      case 'nick': return onNick(msg);
      case 'presence': return setMembers(msg.members);
      case 'notice': return notice(String(msg.text ?? ''), 'server');
      case 'error': return onError(msg);
      default: return undefined;
    }
  }

  function onWelcome(msg) {
    const rejoin = state.joined === false && state.wantNick === state.nick && msg.room === state.welcomedRoom;
    if (msg.room !== state.welcomedRoom) {
      el.messages.replaceChildren();
      state.seen.clear();
      state.maxSeq = 0;
    } else if (typeof msg.seq === 'number' && msg.seq < state.maxSeq) {
      // The room's counter went backwards: a fresh server or store. Seqs we saw name other
      // messages now, so forget them rather than hide new messages as duplicates.
      state.seen.clear();
      state.maxSeq = 0;
      notice('The server was restarted; the room starts afresh.', 'system');
    }
    state.welcomedRoom = msg.room;
    // The default room ('') stays unnamed so the address stays /chat/ and a reconnect asks for
    // the default again.
    if (state.room && state.room !== msg.room) state.room = msg.room;
    state.nick = msg.nick;
    state.wantNick = msg.nick;
    state.attempt = 0;
    state.takenRetries = 0;
    saveNick(msg.nick);
    setJoined(true);
    showRoom();
    setMembers(Array.isArray(msg.members) ? msg.members : []);
    const history = Array.isArray(msg.history) ? msg.history : [];
    for (const m of history) onMessage(m);
    if (typeof msg.seq === 'number') state.maxSeq = Math.max(state.maxSeq, msg.seq);
    clearFieldError(el.nickError);
    clearFieldError(el.roomError);
    notice(rejoin ? `Reconnected: back in ${msg.room} as ${msg.nick}.` : `You joined ${msg.room} as ${msg.nick}.`, 'self');
    if (!rejoin) el.message.focus();
  }

  function onMessage(m) {
    if (typeof m.seq !== 'number' || state.seen.has(m.seq)) return;
    state.seen.add(m.seq);
    if (state.seen.size > MAX_SEEN) state.seen.delete(state.seen.values().next().value);
    state.maxSeq = Math.max(state.maxSeq, m.seq);
    const nick = String(m.nick ?? '');
    const li = document.createElement('li');
    li.className = nick === state.nick ? 'msg mine' : 'msg';
    li.dataset.seq = String(m.seq);
    li.dataset.nick = nick;
    li.style.setProperty('--hue', String(hue(nick)));

    const time = document.createElement('time');
    const when = new Date(typeof m.ts === 'number' ? m.ts : Date.now());
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    time.textContent = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

    const who = document.createElement('span');
    who.className = 'nick';
    who.textContent = nick;

    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = String(m.text ?? '');

    li.append(time, who, text);
    append(li, nick === state.nick);
  }

  function onJoin(m) {
    if (typeof m.seq === 'number') state.maxSeq = Math.max(state.maxSeq, m.seq);
    const nick = String(m.nick ?? '');
    state.members.add(nick);
    renderMembers();
    // Our own join is announced by the welcome.
    if (nick !== state.wantNick && nick !== state.nick) notice(`${nick} joined ${m.room}`, 'join');
  }

  function onLeave(m) {
    if (typeof m.seq === 'number') state.maxSeq = Math.max(state.maxSeq, m.seq);
    const nick = String(m.nick ?? '');
    state.members.delete(nick);
    renderMembers();
    const reason = m.reason && m.reason !== 'left' ? ` (${m.reason})` : '';
    if (nick === state.nick && state.joined) {
      setJoined(false);
      state.wantNick = '';
      notice(`You left ${m.room}${reason}.`, 'leave');
      return;
    }
    notice(`${nick} left ${m.room}${reason}`, 'leave');
  }

  function onNick(m) {
    if (typeof m.seq === 'number') state.maxSeq = Math.max(state.maxSeq, m.seq);
    const from = String(m.from ?? '');
    const to = String(m.nick ?? '');
    state.members.delete(from);
    state.members.add(to);
    if (from === state.nick) {
      state.nick = to;
      state.wantNick = to;
      saveNick(to);
      el.nick.value = to;
      notice(`You are now ${to}.`, 'nick');
    } else {
      notice(`${from} is now ${to}`, 'nick');
    }
    renderMembers();
  }

  function onError(msg) {
    const req = typeof msg.id === 'string' ? state.pending.get(msg.id) : undefined;
    if (req) state.pending.delete(msg.id);
    const code = String(msg.code ?? 'ERROR');
    const text = String(msg.message ?? code);

    if (code === 'NICK_TAKEN' && req?.kind === 'join' && req.auto && state.takenRetries < MAX_TAKEN_RETRIES) {
      state.takenRetries++;
      setTimeout(() => {
        if (!state.joined && isOpen() && state.wantNick === req.nick) sendJoin(true);
      }, backoffDelay());
      return;
    }

    notice(`${code}: ${text}`, 'error');
    switch (code) {
      case 'NICK_TAKEN':
      case 'BAD_NICK':
        if (req?.kind === 'join') {
          // A refused join leaves us out of the room; only a refused nick change keeps us in.
          state.wantNick = '';
          setJoined(false);
        }
        showFieldError(el.nickError, code === 'NICK_TAKEN'
          ? `The nick "${req?.nick ?? el.nick.value}" is taken in this room; pick another.`
          : `The server refused that nick: ${text}`, code);
        el.nick.focus();
        el.nick.select();
        break;
      case 'BAD_ROOM':
        showFieldError(el.roomError, `That room name was refused: ${text}`, code);
        el.room.focus();
        break;
      case 'NOT_JOINED':
        setJoined(false);
        showFieldError(el.nickError, 'You are not in the room; join again.', code);
        break;
      case 'TOO_LONG':
        showFieldError(el.sendError, `Too long for this room: ${text}`, code);
        // Give the words back so they can be shortened rather than retyped.
        if (req?.kind === 'message' && el.message.value === '') el.message.value = req.text;
        el.message.focus();
        break;
      default:
        if (req?.kind === 'message') showFieldError(el.sendError, `${code}: ${text}`, code);
        break;
    }
  }

  // ---------------------------------------------------------------- rendering

  function nearBottom() {
    const box = el.messages;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  }

  function append(li, forceScroll) {
    const stick = forceScroll || nearBottom();
    el.messages.append(li);
    while (el.messages.childElementCount > MAX_ITEMS) el.messages.firstElementChild.remove();
    if (stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function notice(text, kind) {
    const li = document.createElement('li');
    li.className = kind === 'error' ? 'notice error' : 'notice';
    li.dataset.kind = kind;
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    li.append(time, body);
    append(li, false);
  }

  function setMembers(list) {
    state.members = new Set(Array.isArray(list) ? list.map(String) : []);
    renderMembers();
  }

  function renderMembers() {
    const items = [...state.members].sort().map((nick) => {
      const li = document.createElement('li');
      li.dataset.nick = nick;
      li.style.setProperty('--hue', String(hue(nick)));
      li.textContent = nick;
      if (state.joined && nick === state.nick) {
        li.className = 'me';
        const you = document.createElement('span');
        you.className = 'you';
        you.textContent = ' (you)';
        li.append(you);
      }
      return li;
    });
    el.members.replaceChildren(...items);
    el.memberCount.textContent = String(items.length);
  }

  function setStatus(kind, delayMs) {
    el.status.dataset.state = kind;
    switch (kind) {
      case 'connecting':
        el.status.textContent = 'Connecting…';
        break;
      case 'open':
        el.status.textContent = state.joined ? `Connected as ${state.nick}` : 'Connected';
        break;
      case 'reconnecting':
        el.status.textContent = `Offline; retrying in ${Math.max(1, Math.round((delayMs ?? 0) / 1000))} s`;
        break;
      default:
        el.status.textContent = kind;
    }
  }

  function setJoined(joined) {
    state.joined = joined;
    el.app.dataset.joined = String(joined);
    el.app.dataset.nick = joined ? state.nick : '';
    el.join.textContent = joined ? 'Change nick' : 'Join';
    el.message.disabled = !joined;
    el.send.disabled = !joined;
    if (!joined) renderMembers();
    showRoom();
    if (isOpen()) setStatus('open');
  }

  function showFieldError(node, text, code) {
    node.textContent = text;
    node.dataset.code = code;
    node.hidden = false;
  }

  function clearFieldError(node) {
    node.textContent = '';
    delete node.dataset.code;
    node.hidden = true;
  }

  /** A stable colour per nick, so a busy room is easier to follow. */
  function hue(nick) {
    let h = 0;
    for (let i = 0; i < nick.length; i++) h = (h * 31 + nick.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function loadNick() {
    try {
      return localStorage.getItem(NICK_KEY) ?? '';
    } catch {
      return ''; // storage blocked: just start empty
    }
  }

  function saveNick(nick) {
    try {
      localStorage.setItem(NICK_KEY, nick);
    } catch {
      // storage blocked: the nick is simply not remembered
    }
  }

  // ---------------------------------------------------------------- user actions

  el.nickForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const nick = el.nick.value.trim();
    if (!NICK_RE.test(nick)) {
      showFieldError(el.nickError, 'A nick is 1 to 32 letters, digits, _ . or -, starting with a letter or digit.', 'BAD_NICK');
      el.nick.focus();
      return;
    }
    clearFieldError(el.nickError);
    if (state.joined) {
      if (nick !== state.nick) request('nick', { type: 'nick', nick }, { nick });
      return;
    }
    state.wantNick = nick;
    state.takenRetries = 0;
    // Otherwise the join goes out as soon as the socket (connecting now, or right away) opens.
    if (isOpen() && canJoinHere()) sendJoin(false);
    else if (!state.ws || !canJoinHere()) reconnectNow();
  });

  el.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = el.message.value;
    if (text.trim() === '' || !state.joined) return;
    clearFieldError(el.sendError);
    if (request('message', { type: 'message', text }, { text }) === null) {
      showFieldError(el.sendError, 'Not connected; your message was kept.', 'OFFLINE');
      return;
    }
    el.message.value = '';
  });

  el.roomForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = el.room.value.trim();
    if (!ROOM_RE.test(room)) {
      showFieldError(el.roomError, 'A room name is 1 to 64 letters, digits, _ . or -, starting with a letter or digit.', 'BAD_ROOM');
      return;
    }
    clearFieldError(el.roomError);
    switchRoom(room, true);
  });

  window.addEventListener('popstate', () => {
    const room = roomFromPath();
    switchRoom(room ?? '', false);
  });

  // Back online: try now instead of sitting out the rest of the backoff.
  window.addEventListener('online', () => {
    if (!state.ws) reconnectNow();
  });

  // ---------------------------------------------------------------- start

  const initial = roomFromPath();
  if (initial === null) {
    showFieldError(el.roomError, 'The address names no valid room; showing the default room.', 'BAD_ROOM');
  }
  state.room = initial ?? '';
  el.nick.value = loadNick();
  setJoined(false);
  showRoom();
  connect();
  (el.nick.value ? el.join : el.nick).focus();
})();
