//! The registry's one lock. Everything the registry holds in memory (the
//! rooms, the sessions, admission, and with the local backend the writer's
//! queue) lives in [`State`] behind one `std::sync::Mutex` in [`Rooms`].
//!
//! A std mutex is right here because it is never held across an `.await`:
//! every caller takes it, does a few map operations and a non-blocking
//! send, and lets go. The other files of this folder hold plain data that
//! is only ever touched through this lock.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::info;

use super::admission::{shrink, Admission};
use super::error::RoomError;
use super::history::{Age, Bounds, Budget};
use super::room::Room;
use super::sessions::Sessions;
use super::settings::Settings;
use crate::client::VisitorKey;
use crate::code_set::CodeSet;
use crate::metrics::Metrics;
use crate::model::{IdempotencyKey, Recorded, RoomCode, Update};
use crate::session::SessionId;
use crate::store::writer::{Job, Reads};
use crate::store::{EndedRoom, StoredRoom};

/// How long after its last stream closes a session shows as away: a page
/// reloading, or going from one room's page to another's, opens its next
/// stream well within it, and nobody sees them flicker away and back.
pub const AWAY_AFTER: Duration = Duration::from_secs(2);

/// The rooms in memory, behind the lock; shared by the registry, its
/// backend and every open stream's guard.
pub struct Rooms {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    state: Mutex<State>,
}

pub struct State {
    /// The rooms in memory: those someone opened, joined or posted to
    /// lately (the local backend reads the others from the store when
    /// first asked for; with Redis, this is this node's cache).
    pub rooms: HashMap<RoomCode, Room>,
    /// The code of every stored room, in memory or not (local backend).
    pub codes: CodeSet,
    /// How many times a room left memory (let go idle, or ended): a room
    /// read from the store while this changed may be older than what was
    /// let go, and is read again.
    pub unloads: u64,
    /// The same for sessions.
    pub session_unloads: u64,
    /// Rooms that ended (local backend), while their codes stay reserved:
    /// they answer "ended", and no new room gets their code.
    pub ended: HashMap<RoomCode, EndedRoom>,
    pub sessions: Sessions,
    /// Device links not used yet (local backend): secret → session, until.
    pub links: HashMap<String, (SessionId, Instant)>,
    pub admission: Admission,
    /// Rooms with a `members` frame waiting for its turn.
    pub members_waiting: HashSet<RoomCode>,
    /// Rooms where someone came online (a first stream of their session)
    /// or went away (its last) since the members flusher last looked.
    pub presence_changed: HashSet<RoomCode>,
    /// Rooms where someone's last stream closed, and when: they show as
    /// away once [`AWAY_AFTER`] has passed (unless a stream of theirs is
    /// open again by then, when nothing changed).
    pub going_away: Vec<(RoomCode, Instant)>,
    /// When each session (by number) last said it was typing in a room,
    /// while that is recent (see `Registry::typing`).
    pub typing: HashMap<(RoomCode, u128), Instant>,
    /// Posts with an `Idempotency-Key` under way (local backend): while
    /// one is looked up and stored, the same key again is refused (409),
    /// so it can never be stored twice.
    pub keys_in_flight: HashSet<(RoomCode, SessionId, IdempotencyKey)>,
    /// What all rooms' history takes in memory.
    pub budget: Budget,
    pub closing: bool,
    /// With the local backend: its writer, whose queue is fed under this
    /// lock so that queue order is the order ids were given out.
    pub writer: Option<Writer>,
}

/// The writer thread's queue and the thread itself.
pub struct Writer {
    pub queue: SyncSender<Job>,
    pub thread: JoinHandle<()>,
    /// The reads waiting in the queue.
    pub reads: Reads,
    /// The reads of sessions waiting in the queue: apart, so that ids
    /// nobody has (any request may name one) cannot take the places of
    /// rooms' and history's reads.
    pub session_reads: Reads,
}

