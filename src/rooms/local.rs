//! The local backend: this process holds the truth. Rooms, recent history
//! and members are in memory ([`super::state`]); every change goes to the
//! writer thread ([`crate::store::writer`]), which stores a batch in one
//! transaction (SQLite, or memory with `--db :memory:`) and hands it back
//! to [`publish`]. Only then does the poster get its 201.
//!
//! Ids are given out under the lock in queue order, so the writer stores
//! and publishes them in id order.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use log::{info, warn};
use tokio::sync::oneshot;

use super::backend::{
    gap, repeated, Amended, Amendment, Backend, Join, Opening, Pending, Post, Search, Window,
    CODE_ATTEMPTS, DEVICE_LINK_TTL,
};
use super::error::RoomError;
use super::room::Room;
use super::roster::Roster;
use super::settings::Settings;
use super::state::{Rooms, State, Writer};
use crate::client::VisitorKey;
use crate::model::{Event, IdempotencyKey, Kind, Name, Names, Recorded, RoomCode, RoomKey, Update};
use crate::session::{Participation, Session, SessionId};
use crate::store::writer::{self, FindPost, Job, Query, Reads};
use crate::store::{
    keys_window_start_ms, now_ms, Change, EndedRoom, KeptPost, Range, Store, StoreError,
    StoredSession,
};

mod amend;

pub struct Local {
    rooms: Arc<Rooms>,
}

/// How many times a read of a room or session is made again when rooms
/// or sessions keep leaving memory meanwhile, before the answer is busy.
const LOAD_ATTEMPTS: usize = 8;

/// How many stored rooms, and sessions, one sweep ends at most.
const SWEEP_LIMIT: usize = 256;

/// Where a change's outcome arrives.
type Stored = oneshot::Receiver<Result<(), StoreError>>;

impl Local {
    /// Reads which codes are rooms (not the rooms: each is read when
    /// first asked for) and starts the writer thread. Blocking: call it
    /// before serving or from `spawn_blocking`.
    pub fn open(settings: Settings, mut store: Box<dyn Store>) -> Result<Local, StoreError> {
        let stored = store.load()?;
        if !stored.codes.is_empty() {
            info!("{} rooms stored", stored.codes.len());
        }
        let bounds = settings.history;
        let rooms = Rooms::new(settings, HashMap::new());
        {
            let mut state = rooms.lock();
            state.codes = stored.codes;
            state.ended = stored.ended.into_iter().collect();
        }
        let rooms = Arc::new(rooms);
        let me = Arc::downgrade(&rooms);
        let (queue, thread) = writer::spawn(store, bounds.keep, move |changes| {
            if let Some(rooms) = me.upgrade() {
                publish(&rooms, changes);
            }
        });
        rooms.lock().writer = Some(Writer {
            queue,
            thread,
            reads: Reads::default(),
            session_reads: Reads::default(),
        });
        Ok(Local { rooms })
    }

    /// Makes sure the room is in memory, reading it from the store if it
    /// is stored and not there yet; else it is missing (or ended).
    async fn loaded(&self, code: &RoomCode) -> Result<(), RoomError> {
        let bounds = self.rooms.settings.history;
        for _ in 0..LOAD_ATTEMPTS {
            let (unloads, read) = {
                let mut state = self.rooms.lock();
                if let Some(room) = state.rooms.get_mut(code) {
                    room.seen = Instant::now();
                    return Ok(());
                }
                if !state.codes.contains(code) {
                    return Err(RoomError::missing(code, state.ended.get(code)));
                }
                let wanted = code.clone();
                let read = ask(&state, move |store| {
                    store.room(&wanted, bounds.keep, bounds.room_events)
                })?;
                (state.unloads, read)
            };
            let stored = outcome(read).await?;
            let mut state = self.rooms.lock();
            if state.rooms.contains_key(code) {
                return Ok(()); // another request took it in meanwhile
            }
            if state.unloads != unloads {
                continue; // a room left memory meanwhile: this read may be older
            }
            return match stored.filter(|_| state.codes.contains(code)) {
                Some(stored) => {
                    if let Some((out, room)) = state.place_for_one_more(Instant::now())? {
                        self.room_unloaded(&mut state, &out, &room);
                    }
                    self.rooms.metrics.room_loaded();
                    state.restore_room(stored, &bounds);
                    Ok(())
                }
                None => Err(RoomError::missing(code, state.ended.get(code))),
            };
        }
        Err(RoomError::Busy)
    }

