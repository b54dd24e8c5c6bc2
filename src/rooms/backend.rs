//! The seam between the registry and where rooms really live. Two
//! backends implement it: [`super::local`] (this process is the truth,
//! stored through the writer thread in SQLite or memory) and
//! [`super::redis`] (Redis is the truth, this node a cache of it). The
//! registry makes one call here per operation (a post or a new room is
//! admitted by the backend itself, with `State::admit_post` and
//! `admit_room`, in the hold of the lock that gives its id or code);
//! nothing outside this folder knows which backend runs.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;

use super::error::RoomError;
use super::room::Room;
use super::state::State;
use crate::client::VisitorKey;
use crate::model::amend::Amend;
use crate::model::{Event, Kind, Names, PostKey, Recorded, RoomCode, RoomKey, Text, Update, Words};
use crate::session::{Participation, Session, SessionId};
use crate::shutdown::Shutdown;
use crate::store::KeptPost;

/// How long a device link works.
pub const DEVICE_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// How many random codes to try before saying no free code was found.
pub const CODE_ATTEMPTS: usize = 64;

/// A task a backend runs until shutdown.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A backend call under way.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, RoomError>> + Send + 'a>>;

/// What a new stream starts from: everything after its resume point, the
/// member list, and a receiver subscribed at that same instant, so nothing
/// falls between history and live updates and nothing comes twice.
pub struct Opening {
    /// The effective resume point: live updates at or below it are skipped.
    pub since: u64,
    /// Set when the resume point is older than the history still kept:
    /// the ids `missed.0..=missed.1` are gone for good.
    pub missed: Option<(u64, u64)>,
    pub backlog: Vec<Arc<Recorded>>,
    /// The opening `members` frame.
    pub members: Bytes,
    pub updates: broadcast::Receiver<Update>,
}

/// A message to append: who says what, where, and who is charged for it.
#[derive(Clone, Copy)]
pub struct Post<'a> {
    pub code: &'a RoomCode,
    /// Who speaks: the message carries the name this session holds in the
    /// room when it is stored, and is refused if it holds none there then.
    pub session: SessionId,
    pub text: &'a Text,
    /// The client's name for this message, if it gave one: a repeat is
    /// answered with the message first stored under it.
    pub key: Option<&'a PostKey>,
    pub visitor: VisitorKey,
}

/// A change of a message: who asks for what, and who is charged for it.
#[derive(Clone, Copy)]
pub struct Amendment<'a> {
    pub code: &'a RoomCode,
    /// Who asks: a member of the room now, and (to edit or delete) the
    /// message's sender.
    pub session: SessionId,
    pub target: u64,
    pub amend: &'a Amend,
    pub visitor: VisitorKey,
}

/// What an amendment did: the event that says so (none if it changed
/// nothing: an edit to the words the message has), and the message as it
/// reads after it.
pub struct Amended {
    pub change: Option<Arc<Recorded>>,
    pub message: Arc<Recorded>,
}

/// Which part of a room's history to read: the events after `since`, or
/// else the newest before `before` (the newest of all if `None`), oldest
/// first, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub since: Option<u64>,
    pub before: Option<u64>,
    pub limit: usize,
}

/// A search of a room's messages: the newest `limit` that have `words`,
/// below `before` if given, newest first.
#[derive(Debug, Clone)]
pub struct Search {
    pub words: Words,
    pub before: Option<u64>,
    pub limit: usize,
}

/// Someone joining a room: the session they have (if any: else a new
/// one), the part they ask for, and who is charged for it.
#[derive(Clone, Copy)]
pub struct Join<'a> {
    pub code: &'a RoomCode,
    pub session: Option<SessionId>,
    pub part: &'a Participation,
    /// The key given, which a private room needs (unless this session is
    /// in it already): without it, the room answers as an unknown one.
    pub key: Option<&'a str>,
    pub visitor: VisitorKey,
}