impl Rooms {
    pub fn new(settings: Settings, rooms: HashMap<RoomCode, Room>) -> Rooms {
        let state = State {
            rooms,
            codes: CodeSet::default(),
            unloads: 0,
            session_unloads: 0,
            ended: HashMap::new(),
            sessions: Sessions::default(),
            links: HashMap::new(),
            admission: Admission::new(settings.limits),
            members_waiting: HashSet::new(),
            presence_changed: HashSet::new(),
            going_away: Vec::new(),
            typing: HashMap::new(),
            keys_in_flight: HashSet::new(),
            budget: Budget::default(),
            closing: false,
            writer: None,
        };
        Rooms {
            settings,
            metrics: Arc::default(),
            state: Mutex::new(state),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should that ever change,
        // the maps are still consistent enough to keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A stream on `codes` closed: give back what it was counted for, and
    /// start each room's idle clock if it was the last there.
    pub fn stream_closed(&self, codes: &[RoomCode], visitor: VisitorKey) {
        let mut state = self.lock();
        state.admission.stream_closed(visitor);
        let now = Instant::now();
        for code in codes {
            // A room that expired, or a server closing, has nothing to count.
            if let Ok(room) = state.room_mut(code) {
                if room.stream_closed(visitor.session.map(|id| id.number()), now) {
                    state.going_away.push((code.clone(), now));
                }
            }
        }
    }

    /// Refuses new rooms, posts and streams from now on, and tells every
    /// open stream to end.
    pub fn close(&self) {
        let mut state = self.lock();
        if state.closing {
            return;
        }
        state.closing = true;
        info!(
            "closing {} rooms with {} open streams",
            state.rooms.len(),
            state.admission.streams()
        );
        for room in state.rooms.values() {
            room.send(Update::Close);
        }
    }
}

impl State {
    /// Sends `code`'s `members` frame, or has it wait its turn (see
    /// [`Room::send_members`]).
    pub fn send_members(&mut self, code: &RoomCode, frame: Bytes) {
        let Ok(room) = self.room_mut(code) else {
            return;
        };
        if room.send_members(frame, Instant::now()) {
            self.members_waiting.insert(code.clone());
        }
    }

    /// The rooms where someone went away [`AWAY_AFTER`] ago or more join
    /// those whose presence changed.
    pub fn settle_away(&mut self, now: Instant) {
        let changed = &mut self.presence_changed;
        self.going_away.retain(|(code, at)| {
            let settled = now.saturating_duration_since(*at) >= AWAY_AFTER;
            if settled {
                changed.insert(code.clone());
            }
            !settled
        });
    }

    /// Sends the `members` frames whose turn has come.
    pub fn flush_members(&mut self) {
        if self.members_waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let waiting = std::mem::take(&mut self.members_waiting);
        for code in waiting {
            if let Ok(room) = self.room_mut(&code) {
                if room.flush_members(now) {
                    self.members_waiting.insert(code);
                }
            }
        }
    }

    /// Takes a room's published `events` into memory, within the room's
    /// bounds and all rooms' (see [`super::history`]).
    pub fn remember(&mut self, code: &RoomCode, events: &[Arc<Recorded>], bounds: &Bounds) {
        let Some(room) = self.rooms.get_mut(code) else {
            return;
        };
        let before = room.history.bytes();
        room.history.keep(events, bounds);
        let after = room.history.bytes();
        let ids = events.iter().map(|e| e.event.id);
        let bytes = (before, after);
        (self.budget).took(code, ids, bytes, Age::Newest, &mut self.rooms, bounds);
    }

    /// Takes a room's newest stored `events` (at most
    /// `bounds.room_events` of them) into memory as it is read in. They
    /// count as the newest held: the room is in use now, so other rooms'
    /// oldest go before them when memory is full (else each read-in would
    /// read events only to let them go at once).
    fn restore_history(&mut self, code: &RoomCode, events: Vec<Recorded>, bounds: &Bounds) {
        let Some(room) = self.rooms.get_mut(code) else {
            return;
        };
        let all = events.len() < bounds.room_events;
        let before = room.history.bytes();
        room.history.restore(events, all, bounds);
        let after = room.history.bytes();
        let ids: Vec<u64> = room.history.after(0).map(|e| e.event.id).collect();
        let bytes = (before, after);
        let rings = &mut self.rooms;
        (self.budget).took(code, ids.into_iter(), bytes, Age::Newest, rings, bounds);
    }

    pub fn check_open(&self) -> Result<(), RoomError> {
        if self.closing {
            Err(RoomError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Whether this visitor may create a room now (taking its allowance):
    /// the server is open, fewer than `--max-rooms` are live.
    pub fn admit_room(&mut self, visitor: VisitorKey) -> Result<(), RoomError> {
        self.check_open()?;
        let live = self.rooms.len();
        self.admission.admit_room(visitor, live)
    }

    /// Whether this visitor may post in this room now (taking its
    /// allowance): the server is open, the room exists, the visitor has
    /// allowance left.
    pub fn admit_post(&mut self, code: &RoomCode, visitor: VisitorKey) -> Result<(), RoomError> {
        self.check_open()?;
        self.room(code)?;
        self.admission.admit_post(visitor)
    }

    pub fn room(&self, code: &RoomCode) -> Result<&Room, RoomError> {
        let ended = || RoomError::missing(code, self.ended.get(code));
        self.rooms.get(code).ok_or_else(ended)
    }

    pub fn room_mut(&mut self, code: &RoomCode) -> Result<&mut Room, RoomError> {
        let ended = || RoomError::missing(code, self.ended.get(code));
        self.rooms.get_mut(code).ok_or_else(ended)
    }

    /// Whether a new room may have `code`: no room has it (in memory or
    /// stored), nor one that ended not long ago.
    pub fn code_free(&self, code: &RoomCode) -> bool {
        !self.rooms.contains_key(code)
            && !self.codes.contains(code)
            && !self.ended.contains_key(code)
    }

    /// Takes a room read from the store into memory, with its names held
    /// and its newest events (see [`State::restore_history`]).
    pub fn restore_room(&mut self, mut stored: StoredRoom, bounds: &Bounds) {
        let code = stored.code.clone();
        for (id, part) in &stored.participants {
            self.sessions.hold_name(*id, &code, part);
        }
        let newest = std::mem::take(&mut stored.newest);
        self.rooms.insert(code.clone(), Room::restore(stored));
        self.restore_history(&code, newest, bounds);
    }

    /// A room is no more (it ended): out of memory if it was there, its
    /// code no longer a room's, everyone's part in it over. Whether it
    /// was private, if it was in memory.
    pub fn end_room(&mut self, code: &RoomCode) -> Option<bool> {
        let private = self.unload(code).map(|room| room.key.is_some());
        // Out of memory or not: a read of it under way is made again.
        self.unloads += 1;
        self.codes.remove(code);
        self.sessions.end_in(std::slice::from_ref(code));
        private
    }

    /// Takes a room out of memory (it stays stored), with its names.
    fn unload(&mut self, code: &RoomCode) -> Option<Room> {
        let room = self.rooms.remove(code)?;
        self.unloads += 1;
        self.budget.ended(room.history.bytes());
        for name in room.roster.held() {
            self.sessions.forget_name(code, name);
        }
        Some(room)
    }

    /// Lets go of the rooms nobody has used for `after`, and that have
    /// nothing under way (see [`Room::may_unload`]): they stay stored.
    pub fn take_idle(&mut self, now: Instant, after: Duration) -> Vec<(RoomCode, Room)> {
        let idle = self.rooms_where(|code, room| self.may_go(code, room, now, after));
        self.take(idle, |state, code| state.unload(code))
    }

    /// Whether the room may leave memory at `now`, unused for `after`.
    fn may_go(&self, code: &RoomCode, room: &Room, now: Instant, after: Duration) -> bool {
        room.may_unload(now, after)
            && !self.members_waiting.contains(code)
            && !self.presence_changed.contains(code)
            && !self.keys_in_flight.iter().any(|(held, ..)| held == code)
    }

    /// Makes a place for one more room when memory holds `--max-rooms`:
    /// lets go of the one asked for least lately of those that may go now
    /// (it stays stored), or, if none may, refuses (503): a crowd asking
    /// for stored rooms fills memory no further than creating them does.
    pub fn place_for_one_more(
        &mut self,
        now: Instant,
    ) -> Result<Option<(RoomCode, Room)>, RoomError> {
        if self.rooms.len() < self.admission.max_rooms() {
            return Ok(None);
        }
        let least_lately = (self.rooms.iter())
            .filter(|(code, room)| self.may_go(code, room, now, Duration::ZERO))
            .min_by_key(|(_, room)| room.seen)
            .map(|(code, _)| code.clone())
            .ok_or(RoomError::TooManyRooms)?;
        Ok(self.unload(&least_lately).map(|room| (least_lately, room)))
    }

    /// Takes out the rooms idle for at least `ttl`, and their sessions;
    /// each with whether it was private.
    pub fn take_expired(&mut self, now: Instant, ttl: Duration) -> Vec<(RoomCode, bool)> {
        let expired = self.rooms_where(|_, room| room.idle_since.is_some_and(|t| now - t >= ttl));
        self.take(expired, |state, code| state.end_room(code))
    }

    /// The codes of the rooms in memory that pass `test`.
    fn rooms_where(&self, test: impl Fn(&RoomCode, &Room) -> bool) -> Vec<RoomCode> {
        (self.rooms.iter())
            .filter(|(code, room)| test(code, room))
            .map(|(code, _)| code.clone())
            .collect()
    }

    /// Takes `codes` out of memory by `take`, each with what it gave.
    fn take<T>(
        &mut self,
        codes: Vec<RoomCode>,
        take: impl Fn(&mut State, &RoomCode) -> Option<T>,
    ) -> Vec<(RoomCode, T)> {
        let taken: Vec<(RoomCode, T)> = (codes.into_iter())
            .filter_map(|code| take(self, &code).map(|out| (code, out)))
            .collect();
        if !taken.is_empty() {
            shrink(&mut self.rooms);
        }
        taken
    }

    /// Takes out the ended rooms whose codes are free again: those that
    /// ended at least `reserved` before `now_ms`.
    pub fn take_freed(&mut self, now_ms: u64, reserved: Duration) -> Vec<RoomCode> {
        let until = |ended: &EndedRoom| ended.at_ms.saturating_add(reserved.as_millis() as u64);
        let freed: Vec<RoomCode> = (self.ended)
            .extract_if(|_, ended| until(ended) <= now_ms)
            .map(|(code, _)| code)
            .collect();
        shrink(&mut self.ended);
        freed
    }
}