    /// Makes sure the session is in memory if it is stored and live.
    async fn loaded_session(&self, id: SessionId) -> Result<(), RoomError> {
        let ttl = self.rooms.settings.session_ttl;
        for _ in 0..LOAD_ATTEMPTS {
            let (unloads, read) = {
                let state = self.rooms.lock();
                if state.sessions.get(&id).is_some() {
                    return Ok(());
                }
                let writer = state.writer.as_ref().ok_or(RoomError::ShuttingDown)?;
                let reads = &writer.session_reads;
                let read = ask_in(&state, reads, move |store| store.session(id))?;
                (state.session_unloads, read)
            };
            let stored = outcome(read).await?;
            let mut state = self.rooms.lock();
            if state.sessions.get(&id).is_some() {
                return Ok(());
            }
            if state.session_unloads != unloads {
                continue;
            }
            // One unused past its TTL is the sweep's to end.
            let live_since = now_ms().saturating_sub(ttl.as_millis() as u64);
            if let Some(mut stored) = stored.filter(|s| s.used_ms >= live_since) {
                // Not a room that ended while this was read.
                stored.rooms.retain(|(code, _)| state.codes.contains(code));
                state.sessions.restore(id, stored);
            }
            return Ok(());
        }
        Err(RoomError::Busy)
    }

    /// The session's use noted (see [`Backend::session`]), if it is in
    /// memory.
    fn use_session(&self, id: SessionId) -> Option<Arc<Session>> {
        let mut state = self.rooms.lock();
        let now = now_ms();
        let every = (self.rooms.settings.session_ttl.as_millis() as u64 / 100).max(1000);
        if state.sessions.used(&id, now, every) {
            let change = Change::Used {
                session: id,
                at_ms: now,
            };
            if let Err(err) = enqueue(&state, change, None) {
                warn!("a session's use was not recorded: {err:?}");
            }
        }
        state.sessions.get(&id).cloned()
    }

    /// Ends the stored rooms idle past the TTL that memory does not hold
    /// (it ends those it holds by its own clock, which also counts open
    /// streams: the store hears that clock for them now).
    fn end_idle_rooms(&self, idle: Vec<(RoomCode, bool)>) {
        let mut state = self.rooms.lock();
        let (now, now_wall) = (Instant::now(), now_ms());
        for (code, private) in idle {
            if let Some(room) = state.rooms.get(&code) {
                let at_ms = wall_ms(room.idle_since, now, now_wall);
                let _ = enqueue(&state, Change::Active { code, at_ms }, None);
            } else if state.codes.contains(&code) {
                state.end_room(&code);
                self.room_expired(&mut state, &code, private);
            } else if let Some(ended) = state.ended.get(&code).copied() {
                // Its end was not stored: again, or it would stay first
                // in line and hold the rooms behind it up.
                let change = Change::EndRoom {
                    code,
                    at_ms: ended.at_ms,
                    private,
                };
                let _ = enqueue(&state, change, None);
            }
        }
    }

    /// Ends the stored sessions unused past the TTL that memory does not
    /// hold, each leave announced in its rooms (read in for it).
    async fn end_unused_sessions(&self, unused: Vec<(SessionId, StoredSession)>) {
        for (id, stored) in unused {
            {
                let state = self.rooms.lock();
                if let Some(used_ms) = state.sessions.used_ms(&id) {
                    // Memory's clock: the store hears it, and the sweep
                    // ends it if that comes to pass.
                    let change = Change::Used {
                        session: id,
                        at_ms: used_ms,
                    };
                    let _ = enqueue(&state, change, None);
                    continue;
                }
            }
            let mut readable = true;
            for (code, _) in &stored.rooms {
                // A room that ended took its part in it along; one that
                // cannot be read now is read at a later sweep.
                readable &= match self.loaded(code).await {
                    Ok(()) | Err(RoomError::NotFound(_) | RoomError::Ended(..)) => true,
                    Err(_) => false,
                };
            }
            if !readable {
                continue;
            }
            let mut state = self.rooms.lock();
            if state.sessions.get(&id).is_some() {
                continue;
            }
            let session = Session {
                rooms: stored.rooms.into_iter().collect(),
            };
            state.sessions.release_all(id, &session);
            self.sessions_ended(&mut state, vec![(id, session)]);
        }
    }

    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }
}

