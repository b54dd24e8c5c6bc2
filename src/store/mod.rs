//! The storage seam: where rooms and their history are kept durably.
//!
//! The registry keeps what is live in memory (rooms, recent history,
//! members, broadcast channels) and hands every change to one writer thread
//! ([`writer`]), which applies them to a [`Store`] in batches, one
//! transaction each, and only then lets the registry publish them. So every
//! event anyone sees has a durable id, and a 201 means stored. SQLite's
//! write-ahead log is copied back into the database by a helper thread
//! between batches ([`sqlite`] with its `checkpoint` module), never inside one.

mod checkpoint;
pub mod sqlite;
pub mod writer;

use std::fmt;
use std::sync::Arc;

use crate::code_set::CodeSet;
use crate::model::{IdempotencyKey, PostKey, Recorded, RoomCode, RoomKey, Words};
use crate::session::{Participation, SessionId};

/// One change to what is stored.
#[derive(Debug, Clone)]
pub enum Change {
    CreateRoom {
        code: RoomCode,
        /// A private room's key.
        key: Option<RoomKey>,
        at_ms: u64,
    },
    /// A history event; it also marks the room active at `at_ms`. A
    /// message sent with an `Idempotency-Key` carries it, with the sender's
    /// session: both are kept with it for [`Store::find_post`].
    Append {
        code: RoomCode,
        event: Arc<Recorded>,
        key: Option<(SessionId, PostKey)>,
        at_ms: u64,
    },
    /// The room's TTL passed with nobody in it: it and everything in it
    /// go, and its code is kept as ended at `at_ms` (see [`EndedRoom`]).
    EndRoom {
        code: RoomCode,
        at_ms: u64,
        private: bool,
    },
    /// An ended room's code may be given to a new room again.
    FreeCode { code: RoomCode },
    /// The room was active at `at_ms` without an event (streams were open
    /// in it), as memory saw it when it let the room go: its TTL counts
    /// from then.
    Active { code: RoomCode, at_ms: u64 },
    /// `session` (made if new) takes part in the room as `part`, and the
    /// room's history says so (`notice`; none for a watcher), in one.
    Join {
        session: SessionId,
        code: RoomCode,
        part: Participation,
        notice: Option<Arc<Recorded>>,
        at_ms: u64,
    },
    /// `session` left the room, with its `notice` as for a join.
    Leave {
        session: SessionId,
        code: RoomCode,
        notice: Option<Arc<Recorded>>,
        at_ms: u64,
    },
    /// `session` was used at `at_ms` (kept `--session-ttl` after that).
    Used { session: SessionId, at_ms: u64 },
    /// `session` went unused past `--session-ttl`: it and its
    /// participations are gone.
    EndSession { session: SessionId },
}

impl Change {
    /// The history event this change adds, if any: what is published once
    /// it is stored.
    pub fn event(&self) -> Option<(&RoomCode, &Arc<Recorded>)> {
        match self {
            Change::Append { code, event, .. } => Some((code, event)),
            Change::Join { code, notice, .. } | Change::Leave { code, notice, .. } => {
                Some((code, notice.as_ref()?))
            }
            _ => None,
        }
    }

    /// Whether this change takes words out of the store: a message
    /// deleted, or a room ended with everything said in it.
    pub fn deletes_words(&self) -> bool {
        let deletes = |(_, e): (_, &Arc<Recorded>)| e.event.kind == crate::model::Kind::Delete;
        matches!(self, Change::EndRoom { .. }) || self.event().is_some_and(deletes)
    }

    /// When this change happened, if it is activity in its room.
    fn at_ms(&self) -> Option<u64> {
        match self {
            Change::Append { at_ms, .. }
            | Change::Join { at_ms, .. }
            | Change::Leave { at_ms, .. } => Some(*at_ms),
            _ => None,
        }
    }
}

/// What is loaded at start: which codes are rooms, not the rooms (each is
/// read with [`Store::room`] when first asked for), nor the sessions
/// ([`Store::session`]).
#[derive(Debug, Default)]
pub struct Stored {
    /// The code of every stored room.
    pub codes: CodeSet,
    /// The rooms that ended and whose codes are not free yet.
    pub ended: Vec<(RoomCode, EndedRoom)>,
}