/// What a backend does; each holds the registry's
/// [`Rooms`](super::state::Rooms). Methods
/// that take `&mut State` are called with the registry's lock held and
/// must not block.
pub trait Backend: Send + Sync + 'static {
    /// Admits (`State::admit_room`) and makes a room with a fresh code
    /// (private with `key`), and returns once it is kept.
    fn create_room(&self, visitor: VisitorKey, key: Option<RoomKey>) -> Pending<'_, RoomCode>;

    /// The room's key if it is private, if it exists (it is then in the
    /// registry's rooms).
    fn find<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Option<RoomKey>>;

    /// Admits (`State::admit_post`) and makes `join.part` a participant
    /// of the room, in `join.session` or a new session; returns the
    /// session and its part once stored (an announced join follows).
    /// Joining again under the same name changes nothing.
    fn join<'a>(&'a self, join: Join<'a>) -> Pending<'a, (SessionId, Participation)>;

    /// Ends `id`'s part in the room (an announced leave follows).
    fn leave<'a>(&'a self, id: SessionId, code: &'a RoomCode) -> Pending<'a, ()>;

    /// Makes a device link for session `id`: a secret that, once, within
    /// [`DEVICE_LINK_TTL`], names the session to another browser.
    fn link_device(&self, id: SessionId) -> Pending<'_, String>;

    /// The session a device link names, if it is live, unused and in
    /// time; it is used up by asking.
    fn use_device_link<'a>(&'a self, secret: &'a str) -> Pending<'a, Option<SessionId>>;

    /// The session `id` names, if it is live; asking counts as a use.
    fn session(&self, id: SessionId) -> Pending<'_, Option<Arc<Session>>>;

    /// Admits (`State::admit_post`) and appends a message, and returns it
    /// once it is kept and published.
    fn post<'a>(&'a self, post: Post<'a>) -> Pending<'a, Arc<Recorded>>;

    /// Admits (`State::admit_post`) and appends an edit, a delete or a
    /// reaction of a message (see [`Amendment`]), and returns once it is
    /// kept and published.
    fn amend<'a>(&'a self, amendment: Amendment<'a>) -> Pending<'a, Amended>;

    /// Part of a room's history (see [`Window`]).
    fn history<'a>(&'a self, code: &'a RoomCode, window: Window)
        -> Pending<'a, Vec<Arc<Recorded>>>;

    /// The messages a search finds (see [`Search`]).
    fn search<'a>(&'a self, code: &'a RoomCode, search: Search) -> Pending<'a, Vec<Arc<Recorded>>>;

    /// Sends `frame`, which is not history, to every stream of the room
    /// (on every node) but those of the session numbered `from`.
    fn send_frame<'a>(
        &'a self,
        code: &'a RoomCode,
        frame: Bytes,
        from: Option<u128>,
    ) -> Pending<'a, ()>;

    /// Who is in the room.
    fn members<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Names>;

    /// What an admitted stream starts from, resuming after `since`;
    /// refused if the registry closed since it was admitted (else it
    /// would miss the close).
    fn subscribe<'a>(
        &'a self,
        code: &'a RoomCode,
        since: Option<u64>,
        reader: Option<SessionId>,
    ) -> Pending<'a, Opening>;

    /// Sessions unused past `--session-ttl` were taken out of memory:
    /// their names are free; say they left.
    fn sessions_ended(&self, state: &mut State, ended: Vec<(SessionId, Session)>);

    /// A room was idle past its TTL and is gone from memory (`private`:
    /// it had a key).
    fn room_expired(&self, state: &mut State, code: &RoomCode, private: bool);

    /// An ended room's code is free again (the local backend's: with
    /// Redis, Redis keeps the reservation).
    fn code_freed(&self, _state: &mut State, _code: &RoomCode) {}

    /// Memory let go of a room nobody used for `--unload-after` (it stays
    /// where the backend keeps it).
    fn room_unloaded(&self, _state: &mut State, _code: &RoomCode, _room: &Room) {}

    /// Memory let go of a session nobody used for `--unload-after`;
    /// `used_ms` is its last use, if that was not stored yet.
    fn session_unloaded(&self, _state: &mut State, _id: SessionId, _used_ms: Option<u64>) {}

    /// Someone came online or went away in each of these rooms (a first
    /// stream of their session opened here, or its last closed): their
    /// rooms' `members` frames say so.
    fn presence_changed(&self, codes: HashSet<RoomCode>) -> Pending<'_, ()>;

    /// Run after every sweep: with Redis, rooms with streams on this node
    /// live on there (Redis expires a room's keys on its own); locally,
    /// stored rooms and sessions not in memory end past their TTLs.
    fn keep_rooms(&self) -> Pending<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// What the backend runs beside the requests until shutdown, if
    /// anything (with Redis: the reader that feeds the cache).
    fn reader(&self, shutdown: Shutdown) -> Option<Task> {
        let _ = shutdown;
        None
    }

    /// After close: keeps what is queued and lets go of resources.
    fn finish(&self) -> Pending<'_, ()>;

    /// Whether the backend is reachable, for one that can be out of reach.
    fn reachable(&self) -> Option<bool>;
}

/// The ids lost for good to a client resuming after `since` when the
/// oldest event still kept is `first_kept`, if any.
pub fn gap(since: u64, first_kept: u64) -> Option<(u64, u64)> {
    (since + 1 < first_kept).then(|| (since + 1, first_kept - 1))
}

/// The answer to a post whose key was stored before: the message as it
/// was stored then, if the text is the same (`digest`, the post's, says
/// so); else the key is refused. A message deleted since keeps its key
/// with no name and no digest: the answer is the message as it reads
/// now, deleted, whatever the text (nothing of the words is left to
/// compare).
pub fn repeated(
    code: &RoomCode,
    text: &Text,
    digest: &str,
    kept: KeptPost,
) -> Result<Arc<Recorded>, RoomError> {
    if kept.name.is_empty() {
        let deleted = Event::placeholder(kept.id, code.as_str(), &kept.ts);
        return Ok(Arc::new(Recorded::new(deleted)));
    }
    if kept.digest != digest {
        return Err(RoomError::KeyReused);
    }
    Ok(Arc::new(Recorded::new(Event {
        id: kept.id,
        kind: Kind::Message,
        room: code.to_string(),
        name: kept.name,
        text: Some(text.as_str().to_owned()),
        ts: kept.ts,
        ..Event::default()
    })))
}