/// The reads of a room that is in memory (see [`Local::loaded`]).
impl Local {
    /// From memory when it holds the window, else from the store.
    fn history_held<'a>(
        &'a self,
        code: &'a RoomCode,
        window: Window,
    ) -> Pending<'a, Vec<Arc<Recorded>>> {
        let Window {
            since,
            before,
            limit,
        } = window;
        let state = self.rooms.lock();
        let room = match state.room(code) {
            Ok(room) => room,
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        // Past the newest published (or none): the newest of all.
        let before = before.map_or(room.published_id + 1, |b| b.min(room.published_id + 1));
        let held = match since {
            Some(since) if room.history.holds_after(since) => {
                Some(room.history.after(since).take(limit).cloned().collect())
            }
            None if room.history.holds_newest_before(before, limit) => {
                Some(room.history.newest_before(before, limit).cloned().collect())
            }
            _ => None,
        };
        if let Some(events) = held {
            return Box::pin(std::future::ready(Ok(events)));
        }
        let range = Range {
            after: since,
            before,
            limit,
        };
        self.rooms.metrics.read_from_store();
        let stored = read(&state, code, Query::Range(range));
        drop(state);
        Box::pin(async move { stored?.await })
    }

    /// From the store's index (memory holds none), after what is queued.
    fn search_held<'a>(
        &'a self,
        code: &'a RoomCode,
        search: Search,
    ) -> Pending<'a, Vec<Arc<Recorded>>> {
        let state = self.rooms.lock();
        let read = state.room(code).and_then(|room| {
            let Search {
                words,
                before,
                limit,
            } = search;
            let before = before.map_or(room.published_id + 1, |b| b.min(room.published_id + 1));
            read(
                &state,
                code,
                Query::Search {
                    words,
                    before,
                    limit,
                },
            )
        });
        drop(state);
        Box::pin(async move { read?.await })
    }

    fn send_frame_held<'a>(
        &'a self,
        code: &'a RoomCode,
        frame: Bytes,
        from: Option<u128>,
    ) -> Pending<'a, ()> {
        let room = self.rooms.lock();
        let sent = (room.room(code)).map(|room| room.send(Update::Frame(frame, from)));
        Box::pin(std::future::ready(sent))
    }

    fn members_held<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Names> {
        let members = self.rooms.lock().room(code).map(Room::names);
        Box::pin(std::future::ready(members))
    }

    /// The participation is checked again in the hold that subscribes: a
    /// leave just before cannot leave a stream reading on (its end would
    /// have gone to a channel the stream was not on yet). What memory no
    /// longer holds of the backlog is read from the store, up to the
    /// oldest event it does hold.
    fn subscribe_held<'a>(
        &'a self,
        code: &'a RoomCode,
        since: Option<u64>,
        reader: Option<SessionId>,
    ) -> Pending<'a, Opening> {
        let state = self.rooms.lock();
        // (A stream with no session is the registry's own, in tests.)
        let participant = reader.is_none_or(|id| {
            let session = state.sessions.get(&id);
            session.is_some_and(|session| session.in_room(code).is_some())
        });
        let room = state
            .check_open()
            .and_then(|()| participant.then_some(()).ok_or(RoomError::NotParticipant))
            .and_then(|()| state.room(code));
        let room = match room {
            Ok(room) => room,
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        // An id from the future (a client of another room that had
        // this code) resumes from now rather than skipping events until
        // the ids catch up. A stream with no resume point starts live,
        // so it sees its own join.
        let newest = room.published_id;
        let since = since.map_or(newest, |since| since.min(newest));
        let held: Vec<Arc<Recorded>> = room.history.after(since).cloned().collect();
        let first_held = room.first_held();
        let older = (!room.history.holds_after(since)).then(|| {
            let range = Range {
                after: Some(since),
                before: first_held,
                limit: usize::MAX,
            };
            self.rooms.metrics.read_from_store();
            read(&state, code, Query::Range(range))
        });
        let members = room.members_frame(code);
        let updates = room.subscribe();
        drop(state);
        Box::pin(async move {
            let mut backlog = match older {
                Some(stored) => stored?.await?,
                None => Vec::new(),
            };
            backlog.extend(held);
            let first_kept = backlog.first().map_or(newest + 1, |e| e.event.id);
            Ok(Opening {
                since,
                missed: gap(since, first_kept),
                backlog,
                members,
                updates,
            })
        })
    }
}