/// A session as stored: when it was last used (ms since the epoch), and
/// every room it takes part in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub used_ms: u64,
    pub rooms: Vec<(RoomCode, Participation)>,
}

/// A room that ended: its code answers "ended on" (unless it was private:
/// then it is a room nobody outside may learn of) and is not given to a new
/// room until the reservation passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedRoom {
    /// When it ended, in ms since the epoch.
    pub at_ms: u64,
    pub private: bool,
}

/// A room as the store last saw it, with its newest events (at most as
/// many as were asked for).
#[derive(Debug)]
pub struct StoredRoom {
    pub code: RoomCode,
    /// The last id given out in this room (0 if none).
    pub last_id: u64,
    /// A private room's key.
    pub key: Option<RoomKey>,
    /// When the room was created or last had an event, in ms since the epoch.
    pub last_activity_ms: u64,
    /// Who takes part in it.
    pub participants: Vec<(SessionId, Participation)>,
    pub newest: Vec<Recorded>,
}

#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Which of a room's stored events to read: those after `after` (or the
/// newest, if `None`) and before `before`, at most `limit`, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub after: Option<u64>,
    pub before: u64,
    pub limit: usize,
}

/// A message stored under an `Idempotency-Key`, as [`Store::find_post`]
/// finds it: enough to answer a repeat with the original (whose text the
/// digest vouches for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptPost {
    pub id: u64,
    pub name: String,
    pub ts: String,
    pub digest: String,
}

/// What a backend does. It lives on the writer thread (loading happens
/// before that thread starts), so it may block and need not be `Sync`.
///
/// `history` is `--history`'s rule (see `rooms::history`): each room
/// keeps its newest `history` messages and beside them its newest
/// `history` notices; when a message goes, the notices before it go too.
pub trait Store: Send + 'static {
    /// Which codes are rooms, and the ended rooms, at start.
    fn load(&mut self) -> Result<Stored, StoreError>;

    /// A room with its participants and its newest `newest` events (a
    /// smaller `history` than when they were stored trims them now).
    fn room(
        &mut self,
        code: &RoomCode,
        history: usize,
        newest: usize,
    ) -> Result<Option<StoredRoom>, StoreError>;

    /// A session and every room it is in.
    fn session(&mut self, id: SessionId) -> Result<Option<StoredSession>, StoreError>;

    /// At most `limit` rooms last active before `before_ms`, the longest
    /// idle first, each with whether it is private.
    fn idle_rooms(
        &mut self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<(RoomCode, bool)>, StoreError>;

    /// At most `limit` sessions last used before `before_ms`, with their
    /// rooms.
    fn unused_sessions(
        &mut self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<(SessionId, StoredSession)>, StoreError>;

    /// Applies `changes` in order, all or nothing, keeping `history`.
    fn apply(&mut self, changes: &[Change], history: usize) -> Result<(), StoreError>;

    /// A room's stored events in `range`.
    fn events(&mut self, code: &RoomCode, range: Range) -> Result<Vec<Recorded>, StoreError>;

    /// The newest `limit` messages below `before` that have `words`,
    /// newest first.
    fn search(
        &mut self,
        code: &RoomCode,
        words: &Words,
        before: u64,
        limit: usize,
    ) -> Result<Vec<Recorded>, StoreError>;

    /// The message `session` stored in the room under `key` at or after
    /// `since_ms`, if any.
    fn find_post(
        &mut self,
        code: &RoomCode,
        session: SessionId,
        key: &IdempotencyKey,
        since_ms: u64,
    ) -> Result<Option<KeptPost>, StoreError>;

    /// Housekeeping the writer does once a batch's requests are answered,
    /// so that it never delays an answer.
    fn tidy(&mut self) {}
}

/// When the idempotency window began, in ms since the epoch: keys sent
/// before it are forgotten.
pub fn keys_window_start_ms() -> u64 {
    now_ms().saturating_sub(crate::limits::IDEMPOTENCY_WINDOW.as_millis() as u64)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
