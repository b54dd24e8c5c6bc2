// roomcast stream hub: one multiplexed stream (GET /events?rooms=…) for
// every tab of this browser. A browser opens at most six HTTP/1.1
// connections to a site; one EventSource per tab used them all up.
//
// Each tab says which rooms it needs and from which id; the hub follows
// their union on one EventSource, resuming with the cursor the server puts
// in every event's id (ABCD:57,EFGH:12), and hands each tab the frames of
// its rooms. Tabs drop what they have already shown, by id.
//
// It runs as a SharedWorker (this file), or inside the one tab elected
// with the Web Locks API (app.js relays over a BroadcastChannel), or in a
// lone tab when the browser has neither.
(() => {
  'use strict';

  // A tab's rooms wait this long before a stream without them is opened:
  // moving from one room's page to another's must not reconnect twice.
  const LET_GO_MS = 2000;
  // Tabs that open together ask together: one stream for all of them.
  const GATHER_MS = 30;
  // The most rooms one stream may follow (the server's limit).
  const MAX_ROOMS = 50;
  // A lost stream is opened again after this long at first, then twice
  // as long each time up to the most, each wait jittered over its second
  // half: a server back from a restart has its pages live within a second
  // of accepting connections, and a crowd of them spread over that
  // second. (A refused connection costs a down server nothing.)
  const RETRY_FIRST_MS = 100;
  const RETRY_MOST_MS = 1000;

  class Hub {
    constructor() {
      // id → { send(message), rooms: Map(code → since), behind: Set }
      this.tabs = new Map();
      this.cursor = new Map(); // code → newest id sent by the stream
      // code → the earliest id a tab that came in since needs from: the
      // next stream goes back there (the open one moves the cursor on).
      this.rewind = new Map();
      this.members = new Map(); // code → the newest members frame's data
      this.followed = []; // the rooms of the open stream, in its order
      this.source = null;
      this.kinds = new Set(['members', 'gap']);
      this.state = 'connecting';
      this.opened = false;
      this.retryMs = RETRY_FIRST_MS;
      this.timer = null;
    }

    attach(id, send) {
      // `behind`: rooms the tab gets nothing of until the stream that goes
      // back for it opens, so that it sees them in order.
      this.tabs.set(id, { send, rooms: new Map(), behind: new Set() });
      send({ type: 'state', state: this.state });
    }

    // The tab `id` shows `rooms` ({code: since}); it knows these `kinds`.
    follow(id, rooms, kinds) {
      const tab = this.tabs.get(id);
      if (!tab) return;
      tab.rooms = new Map(Object.entries(rooms));
      tab.behind.clear();
      for (const kind of kinds) this.listen(kind);
      let lacking = false;
      const want = this.wanted();
      for (const [code, since] of tab.rooms) {
        const members = this.members.get(code);
        if (members) tab.send({ type: 'frame', kind: 'members', room: code, data: members });
        if (!want.has(code)) continue; // past the stream's limit: not followed
        const at = this.cursor.get(code);
        if (!this.followed.includes(code) || at === undefined) lacking = true;
        else if (since < at) {
          // This tab has not seen what the stream already gave: go back
          // for it (the other tabs drop it again by id).
          this.rewind.set(code, Math.min(this.rewind.get(code) ?? since, since));
          tab.behind.add(code);
          lacking = true;
        }
      }
      tab.send({ type: 'state', state: this.state });
      this.plan(lacking);
    }

    detach(id) {
      if (this.tabs.delete(id)) this.plan(false);
    }

    // Closes the stream now, and forgets every tab (they say hello again).
    stop() {
      clearTimeout(this.timer);
      if (this.source) this.source.close();
      this.source = null;
      this.followed = [];
      this.tabs.clear();
    }

    // The rooms every tab needs, each from the earliest point any asked,
    // at most MAX_ROOMS: the room each tab shows (its first) before the
    // rest (the unread counts of its other rooms).
    wanted() {
      const want = new Map();
      const add = (code, since) => {
        const earliest = want.get(code);
        if (earliest !== undefined) want.set(code, Math.min(earliest, since));
        else if (want.size < MAX_ROOMS) want.set(code, since);
      };
      for (const tab of this.tabs.values()) {
        const shown = tab.rooms.entries().next().value;
        if (shown) add(...shown);
      }
      for (const tab of this.tabs.values()) {
        for (const [code, since] of tab.rooms) add(code, since);
      }
      return want;
    }

    // Reconnects soon if the stream lacks what a tab needs; later if it
    // only has rooms no tab needs now.
    plan(lacking) {
      const want = this.wanted();
      const extra = this.followed.some((code) => !want.has(code));
      if (!lacking && !extra && (this.source || want.size === 0)) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), lacking ? GATHER_MS : LET_GO_MS);
    }

    connect() {
      clearTimeout(this.timer);
      if (this.source) this.source.close();
      this.source = null;
      const want = this.wanted();
      this.followed = [...want.keys()];
      for (const code of [...this.cursor.keys()]) if (!want.has(code)) this.cursor.delete(code);
      if (want.size === 0) return;
      // Each room from where the stream got to, or for a room new to it
      // from where its tabs asked.
      for (const [code, since] of want) {
        const at = this.cursor.get(code) ?? since;
        this.cursor.set(code, Math.min(at, this.rewind.get(code) ?? at));
      }
      this.rewind.clear();
      for (const tab of this.tabs.values()) tab.behind.clear();
      const since = this.followed.map((code) => `${code}:${this.cursor.get(code)}`).join(',');
      const url = `/events?rooms=${this.followed.join(',')}&since=${since}`;
      this.opened = false;
      const source = new EventSource(url);
      this.source = source;
      source.addEventListener('open', () => {
        this.opened = true;
        this.retryMs = RETRY_FIRST_MS;
        this.setState('live');
      });
      for (const kind of this.kinds) this.listenOn(source, kind);
      source.addEventListener('error', () => this.failed(source));
    }

    listen(kind) {
      if (this.kinds.has(kind)) return;
      this.kinds.add(kind);
      if (this.source) this.listenOn(this.source, kind);
    }

    listenOn(source, kind) {
      source.addEventListener(kind, (e) => {
        let room;
        try { room = JSON.parse(e.data).room; } catch { return; }
        if (kind === 'members') this.members.set(room, e.data);
        if (e.lastEventId) this.readCursor(e.lastEventId);
        this.deliver(room, { type: 'frame', kind, room, data: e.data });
      });
    }

    readCursor(cursor) {
      for (const part of cursor.split(',')) {
        const [code, id] = part.split(':');
        if (this.cursor.has(code)) this.cursor.set(code, Number(id));
      }
    }

    deliver(room, message) {
      for (const tab of this.tabs.values()) {
        if (tab.rooms.has(room) && !tab.behind.has(room)) tab.send(message);
      }
    }

    setState(state) {
      if (this.state === state) return;
      this.state = state;
      for (const tab of this.tabs.values()) tab.send({ type: 'state', state });
    }

    // The browser's own reconnect gives up on a refusal and waits its own
    // while on a server restart: the hub retries itself, with backoff.
    async failed(source) {
      if (source !== this.source) return;
      source.close();
      this.source = null;
      this.setState('reconnecting');
      // Refused before it opened: a room left (in another tab) or gone
      // would refuse the stream for ever, so find it and let it go.
      if (!this.opened) await this.dropGone();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), (this.retryMs / 2) * (1 + Math.random()));
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MOST_MS);
    }

    // "Retry now": a stream that is down is opened again at once.
    retry() {
      if (this.state !== 'live') this.connect();
    }

    async dropGone() {
      await Promise.all(this.followed.map(async (code) => {
        let status;
        try {
          const response = await fetch(`/rooms/${code}/messages?limit=0`, {
            headers: { Accept: 'application/json' },
          });
          status = response.status;
        } catch { return; } // unreachable: try again later
        if (status !== 401 && status !== 404) return;
        this.deliver(code, { type: 'gone', room: code });
        for (const tab of this.tabs.values()) tab.rooms.delete(code);
        this.cursor.delete(code);
        this.members.delete(code);
      }));
    }
  }

  // Tells the hub when a tab is gone for good: each tab holds a lock named
  // after it for its whole life, and the lock is granted here once the tab
  // (closed, crashed, navigated away) lets it go.
  function watchTab(hub, id) {
    if (!navigator.locks) return;
    navigator.locks.request(`roomcast-tab-${id}`, () => hub.detach(id));
  }

  // The hub's side of the messages a tab sends.
  function handle(hub, message, send) {
    switch (message.type) {
      case 'hello':
        hub.attach(message.id, send);
        watchTab(hub, message.id);
        break;
      case 'follow':
        hub.follow(message.id, message.rooms, message.kinds);
        break;
      case 'bye':
        hub.detach(message.id);
        break;
      case 'retry':
        hub.retry();
        break;
      default:
    }
  }

  if (typeof SharedWorkerGlobalScope !== 'undefined' && self instanceof SharedWorkerGlobalScope) {
    const hub = new Hub();
    // Held for the worker's life: a tab granted it knows the worker died.
    const alive = navigator.locks
      ? new Promise((held) => navigator.locks.request('roomcast-worker', () => {
        held();
        return new Promise(() => {});
      }))
      : Promise.resolve();
    self.addEventListener('connect', (e) => {
      const port = e.ports[0];
      port.addEventListener('message', (m) => {
        alive.then(() => handle(hub, m.data, (out) => port.postMessage(out)));
      });
      port.start();
    });
  } else if (typeof window !== 'undefined') {
    window.RoomcastHub = { Hub, handle };
  }
})();