impl Backend for Local {
    /// Admission, the code and the queue in one hold of the lock, so
    /// `--max-rooms` holds under concurrent creation.
    fn create_room(&self, visitor: VisitorKey, key: Option<RoomKey>) -> Pending<'_, RoomCode> {
        let rooms = &*self.rooms;
        Box::pin(async move {
            let (code, stored) = {
                let mut state = rooms.lock();
                state.admit_room(visitor)?;
                let in_use = state.codes.len() + state.ended.len();
                let length = RoomCode::length_for(in_use, rooms.settings.short_codes);
                let code = (0..CODE_ATTEMPTS)
                    .map(|_| RoomCode::random(length))
                    .find(|code| state.code_free(code))
                    .ok_or(RoomError::NoFreeCode)?;
                let change = Change::CreateRoom {
                    code: code.clone(),
                    key: key.clone(),
                    at_ms: now_ms(),
                };
                let stored = enqueue_awaited(&state, change)?;
                let mut room = Room::new(0);
                room.key = key;
                state.rooms.insert(code.clone(), room);
                state.codes.insert(&code);
                (code, stored)
            };
            match outcome(stored).await {
                Ok(()) => Ok(code),
                Err(err) => {
                    let mut state = rooms.lock();
                    state.rooms.remove(&code);
                    state.codes.remove(&code);
                    Err(err)
                }
            }
        })
    }

    /// From memory, or read from the store into it.
    fn find<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Option<RoomKey>> {
        Box::pin(async move {
            self.loaded(code).await?;
            self.rooms.lock().room(code).map(|room| room.key.clone())
        })
    }

    /// The checks, the admission, the roster and the queue in one hold of
    /// the lock, so two people can never take one name. The join and its
    /// notice are one change: stored and published together, or neither
    /// (and the roster is put back).
    fn join<'a>(&'a self, join: Join<'a>) -> Pending<'a, (SessionId, Participation)> {
        let Join {
            code,
            session,
            part,
            key,
            visitor,
        } = join;
        let rooms = &*self.rooms;
        Box::pin(async move {
            self.loaded(code).await?;
            if let Some(id) = session {
                self.loaded_session(id).await?;
            }
            let (id, stored) = {
                let mut state = rooms.lock();
                state.check_open()?;
                let room_key = state.room(code)?.key.clone();
                let id = session
                    .filter(|id| state.sessions.get(id).is_some())
                    .unwrap_or_else(SessionId::random);
                let current = state.sessions.get(&id).and_then(|s| s.in_room(code));
                if let Some(current) = current {
                    return if current.name.key() == part.name.key() {
                        Ok((id, current.clone()))
                    } else {
                        Err(RoomError::AlreadyIn(current.name.clone()))
                    };
                }
                if room_key
                    .as_ref()
                    .is_some_and(|k| !key.is_some_and(|key| k.opens(key)))
                {
                    return Err(RoomError::NotFound(code.clone()));
                }
                if state.sessions.holder(code, part).is_some() {
                    return Err(RoomError::NameTaken(part.name.clone()));
                }
                state.admission.admit_join(visitor)?;
                let at_ms = now_ms();
                let notice = notice(&mut state, code, Kind::Join, part)?;
                let notice_id = notice.as_ref().map(|n| n.event.id);
                let change = Change::Join {
                    session: id,
                    code: code.clone(),
                    part: part.clone(),
                    notice,
                    at_ms,
                };
                let stored = enqueue_awaited(&state, change)?;
                took(&mut state, code, notice_id);
                state.sessions.join(id, code, part.clone(), at_ms);
                roster_changed(&mut state, code, |roster| roster.add(part, id.number()));
                (id, stored)
            };
            match outcome(stored).await {
                Ok(()) => {
                    info!("{} joined {code}", part.name);
                    Ok((id, part.clone()))
                }
                Err(err) => {
                    let mut state = rooms.lock();
                    state.sessions.leave(&id, code);
                    roster_changed(&mut state, code, |roster| roster.remove(&part.name));
                    Err(err)
                }
            }
        })
    }

    /// Out of the roster at once (the name is free); the leave and its
    /// notice are one change, and undone here if they cannot be stored.
    fn leave<'a>(&'a self, id: SessionId, code: &'a RoomCode) -> Pending<'a, ()> {
        let rooms = &*self.rooms;
        Box::pin(async move {
            self.loaded(code).await?;
            self.loaded_session(id).await?;
            let (part, stored) = {
                let mut state = rooms.lock();
                state.check_open()?;
                state.room(code)?;
                let Some(part) = state
                    .sessions
                    .get(&id)
                    .and_then(|s| s.in_room(code))
                    .cloned()
                else {
                    return Err(RoomError::NotParticipant);
                };
                let notice = notice(&mut state, code, Kind::Leave, &part)?;
                let notice_id = notice.as_ref().map(|n| n.event.id);
                let change = Change::Leave {
                    session: id,
                    code: code.clone(),
                    notice,
                    at_ms: now_ms(),
                };
                let stored = enqueue_awaited(&state, change)?;
                took(&mut state, code, notice_id);
                state.sessions.leave(&id, code);
                roster_changed(&mut state, code, |roster| roster.remove(&part.name));
                // Out at once: no stream of theirs reads on.
                state.room(code)?.end_streams_of(id.number());
                (part, stored)
            };
            let result = outcome(stored).await;
            match result {
                Ok(()) => info!("{} left {code}", part.name),
                Err(_) => {
                    // The name is theirs again, unless someone took it
                    // while the leave was being stored (they keep it), or
                    // they joined again meanwhile (that join stands).
                    let mut state = rooms.lock();
                    let back = state
                        .sessions
                        .get(&id)
                        .is_some_and(|s| s.in_room(code).is_none());
                    if back
                        && state.sessions.holder(code, &part).is_none()
                        && state.room(code).is_ok()
                    {
                        state.sessions.join(id, code, part.clone(), now_ms());
                        roster_changed(&mut state, code, |roster| roster.add(&part, id.number()));
                    }
                }
            }
            result
        })
    }

    /// Kept in memory only: a restart within the ten minutes loses the
    /// link (a new one is a click away), never a session.
    fn link_device(&self, id: SessionId) -> Pending<'_, String> {
        let secret = RoomKey::random().as_str().to_string();
        let until = Instant::now() + DEVICE_LINK_TTL;
        let mut state = self.rooms.lock();
        let made = match state.sessions.get(&id) {
            Some(_) => {
                state.links.insert(secret.clone(), (id, until));
                Ok(secret)
            }
            None => Err(RoomError::NotParticipant),
        };
        Box::pin(std::future::ready(made))
    }

    fn use_device_link<'a>(&'a self, secret: &'a str) -> Pending<'a, Option<SessionId>> {
        Box::pin(async move {
            let link = self.rooms.lock().links.remove(secret);
            let Some(id) = link
                .filter(|(_, until)| Instant::now() < *until)
                .map(|(id, _)| id)
            else {
                return Ok(None);
            };
            self.loaded_session(id).await?;
            let live = self.rooms.lock().sessions.get(&id).is_some();
            Ok(live.then_some(id))
        })
    }

    /// From memory, or read from the store into it. A use is stored now
    /// and then (see [`Sessions::used`]), never awaited: losing one only
    /// makes the session end a little sooner.
    ///
    /// [`Sessions::used`]: super::sessions::Sessions::used
    fn session(&self, id: SessionId) -> Pending<'_, Option<Arc<Session>>> {
        Box::pin(async move {
            if let Some(session) = self.use_session(id) {
                return Ok(Some(session));
            }
            self.loaded_session(id).await?;
            Ok(self.use_session(id))
        })
    }

    /// Admission, the id and the queue in one hold of the lock. A post
    /// with a key is admitted first, then holds its key (no other post
    /// with it runs meanwhile), looks it up in the store, and is stored
    /// only if it is not there (its sender checked again as it is).
    fn post<'a>(&'a self, post: Post<'a>) -> Pending<'a, Arc<Recorded>> {
        let Post {
            code,
            session,
            text,
            key,
            visitor,
        } = post;
        let rooms = &*self.rooms;
        Box::pin(async move {
            self.loaded(code).await?;
            let _held = match key {
                Some(key) => {
                    // Admitted before the lookup, so only a speaker within
                    // their allowance ever puts one on the writer's queue.
                    admit_speaker(&mut rooms.lock(), code, session, visitor)?;
                    let held = KeyHeld::take(rooms, code, session, &key.key)?;
                    if let Some(kept) = outcome(find_post(rooms, code, session, &key.key)?).await? {
                        return repeated(code, text, &key.digest, kept);
                    }
                    Some(held)
                }
                None => None,
            };
            let (message, stored) = {
                let mut state = rooms.lock();
                // Checked where it is stored: a leave just before cannot
                // let the message in after.
                let name = match key {
                    Some(_) => speaker(&state, code, session)?,
                    None => admit_speaker(&mut state, code, session, visitor)?,
                };
                state.check_open()?;
                let said = state
                    .room(code)?
                    .next_event(code, Kind::Message, &name, Some(text));
                let message = Arc::new(Recorded::new(Event {
                    author: Some(session.author()),
                    ..said.event.clone()
                }));
                let change = Change::Append {
                    code: code.clone(),
                    event: message.clone(),
                    key: key.map(|key| (session, key.clone())),
                    at_ms: now_ms(),
                };
                let stored = enqueue_awaited(&state, change)?;
                took(&mut state, code, Some(message.event.id));
                (message, stored)
            };
            outcome(stored).await?;
            Ok(message)
        })
    }

    fn amend<'a>(&'a self, amendment: Amendment<'a>) -> Pending<'a, Amended> {
        Box::pin(self.amend_message(amendment))
    }

    fn history<'a>(
        &'a self,
        code: &'a RoomCode,
        window: Window,
    ) -> Pending<'a, Vec<Arc<Recorded>>> {
        Box::pin(async move {
            self.loaded(code).await?;
            self.history_held(code, window).await
        })
    }

    fn search<'a>(&'a self, code: &'a RoomCode, search: Search) -> Pending<'a, Vec<Arc<Recorded>>> {
        Box::pin(async move {
            self.loaded(code).await?;
            self.search_held(code, search).await
        })
    }

    fn send_frame<'a>(
        &'a self,
        code: &'a RoomCode,
        frame: Bytes,
        from: Option<u128>,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            self.loaded(code).await?;
            self.send_frame_held(code, frame, from).await
        })
    }

    fn members<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Names> {
        Box::pin(async move {
            self.loaded(code).await?;
            self.members_held(code).await
        })
    }

    fn subscribe<'a>(
        &'a self,
        code: &'a RoomCode,
        since: Option<u64>,
        reader: Option<SessionId>,
    ) -> Pending<'a, Opening> {
        Box::pin(async move {
            self.loaded(code).await?;
            if let Some(id) = reader {
                self.loaded_session(id).await?;
            }
            self.subscribe_held(code, since, reader).await
        })
    }

    fn presence_changed(&self, codes: HashSet<RoomCode>) -> Pending<'_, ()> {
        let mut state = self.rooms.lock();
        for code in codes {
            if let Ok(room) = state.room(&code) {
                let frame = room.members_frame(&code);
                state.send_members(&code, frame);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    /// Each of their rooms hears they left; nobody waits for it, so a
    /// failure is logged (the store then still has the session, which the
    /// next start ends again).
    fn sessions_ended(&self, state: &mut State, ended: Vec<(SessionId, Session)>) {
        for (id, session) in ended {
            let cold =
                |code: &RoomCode| state.codes.contains(code) && !state.rooms.contains_key(code);
            if session.rooms.keys().any(cold) {
                // Its leave of a room not in memory needs the room: the
                // store's query ends it (as unused there too) at the next
                // sweep, with every room read in. Its names stay held
                // until then.
                for (code, part) in &session.rooms {
                    if state.rooms.contains_key(code) {
                        state.sessions.hold_name(id, code, part);
                    }
                }
                state.session_unloads += 1;
                continue;
            }
            for (code, part) in session.rooms {
                roster_changed(state, &code, |roster| roster.remove(&part.name));
                if let Ok(room) = state.room(&code) {
                    room.end_streams_of(id.number());
                }
                let Ok(notice) = notice(state, &code, Kind::Leave, &part) else {
                    continue;
                };
                let notice_id = notice.as_ref().map(|n| n.event.id);
                let change = Change::Leave {
                    session: id,
                    code: code.clone(),
                    notice,
                    at_ms: now_ms(),
                };
                match enqueue(state, change, None) {
                    Ok(()) => {
                        took(state, &code, notice_id);
                        info!("{} left {code}: their session went unused", part.name)
                    }
                    Err(err) => warn!("{}'s leave of {code} was not stored: {err:?}", part.name),
                }
            }
            if let Err(err) = enqueue(state, Change::EndSession { session: id }, None) {
                warn!("an unused session stays in the store until next start: {err:?}");
            }
        }
    }

    /// Its code is reserved from now on, in memory at once and in the
    /// store with the room's end.
    fn room_expired(&self, state: &mut State, code: &RoomCode, private: bool) {
        let at_ms = now_ms();
        let ended = EndedRoom { at_ms, private };
        state.ended.insert(code.clone(), ended);
        let change = Change::EndRoom {
            code: code.clone(),
            at_ms,
            private,
        };
        match enqueue(state, change, None) {
            Ok(()) => info!("room {code} ended after its TTL with nobody connected"),
            Err(err) => {
                warn!("room {code} ended but stays in the store until next start: {err:?}")
            }
        }
    }

    /// The store hears when it was last active (its streams kept it so
    /// without a word said), so that its TTL counts from then.
    fn room_unloaded(&self, state: &mut State, code: &RoomCode, room: &Room) {
        let at_ms = wall_ms(room.idle_since, Instant::now(), now_ms());
        let change = Change::Active {
            code: code.clone(),
            at_ms,
        };
        if let Err(err) = enqueue(state, change, None) {
            warn!("room {code}'s last activity was not stored; it may end sooner: {err:?}");
        }
    }

    fn session_unloaded(&self, state: &mut State, id: SessionId, used_ms: Option<u64>) {
        if let Some(at_ms) = used_ms {
            let change = Change::Used { session: id, at_ms };
            if let Err(err) = enqueue(state, change, None) {
                warn!("a session's use was not recorded: {err:?}");
            }
        }
    }

    /// Rooms and sessions past their TTLs that memory does not hold, a
    /// few hundred a sweep, the longest idle first.
    fn keep_rooms(&self) -> Pending<'_, ()> {
        Box::pin(async move {
            let Settings {
                room_ttl,
                session_ttl,
                ..
            } = self.rooms.settings;
            let now = now_ms();
            let rooms_before = now.saturating_sub(room_ttl.as_millis() as u64);
            let sessions_before = now.saturating_sub(session_ttl.as_millis() as u64);
            let idle = ask(&self.rooms.lock(), move |store| {
                store.idle_rooms(rooms_before, SWEEP_LIMIT)
            })?;
            self.end_idle_rooms(outcome(idle).await?);
            let unused = ask(&self.rooms.lock(), move |store| {
                store.unused_sessions(sessions_before, SWEEP_LIMIT)
            })?;
            self.end_unused_sessions(outcome(unused).await?).await;
            Ok(())
        })
    }

    fn code_freed(&self, state: &mut State, code: &RoomCode) {
        let change = Change::FreeCode { code: code.clone() };
        if let Err(err) = enqueue(state, change, None) {
            // Freed in memory; the next start frees it again.
            warn!("room code {code} is free, but not yet in the store: {err:?}");
        }
    }

    /// Lets the writer store everything queued, and waits for it.
    fn finish(&self) -> Pending<'_, ()> {
        // Dropping the queue lets the writer drain it, then end.
        let writer = self.rooms.lock().writer.take();
        Box::pin(async move {
            if let Some(Writer { queue, thread, .. }) = writer {
                drop(queue);
                // A panic in the writer was already printed; nothing more to do.
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Ok(())
        })
    }

    fn reachable(&self) -> Option<bool> {
        None
    }
}

