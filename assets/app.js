// roomcast page script: no framework, no build step.
// Everything a user typed is put on the page with textContent, never innerHTML.
(() => {
  'use strict';

  const $ = (selector) => document.querySelector(selector);

  // ---- the shared stream ---------------------------------------------------
  // Every tab of this browser shares one stream (assets/hub.js): in a
  // SharedWorker, else in one tab elected with the Web Locks API that
  // relays over a BroadcastChannel, else each tab has its own. The
  // override in localStorage ('worker', 'locks', 'alone') is for tests and
  // for trying each way by hand.
  function openLink(onMessage) {
    const id = (crypto.randomUUID && crypto.randomUUID()) || `${Date.now()}-${Math.random()}`;
    let wanted = () => ({ rooms: {}, kinds: [] });
    let toHub = null;
    // Held for this tab's life: the hub learns the tab is gone when it can
    // take it. Nothing is sent before it is held.
    const held = navigator.locks
      ? new Promise((ready) => navigator.locks.request(`roomcast-tab-${id}`, () => {
        ready();
        return new Promise(() => {});
      }))
      : Promise.resolve();
    function hello() {
      if (!toHub) return;
      const { rooms, kinds } = wanted();
      toHub({ type: 'hello', id });
      toHub({ type: 'follow', id, rooms, kinds });
    }
    const Hub = window.RoomcastHub;
    let mode = localStorage.getItem('roomcast-share');
    if (!Hub) mode = 'worker';
    else if (!['worker', 'locks', 'alone'].includes(mode)) {
      if (typeof SharedWorker === 'function') mode = 'worker';
      else if (navigator.locks && typeof BroadcastChannel === 'function') mode = 'locks';
      else mode = 'alone';
    }

    function viaWorker() {
      const worker = new SharedWorker('/assets/hub.js', { name: 'roomcast' });
      let watching = false;
      worker.port.addEventListener('message', (e) => {
        // The worker holds a lock for its life: granted here, it died, and
        // a new one is started (every tab asks for the same one).
        if (!watching && navigator.locks) {
          watching = true;
          navigator.locks.request('roomcast-worker', () => { held.then(viaWorker); });
        }
        onMessage(e.data);
      });
      worker.port.start();
      toHub = (message) => worker.port.postMessage(message);
      held.then(hello);
    }

    function viaLocks() {
      const channel = new BroadcastChannel('roomcast');
      let hub = null; // while this tab leads
      const mine = (message) => onMessage(message);
      channel.addEventListener('message', (e) => {
        const message = e.data;
        if (message.to === 'hub') {
          if (hub) Hub.handle(hub, message, (out) => channel.postMessage({ ...out, to: message.id }));
        } else if (message.type === 'hub-ready') {
          held.then(hello); // a new leader: tell it what this tab needs
        } else if (message.to === id) {
          onMessage(message);
        }
      });
      toHub = (message) => {
        if (hub) Hub.handle(hub, message, mine);
        else channel.postMessage({ ...message, to: 'hub' });
      };
      navigator.locks.request('roomcast-hub', () => {
        hub = new Hub.Hub();
        document.documentElement.dataset.hub = 'leads'; // for a look in devtools
        held.then(() => {
          hello();
          channel.postMessage({ type: 'hub-ready' });
        });
        return new Promise(() => {}); // led until the tab goes
      });
      held.then(hello);
    }

    function alone() {
      const hub = new Hub.Hub();
      toHub = (message) => Hub.handle(hub, message, onMessage);
      hello();
      // The page's own stream goes with it at once: a page kept for Back
      // (the back/forward cache) is frozen, timers and all, and would
      // hold its connection open until evicted.
      window.addEventListener('pagehide', () => hub.stop());
    }

    try {
      if (mode === 'worker') viaWorker();
      else if (mode === 'locks') viaLocks();
      else alone();
    } catch {
      if (!Hub) throw new Error('no way to share the stream');
      alone(); // a SharedWorker refused (some private modes)
    }
    window.addEventListener('pagehide', () => { if (toHub) toHub({ type: 'bye', id }); });
    // Back to a page from the back/forward cache: it said bye on the way
    // out, so it asks for its rooms again (from what it has shown).
    window.addEventListener('pageshow', (e) => { if (e.persisted) held.then(hello); });
    return {
      // `get` says what this tab needs now ({ rooms: {code: since}, kinds }):
      // asked again whenever a new hub takes over.
      follow(get) {
        wanted = get;
        held.then(() => {
          if (!toHub) return;
          const { rooms, kinds } = wanted();
          toHub({ type: 'follow', id, rooms, kinds });
        });
      },
      // Opens the stream again now, if it is down.
      retry() {
        if (toHub) toHub({ type: 'retry', id });
      },
    };
  }

  // ---- your rooms, with unread counts -----------------------------------------
  // The newest id seen of each room with its page in view, kept per
  // browser: what came after it in the other rooms is unread.
  const seenKey = (c) => `roomcast-seen:${c}`;
  const seenIn = (c) => Number(localStorage.getItem(seenKey(c))) || 0;

  function yourRooms() {
    const rooms = new Map();
    for (const li of document.querySelectorAll('.your-rooms li[data-room]')) {
      rooms.set(li.dataset.room, {
        li,
        me: li.dataset.me,
        since: Number(li.dataset.lastId) || 0,
        badge: li.querySelector('.unread'),
        unread: new Set(),
        more: false,
      });
    }
    function render(entry) {
      const n = entry.unread.size;
      entry.badge.hidden = n === 0;
      entry.badge.textContent = `${n}${entry.more ? '+' : ''}`;
      entry.badge.title = `${n} unread`;
    }
    function count(entry, ev) {
      if (ev.kind !== 'message' || ev.name === entry.me || ev.id <= seenIn(ev.room)) return;
      entry.unread.add(ev.id);
      render(entry);
    }
    // What came while no page of the room was in view, before this page.
    for (const [c, entry] of rooms) {
      const seen = seenIn(c);
      if (!seen || seen >= entry.since) continue;
      fetch(`/rooms/${c}/messages?since=${seen}&limit=100`, { headers: { Accept: 'application/json' } })
        .then((r) => (r.ok ? r.json() : []))
        .then((events) => {
          entry.more = events.length === 100;
          for (const ev of events) count(entry, ev);
        })
        .catch(() => {});
    }
    window.addEventListener('storage', (e) => {
      const c = e.key && e.key.startsWith('roomcast-seen:') && e.key.slice(14);
      const entry = c && rooms.get(c);
      if (!entry) return;
      const seen = seenIn(c);
      for (const id of entry.unread) if (id <= seen) entry.unread.delete(id);
      if (entry.unread.size === 0) entry.more = false;
      render(entry);
    });
    return {
      // {code: since} for the stream: from what the page was rendered with.
      wanted() {
        const out = {};
        for (const [c, entry] of rooms) out[c] = entry.since;
        return out;
      },
      has: (c) => rooms.has(c),
      frame(message) {
        const entry = rooms.get(message.room);
        if (!entry || message.kind === 'members' || message.kind === 'gap') return;
        const ev = JSON.parse(message.data);
        if (typeof ev.id !== 'number') return; // not history (typing)
        entry.since = Math.max(entry.since, ev.id);
        count(entry, ev);
      },
      gone(c) {
        const entry = rooms.get(c);
        if (entry) { entry.li.remove(); rooms.delete(c); }
      },
    };
  }

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
    // After "no such room" the code has focus: selected, to type anew.
    const code = $('#code');
    if (code.getAttribute('aria-invalid') === 'true') code.select();
    const listed = yourRooms();
    const link = openLink((message) => {
      if (message.type === 'frame') listed.frame(message);
      else if (message.type === 'gone') listed.gone(message.room);
    });
    link.follow(() => ({ rooms: listed.wanted(), kinds: ['message'] }));
    return;
  }

  const room = $('#room');
  if (!room) return;
  // A page of older events or of a search's hits is read as it came, by
  // its links (as without script); only the newest is followed live.
  if (room.dataset.view !== 'live') return;
  // Scrolling up loads older events here: no link needed.
  const olderLink = $('#older-link');
  if (olderLink) olderLink.parentElement.remove();

  const code = room.dataset.room;
  const me = room.dataset.me;
  // How each kind of event other than a message reads ("joined"), from
  // the server's one rule; a kind this page does not know is not shown.
  const notices = JSON.parse(room.dataset.notices || '{}');
  let lastId = Number(room.dataset.lastId) || 0;
  const log = $('#log');
  const scroller = $('.messages');
  const status = $('#status');
  const statusText = $('#status-text');
  const retryNow = $('#retry-now');
  const form = $('#compose');
  const box = $('#text');
  const sendError = $('#send-error');
  const baseTitle = document.title;
  let unread = 0;

  // ---- time and grouping -------------------------------------------------
  // "4:13 PM", as a clock reads: no leading zero on the hour.
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
  const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
  const GROUP_MS = 5 * 60 * 1000;

  function localTime(el) {
    if (!el) return;
    const when = new Date(el.getAttribute('datetime'));
    if (Number.isNaN(when.getTime())) return;
    el.textContent = timeFormat.format(when);
    el.title = fullFormat.format(when);
  }

  let previous = null; // {kind, name, when} of the last rendered event
  function dayOf(date) { return date.toDateString(); }

  // Decorates `li` (placed already) as the event after `prev`: a day
  // separator before it, or grouped under it; returns what it now is.
  function decorateAfter(prev, li, ev) {
    const when = new Date(ev.ts);
    if (!prev || dayOf(prev.when) !== dayOf(when)) {
      const day = document.createElement('li');
      day.className = 'day';
      day.textContent = dayFormat.format(when);
      li.before(day);
    } else if (ev.kind === 'message' && prev.kind === 'message' &&
               prev.name === ev.name && when - prev.when < GROUP_MS) {
      li.classList.add('grouped');
    }
    return { kind: ev.kind, name: ev.name, when };
  }

  function decorate(li, ev) {
    previous = decorateAfter(previous, li, ev);
  }

  // What decorating needs of an event already on the page.
  function eventOf(li) {
    const who = li.querySelector('.who');
    return {
      kind: li.classList.contains('message') ? 'message' : 'notice',
      name: who ? who.textContent : '',
      ts: li.querySelector('time').getAttribute('datetime'),
    };
  }

  // ---- mentions ------------------------------------------------------------
  // `@name` of someone in the room (any case) is marked; a message that
  // mentions the reader is marked as a whole.
  let memberNames = [...document.querySelectorAll('#members .name')].map((e) => e.textContent);
  const WORD = /[\p{L}\p{N}_]/u;
  const same = (a, b) => a.toLocaleLowerCase() === b.toLocaleLowerCase();

  // The name mentioned at `text[at]` (an `@`), if any: the longest that
  // fits, not run on into a word (`@alice` is not `@al`).
  function mentionAt(text, at, names) {
    if (at > 0 && WORD.test(text[at - 1])) return null; // an address: a@b
    return names.find((name) => same(text.slice(at + 1, at + 1 + name.length), name) &&
      !WORD.test(text[at + 1 + name.length] || '')) || null;
  }

  // Marks the mentions in `li`'s text; whether one is of the reader.
  function markMentions(li) {
    const p = li.querySelector('.text');
    if (!p) return false;
    const names = [...memberNames].sort((a, b) => b.length - a.length);
    let ofMe = false;
    const walker = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
    const runs = [];
    while (walker.nextNode()) if (!walker.currentNode.parentElement.closest('a, .mention')) runs.push(walker.currentNode);
    for (const run of runs) {
      const text = run.data;
      const parts = [];
      let from = 0;
      for (let at = text.indexOf('@'); at !== -1; at = text.indexOf('@', at + 1)) {
        const name = at >= from && mentionAt(text, at, names);
        if (!name) continue;
        const mark = document.createElement('span');
        mark.className = 'mention';
        mark.textContent = text.slice(at, at + 1 + name.length);
        if (same(name, me)) {
          mark.classList.add('me');
          ofMe = true;
        }
        parts.push(text.slice(from, at), mark);
        from = at + 1 + name.length;
      }
      if (parts.length) run.replaceWith(...parts, text.slice(from));
    }
    const mentionsMe = ofMe && !li.classList.contains('mine');
    li.classList.toggle('mentions-me', mentionsMe);
    return mentionsMe;
  }

  // Server-rendered history: local times, day separators, grouping, and
  // mentions (the page script marks them, in history as live).
  for (const li of log.querySelectorAll('li.event')) {
    localTime(li.querySelector('time'));
    decorate(li, eventOf(li));
    markMentions(li);
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
    if (ev.kind === 'message' && ev.deleted) {
      const p = document.createElement('p');
      p.append('message deleted ', timeElement(ev.ts));
      showDeleted(li, p);
    } else if (ev.kind === 'message') {
      // Whose it is, by name: a name is one participant's while they are
      // in the room (the server decides by who sent it, on every change).
      const mine = ev.name === me;
      if (mine) li.classList.add('mine');
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = ev.name;
      const text = document.createElement('p');
      text.className = 'text';
      appendText(text, ev.text);
      const reactions = document.createElement('div');
      reactions.className = 'reactions';
      li.append(who, ' ', timeElement(ev.ts), text, reactions, toolsFor(ev.id, mine, ev.text));
      if (ev.edited) showEdited(li, ev.edited);
      showReactions(li, ev.id, ev.reactions || []);
      markMentions(li);
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

  // ---- changing a message ------------------------------------------------
  // Each message's actions are the server's <details> (from the page's
  // template): the reactions for anyone, edit and delete on one's own.
  // Their forms work without script; with it they are sent as PATCH,
  // DELETE and POST, and what changed comes back on the stream, as it
  // does to everyone else.
  const toolsTemplate = $('#message-tools');
  const messagePath = (id) => `/rooms/${encodeURIComponent(code)}/messages/${id}`;

  function toolsFor(id, mine, text) {
    const tools = toolsTemplate.content.firstElementChild.cloneNode(true);
    tools.querySelector('form.react').action = `${messagePath(id)}/reactions`;
    const edit = tools.querySelector('form.edit');
    const del = tools.querySelector('form.delete');
    if (mine) {
      edit.action = `${messagePath(id)}/edit`;
      del.action = `${messagePath(id)}/delete`;
      const field = edit.querySelector('textarea');
      field.id = `edit${id}`;
      field.value = text;
      edit.querySelector('label').htmlFor = field.id;
    } else {
      edit.remove();
      del.remove();
      tools.querySelector('summary').title = 'React';
    }
    return tools;
  }

  function showEdited(li, ts) {
    let mark = li.querySelector('.edited');
    if (!mark) {
      mark = document.createElement('span');
      mark.className = 'edited';
      mark.textContent = '(edited)';
      li.querySelector('time').after(' ', mark);
    }
    const when = new Date(ts);
    mark.title = Number.isNaN(when.getTime()) ? 'edited' : `edited ${fullFormat.format(when)}`;
  }

  // A deleted message keeps only its place and time: `p` says so.
  function showDeleted(li, p) {
    p.className = 'gone';
    li.replaceChildren(p);
    li.classList.remove('mine', 'mentions-me');
    li.classList.add('deleted');
  }

  // [{emoji, names}] of a message on the page, from its buttons.
  function reactionsOf(li) {
    return [...li.querySelectorAll('.reactions button.reaction')].map((button) => ({
      emoji: button.value,
      names: JSON.parse(button.dataset.names || '[]'),
    }));
  }

  function showReactions(li, id, reactions) {
    const holder = li.querySelector('.reactions');
    if (!holder) return;
    holder.replaceChildren(...reactions.filter((r) => r.names.length).map(({ emoji, names }) => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = `${messagePath(id)}/reactions`;
      const button = document.createElement('button');
      button.className = 'reaction';
      button.name = 'emoji';
      button.value = emoji;
      button.setAttribute('aria-pressed', String(names.includes(me)));
      button.title = names.join(', ');
      button.dataset.names = JSON.stringify(names);
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = String(names.length);
      button.append(`${emoji} `, count);
      form.append(button);
      return form;
    }));
  }

  // An edit, a delete or a reaction, from the stream: the message it
  // changes, if it is on the page, reads as it now does.
  function applyChange(ev) {
    const li = log.querySelector(`li.message[data-id="${ev.target}"]`);
    if (!li || li.classList.contains('deleted')) return;
    if (ev.kind === 'edit') {
      const text = li.querySelector('.text');
      text.replaceChildren();
      appendText(text, ev.text);
      markMentions(li);
      showEdited(li, ev.ts);
      const field = li.querySelector('form.edit textarea');
      if (field && document.activeElement !== field) field.value = ev.text;
    } else if (ev.kind === 'delete') {
      const p = document.createElement('p');
      p.append('message deleted ', li.querySelector('time'));
      showDeleted(li, p);
    } else if (ev.kind === 'reaction') {
      const reactions = reactionsOf(li);
      let group = reactions.find((r) => r.emoji === ev.emoji);
      if (!group) {
        group = { emoji: ev.emoji, names: [] };
        reactions.push(group);
      }
      group.names = group.names.filter((name) => name !== ev.name);
      if (ev.on) group.names.push(ev.name);
      showReactions(li, ev.target, reactions);
    }
  }

  log.addEventListener('submit', async (e) => {
    const form = e.target;
    const li = form.closest('li.message');
    if (!li) return;
    e.preventDefault();
    const path = messagePath(li.dataset.id);
    let method = 'POST';
    let url = `${path}/reactions`;
    let body = null;
    if (form.classList.contains('edit')) {
      const text = form.querySelector('textarea').value;
      if (!text.trim()) return;
      [method, url, body] = ['PATCH', path, { text }];
    } else if (form.classList.contains('delete')) {
      if (!window.confirm('Delete this message? Nobody will see it again.')) return;
      [method, url] = ['DELETE', path];
    } else {
      const emoji = e.submitter && e.submitter.value;
      if (!emoji) return;
      body = { emoji };
    }
    const headers = { Accept: 'application/json' };
    if (body) headers['Content-Type'] = 'application/json';
    try {
      const response = await fetch(url, { method, headers, body: body && JSON.stringify(body) });
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        showError(`Not changed: ${answer.error || `the server said ${response.status}`}`);
        return;
      }
      sendError.hidden = true;
      const tools = form.closest('details.tools');
      if (tools) tools.open = false;
      if (form.classList.contains('edit')) box.focus();
    } catch {
      showError('Not changed: the server is unreachable.');
    }
  });

  // Enter saves an edit (Shift+Enter is a new line); Escape leaves it.
  log.addEventListener('keydown', (e) => {
    const field = e.target.closest('form.edit textarea');
    if (!field) return;
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      field.form.requestSubmit();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      field.closest('details').open = false;
      box.focus();
    }
  });

  // One message's actions open at a time.
  log.addEventListener('toggle', (e) => {
    if (!e.target.matches('details.tools') || !e.target.open) return;
    for (const other of log.querySelectorAll('details.tools[open]')) if (other !== e.target) other.open = false;
  }, true);

  // A long press opens a message's actions on a touch screen.
  let pressTimer = null;
  log.addEventListener('touchstart', (e) => {
    const li = e.target.closest('li.message:not(.deleted)');
    if (!li || e.target.closest('a, button, summary, textarea')) return;
    pressTimer = setTimeout(() => {
      const tools = li.querySelector('details.tools');
      if (tools) tools.open = true;
    }, 500);
  }, { passive: true });
  for (const end of ['touchend', 'touchmove', 'touchcancel']) {
    log.addEventListener(end, () => clearTimeout(pressTimer), { passive: true });
  }

  // Up in an empty message box edits your last message.
  function editLast() {
    const last = [...log.querySelectorAll('li.message.mine:not(.deleted)')].at(-1);
    const tools = last && last.querySelector('details.tools');
    const field = tools && tools.querySelector('form.edit textarea');
    if (!field) return false;
    tools.open = true;
    field.focus();
    field.setSelectionRange(field.value.length, field.value.length);
    last.scrollIntoView({ block: 'nearest' });
    return true;
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

  // ---- who is typing ------------------------------------------------------
  // Each name shown for 5 s after its last `typing` frame, or until its
  // message arrives; this page says its own typing at most every 2 s (the
  // server passes on no more).
  const TYPING_SHOWN_MS = 5000;
  const TYPING_EVERY_MS = 2000;
  const typingLine = $('#typing');
  const typists = new Map(); // name → timer
  let saidTyping = 0;

  function showTypists() {
    const names = [...typists.keys()];
    let line = '';
    if (names.length === 1) line = `${names[0]} is typing…`;
    else if (names.length === 2) line = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) line = `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
    typingLine.textContent = line;
  }

  function typing(name) {
    clearTimeout(typists.get(name));
    typists.set(name, setTimeout(() => stoppedTyping(name), TYPING_SHOWN_MS));
    showTypists();
  }

  function stoppedTyping(name) {
    if (!typists.has(name)) return;
    clearTimeout(typists.get(name));
    typists.delete(name);
    showTypists();
  }

  function sayTyping() {
    const now = Date.now();
    if (!box.value.trim() || now - saidTyping < TYPING_EVERY_MS) return;
    saidTyping = now;
    // Only a hint: a failure changes nothing.
    fetch(`/rooms/${encodeURIComponent(code)}/typing`, { method: 'POST', credentials: 'same-origin' })
      .catch(() => {});
  }

  const CHANGES = new Set(['edit', 'delete', 'reaction']);
  let mentioned = 0; // of the unread, how many mention the reader

  function showTitle() {
    const count = unread && `(${unread}${mentioned ? ` · @${mentioned}` : ''}) `;
    document.title = `${count || ''}${baseTitle}`;
  }

  function show(ev) {
    if (ev.id <= lastId) return; // already shown (resume overlaps)
    lastId = ev.id;
    if (CHANGES.has(ev.kind)) { applyChange(ev); return; }
    if (ev.kind === 'message') stoppedTyping(ev.name);
    const stick = atBottom();
    const li = eventItem(ev);
    if (!li) return;
    log.append(li);
    decorate(li, ev);
    if (stick) scroller.scrollTop = scroller.scrollHeight;
    else if (ev.kind === 'message') showJump();
    if (ev.kind !== 'message' || ev.name === me || ev.deleted) return;
    const mentionsMe = li.classList.contains('mentions-me');
    if (document.hidden) {
      unread += 1;
      if (mentionsMe) mentioned += 1;
      showTitle();
    }
    notify(ev, mentionsMe);
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

  // Each member is {name, online}: online while any tab or stream of
  // theirs is open in the room, else away (still in it until they leave).
  function showMembers({ members, watchers = [] }) {
    memberNames = members.map(({ name }) => name);
    const list = $('#members');
    list.replaceChildren(...members.map(({ name, online }) => {
      const li = document.createElement('li');
      const state = online ? 'online' : 'away';
      li.className = state;
      li.title = state;
      const dot = document.createElement('span');
      dot.className = 'dot';
      dot.setAttribute('aria-hidden', 'true');
      const who = document.createElement('span');
      who.className = 'name';
      who.textContent = name;
      const said = document.createElement('span');
      said.className = 'visually-hidden';
      said.textContent = ` (${state})`;
      li.append(dot, who, said);
      return li;
    }));
    $('#member-count').textContent = String(members.length);
    $('#watcher-names').textContent = watchers.map(({ name }) => name).join(', ');
    $('#watchers').hidden = watchers.length === 0;
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { unread = 0; mentioned = 0; showTitle(); }
  });

  // ---- desktop notifications ---------------------------------------------------
  // Asked for only when "Notify me" is pressed; then a hidden tab shows one
  // for a message that mentions the reader, or (by choice) for every one.
  // The choice is kept for the browser. Tabs of one room each get the
  // message; a notification's tag (room and id) makes them one.
  const NOTIFY_KEY = 'roomcast-notify';
  const canNotify = typeof Notification === 'function';
  const notifyButton = $('#notify');
  const notifyMode = $('#notify-mode');

  function notifying() {
    if (!canNotify || Notification.permission !== 'granted') return 'off';
    return localStorage.getItem(NOTIFY_KEY) || 'mentions';
  }

  function showNotify() {
    if (!canNotify) return; // no such thing here: the control stays hidden
    const granted = Notification.permission === 'granted';
    $('#notify-control').hidden = false;
    notifyButton.hidden = granted;
    $('#notify-choice').hidden = !granted;
    notifyMode.value = notifying();
    $('#notify-why').textContent = Notification.permission === 'denied'
      ? 'Notifications are blocked for this site in the browser’s settings.' : '';
  }

  notifyButton.addEventListener('click', async () => {
    const answer = await Notification.requestPermission();
    if (answer === 'granted') localStorage.setItem(NOTIFY_KEY, 'mentions');
    showNotify();
  });
  notifyMode.addEventListener('change', () => localStorage.setItem(NOTIFY_KEY, notifyMode.value));
  window.addEventListener('storage', (e) => { if (e.key === NOTIFY_KEY) showNotify(); });
  showNotify();

  function notify(ev, mentionsMe) {
    const mode = notifying();
    if (!document.hidden || mode === 'off' || (mode === 'mentions' && !mentionsMe)) return;
    const title = mentionsMe ? `${ev.name} mentioned you in ${code}` : `${ev.name} in ${code}`;
    try {
      const shown = new Notification(title, { body: ev.text.slice(0, 300), tag: `roomcast-${code}-${ev.id}` });
      shown.addEventListener('click', () => {
        window.focus();
        shown.close();
        jumpTo(ev.id);
      });
    } catch {
      // Where only a service worker may show one (Chrome on Android):
      // the title still counts it.
    }
  }
  scroller.scrollTop = scroller.scrollHeight;

  // ---- older history, as you scroll up -----------------------------------
  // The page opens with the newest events; scrolling near the top loads
  // the ones before, keeping what you were looking at where it was.
  const PAGE = 50;
  let more = true; // there may be events before the oldest held
  let loadingOlder = false;
  // The oldest event this page has, shown or not: a page of changes
  // (reactions, say) shows nothing, yet the next page is before it.
  let oldest = Number(room.dataset.firstId) || null;

  // Puts `events` (oldest first, all older than what is shown) at the top.
  function prepend(events) {
    const shown = new Set([...log.querySelectorAll('li.event[data-id]')].map((li) => li.dataset.id));
    const batch = document.createDocumentFragment();
    let prev = null;
    for (const ev of events) {
      if (shown.has(String(ev.id))) continue;
      const li = eventItem(ev);
      if (!li) continue;
      batch.append(li);
      prev = decorateAfter(prev, li, ev);
    }
    const top = log.querySelector('li.event[data-id]');
    log.prepend(batch);
    if (!prev || !top) return;
    // Where the batch meets what was shown, the old top is decorated
    // again as the event after the batch's last (it opened the log, so a
    // day separator stands before it).
    const day = top.previousElementSibling;
    if (day && day.classList.contains('day')) day.remove();
    decorateAfter(prev, top, eventOf(top));
  }

  // Loads up to `limit` events before the oldest shown; whether it could.
  async function loadPage(limit) {
    const before = oldest;
    if (!more || loadingOlder || before === null) return false;
    loadingOlder = true;
    try {
      const response = await fetch(`/rooms/${code}/messages?before=${before}&limit=${limit}`, {
        headers: { Accept: 'application/json' },
      });
      if (!response.ok) return false;
      const events = await response.json();
      if (events.length === 0) { more = false; return false; }
      oldest = events[0].id;
      const height = scroller.scrollHeight;
      prepend(events);
      scroller.scrollTop += scroller.scrollHeight - height;
      return true;
    } catch {
      return false; // unreachable: the next scroll tries again
    } finally {
      loadingOlder = false;
    }
  }

  async function loadOlder() {
    await loadPage(PAGE);
    // Still nothing to scroll: there is room for more.
    if (more && scroller.scrollHeight <= scroller.clientHeight) loadOlder();
  }
  scroller.addEventListener('scroll', () => { if (scroller.scrollTop < 200) loadOlder(); });
  if (scroller.scrollHeight <= scroller.clientHeight) loadOlder();

  // ---- search --------------------------------------------------------------
  // The newest 50 messages with the words; a hit shows its message in the
  // log, among the ones around it (older pages are loaded up to it).
  const SEARCH_LIMIT = 50;
  const searchForm = $('#search');
  const results = $('#search-results');
  const summary = $('#search-summary');
  const hits = $('#search-hits');
  searchForm.hidden = false;

  function showHits(found) {
    results.hidden = false;
    hits.replaceChildren(...found.map((hit) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = hit.name;
      const text = document.createElement('span');
      text.textContent = hit.text;
      button.append(who, timeElement(hit.ts), text);
      button.addEventListener('click', () => jumpTo(hit.id));
      li.append(button);
      return li;
    }));
    if (found.length === 0) summary.textContent = 'No messages found.';
    else if (found.length < SEARCH_LIMIT) summary.textContent = `${found.length} found, newest first:`;
    else summary.textContent = `The newest ${SEARCH_LIMIT} found:`;
  }

  searchForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const words = searchForm.q.value.trim();
    if (!words) { results.hidden = true; return; }
    results.hidden = false;
    summary.textContent = 'Searching…';
    hits.replaceChildren();
    try {
      const query = `q=${encodeURIComponent(words)}&limit=${SEARCH_LIMIT}`;
      const response = await fetch(`/rooms/${code}/messages?${query}`, { headers: { Accept: 'application/json' } });
      const body = await response.json().catch(() => ({}));
      if (response.ok) showHits(body);
      else summary.textContent = body.error || `Search failed (${response.status}).`;
    } catch {
      summary.textContent = 'Search failed: the server is unreachable.';
    }
  });
  $('#search-close').addEventListener('click', () => { results.hidden = true; searchForm.q.focus(); });

  async function jumpTo(id) {
    const find = () => log.querySelector(`li.event[data-id="${id}"]`);
    // The most a history read gives: a far hit takes a few reads.
    while (!find() && more && (oldest ?? 0) > id) {
      if (loadingOlder) await new Promise((done) => { setTimeout(done, 50); });
      else if (!await loadPage(500)) break;
    }
    const li = find();
    if (!li) { summary.textContent = 'That message is no longer kept.'; return; }
    for (const old of log.querySelectorAll('.found')) old.classList.remove('found');
    li.classList.add('found');
    li.tabIndex = -1;
    li.scrollIntoView({ block: 'center' });
    li.focus({ preventScroll: true });
  }

  // ---- the stream ----------------------------------------------------------
  // The hub reconnects with backoff and resumes by cursor; this page only
  // shows what it hands over. The session cookie says who this is, and
  // the server keeps it across restarts.
  const STATES = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Server unreachable, reconnecting…', offline: 'Offline' };
  let hubState = 'connecting';
  function setState(state) {
    const shown = navigator.onLine === false ? 'offline' : state;
    status.dataset.state = shown;
    statusText.textContent = STATES[shown];
    retryNow.hidden = shown !== 'reconnecting';
  }

  // Marks this room read up to what is shown, while the page is in view.
  function markSeen() {
    if (!document.hidden && lastId > seenIn(code)) localStorage.setItem(seenKey(code), String(lastId));
  }
  document.addEventListener('visibilitychange', markSeen);
  markSeen();

  const listed = yourRooms();
  const link = openLink((message) => {
    if (message.type === 'state') {
      hubState = message.state;
      setState(hubState);
      if (hubState === 'live' && outbox.length) flush();
      return;
    }
    if (message.type === 'gone') {
      // Left in another tab, or the room is gone: home, with the code.
      if (message.room === code) location.assign(`/?code=${encodeURIComponent(code)}`);
      else listed.gone(message.room);
      return;
    }
    if (message.type !== 'frame') return;
    if (message.room !== code) { listed.frame(message); return; }
    const data = JSON.parse(message.data);
    if (message.kind === 'members') showMembers(data);
    else if (message.kind === 'typing') typing(data.name);
    else if (message.kind === 'gap') {
      notice(`Messages ${data.from}–${data.to} are no longer kept and could not be shown.`);
    } else {
      show(data);
      markSeen();
    }
  });
  link.follow(() => ({
    // The room shown first: past the stream's limit, it is the one kept.
    rooms: { [code]: lastId, ...listed.wanted() },
    kinds: ['message', 'typing', ...CHANGES, ...Object.keys(notices)],
  }));
  retryNow.addEventListener('click', () => { link.retry(); flush(); });
  window.addEventListener('online', () => setState(hubState));
  window.addEventListener('offline', () => setState(hubState));

  // ---- sending -------------------------------------------------------------
  // Every message gets its own Idempotency-Key and waits in the outbox,
  // shown as pending, until the server answers it. One that may or may not
  // have been stored (no answer, a 5xx, a 409 while its first send is
  // being stored) is sent again with the same key when the stream is live
  // again or after a while, so it is stored once whatever happened; they
  // go one at a time, in the order typed.
  const outbox = []; // { key, text, li }
  const outboxList = $('#outbox');
  let flushing = false;
  let retryTimer = null;

  function showError(message) {
    sendError.textContent = message;
    sendError.hidden = false;
  }

  function newKey() {
    // getRandomValues works on plain http too, where randomUUID does not.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function pendingItem(text) {
    const li = document.createElement('li');
    li.className = 'event message mine pending';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = me;
    const state = document.createElement('span');
    state.className = 'sending';
    state.textContent = 'Sending…';
    const p = document.createElement('p');
    p.className = 'text';
    p.textContent = text;
    li.append(who, ' ', state, p);
    outboxList.append(li);
    scroller.scrollTop = scroller.scrollHeight;
    return li;
  }

  function send() {
    const text = box.value;
    if (!text.trim()) return;
    sendError.hidden = true;
    box.value = '';
    outbox.push({ key: newKey(), text, li: pendingItem(text) });
    flush();
  }

  // One send of the oldest waiting message: 'sent', 'later' (with how
  // long to wait, if the server said), or 'refused' (with why).
  async function attempt({ key, text }) {
    let response;
    try {
      response = await fetch(`/rooms/${encodeURIComponent(code)}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Idempotency-Key': key },
        body: JSON.stringify({ text }),
      });
    } catch {
      return { outcome: 'later' };
    }
    if (response.status === 201) return { outcome: 'sent' };
    if (response.status === 401) {
      location.assign(`/?code=${encodeURIComponent(code)}`);
      return { outcome: 'later' };
    }
    const wait = Number(response.headers.get('Retry-After')) * 1000 || 0;
    if (response.status === 409 || response.status === 429 || response.status >= 500) {
      return { outcome: 'later', wait };
    }
    let why = `Not sent (${response.status}).`;
    try {
      const body = await response.json();
      if (body.error) why = `Not sent: ${body.error}`;
    } catch { /* not JSON: keep the status */ }
    return { outcome: 'refused', why };
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    clearTimeout(retryTimer);
    try {
      while (outbox.length) {
        const item = outbox[0];
        item.li.querySelector('.sending').textContent = 'Sending…';
        const result = await attempt(item);
        if (result.outcome === 'later') {
          item.li.querySelector('.sending').textContent = 'Waiting to send…';
          // Sent again once the stream is live, or after this long.
          retryTimer = setTimeout(flush, Math.max(result.wait || 0, 3000));
          return;
        }
        outbox.shift();
        item.li.remove();
        if (result.outcome === 'refused') {
          showError(result.why);
          // The words come back to the box, unless something new is there.
          if (!box.value) box.value = item.text;
        }
      }
    } finally {
      flushing = false;
    }
  }

  // Leaving with messages not sent yet: the browser asks first.
  window.addEventListener('beforeunload', (e) => { if (outbox.length) e.preventDefault(); });

  form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  // ---- completing a mention -------------------------------------------------
  // `@` and the start of a name offers the people in the room who match;
  // Up and Down choose, Enter or Tab takes one, Escape closes the list.
  const mentionList = $('#mention-list');
  let choices = [];
  let chosen = 0;

  // The `@…` being typed just before the caret: where it starts and what.
  function typedMention() {
    const before = box.value.slice(0, box.selectionStart);
    const found = before.match(/(?:^|[^\p{L}\p{N}_])@([^@\s]{0,32})$/u);
    return found && { at: before.length - found[1].length - 1, typed: found[1] };
  }

  function showChoices() {
    mentionList.hidden = choices.length === 0;
    box.setAttribute('aria-expanded', String(!mentionList.hidden));
    mentionList.replaceChildren(...choices.map((name, i) => {
      const li = document.createElement('li');
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', String(i === chosen));
      li.textContent = `@${name}`;
      // Taken before the box would lose its focus.
      li.addEventListener('mousedown', (e) => { e.preventDefault(); takeChoice(i); });
      return li;
    }));
  }

  function offerMentions() {
    const typed = typedMention();
    const start = typed ? typed.typed.toLocaleLowerCase() : null;
    choices = start === null ? [] : memberNames
      .filter((name) => name !== me && name.toLocaleLowerCase().startsWith(start))
      .slice(0, 8);
    chosen = 0;
    showChoices();
  }

  function takeChoice(i) {
    const typed = typedMention();
    if (typed && choices[i]) box.setRangeText(`@${choices[i]} `, typed.at, box.selectionStart, 'end');
    choices = [];
    showChoices();
    box.focus();
  }

  box.setAttribute('aria-controls', 'mention-list');
  box.addEventListener('input', () => { sayTyping(); offerMentions(); });
  box.addEventListener('blur', () => { choices = []; showChoices(); });
  box.addEventListener('keydown', (e) => {
    if (e.isComposing) return;
    if (choices.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        chosen = (chosen + (e.key === 'ArrowDown' ? 1 : choices.length - 1)) % choices.length;
        showChoices();
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); takeChoice(chosen); return; }
      if (e.key === 'Escape') { e.preventDefault(); choices = []; showChoices(); return; }
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      send();
    } else if (e.key === 'ArrowUp' && box.value === '' && editLast()) {
      e.preventDefault();
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
