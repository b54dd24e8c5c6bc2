// roomcast page script: no framework, no build step.
// Everything a user typed is put on the page with textContent, never innerHTML.
(() => {
  'use strict';

  const $ = (selector) => document.querySelector(selector);

  // Home: Enter joins when a code is typed, and creates a room when not,
  // whichever button comes first.
  const homeForm = $('#home-form');
  if (homeForm) {
    homeForm.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' || e.target.tagName !== 'INPUT') return;
      e.preventDefault();
      const action = $('#code').value.trim() ? 'join' : 'create';
      homeForm.querySelector(`button[value="${action}"]`).click();
    });
    return;
  }

  const room = $('#room');
  if (!room) return;

  const code = room.dataset.room;
  const me = room.dataset.me;
  // How each kind of event other than a message reads ("joined"), from
  // the server's one rule; a kind this page does not know is not shown.
  const notices = JSON.parse(room.dataset.notices || '{}');
  let lastId = Number(room.dataset.lastId) || 0;
  const log = $('#log');
  const scroller = $('.messages');
  const status = $('#status');
  const form = $('#compose');
  const box = $('#text');
  const sendError = $('#send-error');
  const baseTitle = document.title;
  let unread = 0;

  // ---- time and grouping -------------------------------------------------
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
  const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
  const GROUP_MS = 5 * 60 * 1000;

  function localTime(el) {
    const when = new Date(el.getAttribute('datetime'));
    if (Number.isNaN(when.getTime())) return;
    el.textContent = timeFormat.format(when);
    el.title = fullFormat.format(when);
  }

  let previous = null; // {kind, name, when} of the last rendered event
  function dayOf(date) { return date.toDateString(); }

  function decorate(li, ev) {
    const when = new Date(ev.ts);
    if (!previous || dayOf(previous.when) !== dayOf(when)) {
      const day = document.createElement('li');
      day.className = 'day';
      day.textContent = dayFormat.format(when);
      li.before(day);
    } else if (ev.kind === 'message' && previous.kind === 'message' &&
               previous.name === ev.name && when - previous.when < GROUP_MS) {
      li.classList.add('grouped');
    }
    previous = { kind: ev.kind, name: ev.name, when };
  }

  // Server-rendered history: local times, day separators, grouping.
  for (const li of log.querySelectorAll('li.event')) {
    const time = li.querySelector('time');
    localTime(time);
    const nameEl = li.querySelector('.who');
    const kind = li.classList.contains('message') ? 'message' : 'notice';
    decorate(li, { kind, name: nameEl ? nameEl.textContent : '', ts: time.getAttribute('datetime') });
  }

  // ---- rendering ---------------------------------------------------------
  const LINK = /\bhttps?:\/\/[^\s<>"']+/g;

  function appendText(parent, text) {
    let at = 0;
    for (const match of text.matchAll(LINK)) {
      parent.append(text.slice(at, match.index));
      const a = document.createElement('a');
      a.href = match[0];
      a.textContent = match[0];
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      parent.append(a);
      at = match.index + match[0].length;
    }
    parent.append(text.slice(at));
  }

  function timeElement(ts) {
    const t = document.createElement('time');
    t.setAttribute('datetime', ts);
    localTime(t);
    return t;
  }

  function eventItem(ev) {
    const li = document.createElement('li');
    li.className = `event ${ev.kind}`;
    li.dataset.id = ev.id;
    if (ev.kind === 'message') {
      if (ev.name === me) li.classList.add('mine');
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = ev.name;
      const text = document.createElement('p');
      text.className = 'text';
      appendText(text, ev.text);
      li.append(who, ' ', timeElement(ev.ts), text);
    } else if (Object.hasOwn(notices, ev.kind)) {
      const p = document.createElement('p');
      p.className = 'notice';
      p.append(`${ev.name} ${notices[ev.kind]} · `, timeElement(ev.ts));
      li.append(p);
    } else {
      return null;
    }
    return li;
  }

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  }

  let jump = null;
  function showJump() {
    if (jump) return;
    jump = document.createElement('button');
    jump.type = 'button';
    jump.className = 'jump small primary';
    jump.textContent = 'New messages ↓';
    jump.addEventListener('click', () => { scroller.scrollTop = scroller.scrollHeight; });
    scroller.append(jump);
  }
  scroller.addEventListener('scroll', () => {
    if (jump && atBottom()) { jump.remove(); jump = null; }
  });

  function show(ev) {
    if (ev.id <= lastId) return; // already shown (resume overlaps)
    lastId = ev.id;
    const stick = atBottom();
    const li = eventItem(ev);
    if (!li) return;
    log.append(li);
    decorate(li, ev);
    if (stick) scroller.scrollTop = scroller.scrollHeight;
    else if (ev.kind === 'message') showJump();
    if (document.hidden && ev.kind === 'message') {
      unread += 1;
      document.title = `(${unread}) ${baseTitle}`;
    }
  }

  function notice(text) {
    const li = document.createElement('li');
    li.className = 'event notice-gap';
    const p = document.createElement('p');
    p.className = 'notice';
    p.textContent = text;
    li.append(p);
    log.append(li);
  }

  function showMembers({ members, watchers = [] }) {
    const list = $('#members');
    list.replaceChildren(...members.map((name) => {
      const li = document.createElement('li');
      li.textContent = name;
      return li;
    }));
    $('#member-count').textContent = String(members.length);
    $('#watcher-names').textContent = watchers.join(', ');
    $('#watchers').hidden = watchers.length === 0;
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { unread = 0; document.title = baseTitle; }
  });
  scroller.scrollTop = scroller.scrollHeight;

  // ---- the stream ----------------------------------------------------------
  // A server restart or a proxy 502 closes an EventSource for good, so the
  // page makes a new one itself, with backoff, resuming from the last id.
  const STATES = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };
  function setState(state) {
    status.dataset.state = state;
    status.textContent = STATES[state];
  }

  let source = null;
  let retryMs = 500;
  let retryTimer = null;

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    // The session cookie says who this is; the server keeps it across
    // restarts, so a reconnect is always the same participant.
    source = new EventSource(`/rooms/${encodeURIComponent(code)}/events?since=${lastId}`);
    source.addEventListener('open', () => { retryMs = 500; setState('live'); });
    for (const kind of ['message', ...Object.keys(notices)]) {
      source.addEventListener(kind, (e) => show(JSON.parse(e.data)));
    }
    source.addEventListener('members', (e) => showMembers(JSON.parse(e.data)));
    source.addEventListener('gap', (e) => {
      const gap = JSON.parse(e.data);
      notice(`Messages ${gap.from}–${gap.to} are no longer kept and could not be shown.`);
    });
    source.addEventListener('error', async () => {
      source.close();
      source = null;
      setState(navigator.onLine === false ? 'offline' : 'reconnecting');
      if (!(await stillIn())) return;
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    });
  }

  // An EventSource does not say why it failed. A stream refused because
  // this browser is no longer in the room (it left in another tab, or the
  // room is gone) would fail forever, so ask once and go home instead.
  async function stillIn() {
    try {
      const response = await fetch(`/rooms/${encodeURIComponent(code)}/messages?limit=0`, {
        headers: { Accept: 'application/json' },
      });
      if (response.status === 401 || response.status === 404) {
        location.assign(`/?code=${encodeURIComponent(code)}`);
        return false;
      }
    } catch { /* offline: keep trying */ }
    return true;
  }
  window.addEventListener('online', connect);
  window.addEventListener('offline', () => setState('offline'));
  connect();

  // ---- sending -------------------------------------------------------------
  function showError(message) {
    sendError.textContent = message;
    sendError.hidden = false;
  }

  async function send() {
    const text = box.value;
    if (!text.trim()) return;
    sendError.hidden = true;
    let response;
    try {
      response = await fetch(`/rooms/${encodeURIComponent(code)}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ text }),
      });
    } catch {
      showError('Not sent: you seem to be offline. Your message is kept; try again.');
      return;
    }
    if (response.status === 401) {
      location.assign(`/?code=${encodeURIComponent(code)}`);
      return;
    }
    if (response.status === 201) {
      // Clear only if nothing new was typed while sending.
      if (box.value === text) box.value = '';
      return;
    }
    let reason = `Not sent (${response.status}).`;
    try {
      const body = await response.json();
      if (body.error) reason = `Not sent: ${body.error}`;
    } catch { /* not JSON: keep the status line */ }
    showError(reason);
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });

  // ---- invite ----------------------------------------------------------------
  const invite = $('#invite');
  // The server writes the invite (a private room's carries its key)
  // whole when it was told the site's address, else as a path: the page
  // makes that whole from where the browser is.
  const inviteUrl = invite.href; // resolved against the page's address
  invite.textContent = inviteUrl;
  const copy = $('#copy-invite');
  if (navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(inviteUrl);
        copy.textContent = 'Copied';
      } catch {
        copy.textContent = 'Copy failed';
      }
      setTimeout(() => { copy.textContent = 'Copy'; }, 2000);
    });
  }
})();