/// Called by the writer thread with each stored batch, in queue order:
/// history events become visible and go out to every stream, each room's
/// share of the batch as one update.
fn publish(rooms: &Rooms, changes: &[Change]) {
    let mut by_room: HashMap<&RoomCode, Vec<Arc<Recorded>>> = HashMap::new();
    for (code, event) in changes.iter().filter_map(Change::event) {
        by_room.entry(code).or_default().push(event.clone());
    }
    let bounds = rooms.settings.history;
    let mut state = rooms.lock();
    for (code, events) in by_room {
        // The room may have expired while the events were being stored.
        if let Ok(room) = state.room_mut(code) {
            rooms.metrics.appended(events.len() as u64);
            if !room.amending.is_empty() {
                room.amending
                    .retain(|e| !events.iter().any(|p| Arc::ptr_eq(e, p)));
            }
            room.publish(&events);
            state.remember(code, &events, &bounds);
        }
    }
}

/// Asks the writer for a room's stored events in `range`, read once what
/// is queued before is stored (so nothing published is missing); what
/// arrives is awaited outside the lock. Busy (503) while
/// [`writer::READS_LIMIT`] reads wait already.
fn read(
    state: &State,
    code: &RoomCode,
    query: Query,
) -> Result<impl std::future::Future<Output = Result<Vec<Arc<Recorded>>, RoomError>>, RoomError> {
    let writer = state.writer.as_ref().ok_or(RoomError::ShuttingDown)?;
    let ticket = writer.reads.take().ok_or(RoomError::Busy)?;
    let (reply, events) = oneshot::channel();
    let job = Job::Read {
        code: code.clone(),
        query,
        reply,
        ticket,
    };
    send(state, job)?;
    Ok(async move {
        let events = outcome(events).await?;
        Ok(events.into_iter().map(Arc::new).collect())
    })
}

/// Asks the writer for any other read of the store, run once what is
/// queued before is stored; busy (503) as [`read`].
fn ask<T: Send + 'static>(
    state: &State,
    query: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<oneshot::Receiver<Result<T, StoreError>>, RoomError> {
    let writer = state.writer.as_ref().ok_or(RoomError::ShuttingDown)?;
    ask_in(state, &writer.reads, query)
}

/// [`ask`], taking its place among `reads`.
fn ask_in<T: Send + 'static>(
    state: &State,
    reads: &Reads,
    query: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<oneshot::Receiver<Result<T, StoreError>>, RoomError> {
    let ticket = reads.take().ok_or(RoomError::Busy)?;
    let (reply, answer) = oneshot::channel();
    let call = move |store: &mut dyn Store| {
        let _served = ticket;
        // The asker may have gone away; nothing was changed.
        let _ = reply.send(query(store));
    };
    send(state, Job::Call(Box::new(call)))?;
    Ok(answer)
}

/// The wall clock's ms at `at` on the monotonic clock (`now` and
/// `now_ms` being one moment on each); now if `at` is none.
fn wall_ms(at: Option<Instant>, now: Instant, now_ms: u64) -> u64 {
    let ago = at.map_or(0, |at| now.saturating_duration_since(at).as_millis() as u64);
    now_ms.saturating_sub(ago)
}

/// The name `session` speaks under in the room, if it may speak there.
fn speaker(state: &State, code: &RoomCode, session: SessionId) -> Result<Name, RoomError> {
    // A room that ended took everyone's part in it: say it ended.
    state.room(code)?;
    let name = state.sessions.speaker(&session, code);
    name.cloned().ok_or(RoomError::NotParticipant)
}

/// [`speaker`], and the post admitted (taking the visitor's allowance).
fn admit_speaker(
    state: &mut State,
    code: &RoomCode,
    session: SessionId,
    visitor: VisitorKey,
) -> Result<Name, RoomError> {
    let name = speaker(state, code, session)?;
    state.admit_post(code, visitor)?;
    Ok(name)
}

/// A post's key, held from its lookup until its outcome is known: the same
/// key meanwhile is refused, so a key is never stored twice (a lookup after
/// this one is let go sees what it stored).
struct KeyHeld<'a> {
    rooms: &'a Rooms,
    held: (RoomCode, SessionId, IdempotencyKey),
}

impl<'a> KeyHeld<'a> {
    fn take(
        rooms: &'a Rooms,
        code: &RoomCode,
        session: SessionId,
        key: &IdempotencyKey,
    ) -> Result<KeyHeld<'a>, RoomError> {
        let held = (code.clone(), session, key.clone());
        if !rooms.lock().keys_in_flight.insert(held.clone()) {
            return Err(RoomError::KeyInFlight);
        }
        Ok(KeyHeld { rooms, held })
    }
}

impl Drop for KeyHeld<'_> {
    fn drop(&mut self) {
        self.rooms.lock().keys_in_flight.remove(&self.held);
    }
}

/// Asks the writer whether `session` stored a message under `key` in the
/// room within the idempotency window, once what is queued before is
/// stored.
fn find_post(
    rooms: &Rooms,
    code: &RoomCode,
    session: SessionId,
    key: &IdempotencyKey,
) -> Result<oneshot::Receiver<Result<Option<KeptPost>, StoreError>>, RoomError> {
    let state = rooms.lock();
    state.room(code)?;
    let (reply, found) = oneshot::channel();
    let since_ms = keys_window_start_ms();
    let find = FindPost {
        code: code.clone(),
        session,
        key: key.clone(),
        since_ms,
        reply,
    };
    send(&state, Job::FindPost(find))?;
    Ok(found)
}

/// Waits for the writer's answer on a change or a read.
async fn outcome<T>(stored: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, RoomError> {
    match stored.await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(err)) => Err(RoomError::Store(err.to_string())),
        Err(_) => Err(RoomError::Store("the writer stopped".into())),
    }
}

/// Queues a change for the writer. Called with the lock held, so the
/// queue order is the order ids were given out.
fn enqueue(state: &State, change: Change, done: Option<writer::Done>) -> Result<(), RoomError> {
    send(state, Job::Write { change, done })
}

fn send(state: &State, job: Job) -> Result<(), RoomError> {
    let writer = state.writer.as_ref().ok_or(RoomError::ShuttingDown)?;
    writer.queue.try_send(job).map_err(|err| match err {
        TrySendError::Full(_) => RoomError::Busy,
        TrySendError::Disconnected(_) => RoomError::Store("the writer stopped".into()),
    })
}

/// Queues a change and returns where its outcome will arrive.
fn enqueue_awaited(state: &State, change: Change) -> Result<Stored, RoomError> {
    let (done, stored) = oneshot::channel();
    enqueue(state, change, Some(done))?;
    Ok(stored)
}

/// Changes the room's roster and sends the new list to its streams.
fn roster_changed(state: &mut State, code: &RoomCode, change: impl FnOnce(&mut Roster)) {
    if let Ok(room) = state.room_mut(code) {
        change(&mut room.roster);
        let frame = room.members_frame(code);
        state.send_members(code, frame);
    }
}

/// The notice of `part` joining or leaving, with the room's next id (see
/// [`took`]); none for a watcher, who is never announced, nor past the
/// room's notice allowance ([`Room::may_announce`]).
fn notice(
    state: &mut State,
    code: &RoomCode,
    kind: Kind,
    part: &Participation,
) -> Result<Option<Arc<Recorded>>, RoomError> {
    let room = state.room_mut(code)?;
    let announced = !part.watch && room.may_announce(Instant::now());
    Ok(announced.then(|| room.next_event(code, kind, &part.name, None)))
}

/// A change carrying the event `id` (if any) was queued: the id is taken,
/// and the room was active (a join or leave past the notice allowance,
/// with no event, too).
fn took(state: &mut State, code: &RoomCode, id: Option<u64>) {
    if let Ok(room) = state.room_mut(code) {
        if let Some(id) = id {
            room.last_id = id;
        }
        room.touched(Instant::now());
    }
}
