//! One room in memory: its ids, its newest history ([`Ring`]), its
//! broadcast sender and the frames it sends, its roster. Pure: no lock, no I/O
//! (the registry holds it under its one lock, see [`super::state`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::history::Ring;
use super::roster::Roster;
use crate::model::{
    members_frame, Event, Kind, Name, Names, Recorded, RoomCode, RoomKey, Text, Update,
};
use crate::store::{now_ms, StoredRoom};

/// How many updates a stream may fall behind before it is closed and must
/// resume from history. Every room allocates this many slots up front.
/// An update carries all of a room's events from one commit (up to
/// [`EVENTS_PER_UPDATE`]), so under load the channel spans many more
/// events than slots.
const CHANNEL_CAPACITY: usize = 256;

/// Join and leave notices a room gets at most: this many at once, then
/// one per [`NOTICE_EVERY`] (about 30 a minute). Past it people still come
/// and go (the members frame says so), without a line in the history each:
/// a crowd cannot fill a room's history with notices.
pub const NOTICE_BURST: f64 = 30.0;
pub const NOTICE_EVERY: Duration = Duration::from_secs(2);

/// The least time between two `members` frames of one room.
pub const MEMBERS_EVERY: Duration = Duration::from_millis(100);

/// Most events in one update, which bounds what a busy room's channel
/// keeps alive: 256 slots of 64 events.
const EVENTS_PER_UPDATE: usize = 64;

pub struct Room {
    /// The last id given out, stored or on its way to the store.
    pub last_id: u64,
    /// The last id stored and published.
    pub published_id: u64,
    /// The newest published events memory holds (locally; with Redis,
    /// none: Redis is read).
    pub history: Ring,
    /// Made when the first stream subscribes: until then nobody listens,
    /// and an empty room does without the channel's slots (256 of them,
    /// most of an idle room's memory).
    updates: OnceLock<broadcast::Sender<Update>>,
    /// Who takes part (locally; with Redis, Redis keeps it).
    pub roster: Roster,
    /// A private room's key: joining needs it.
    pub key: Option<RoomKey>,
    /// Open streams.
    pub streams: usize,
    /// Since when nobody has been connected and nothing was said, if so.
    pub idle_since: Option<Instant>,
    /// When a request last asked for the room (it stays in memory a while
    /// after: see [`Room::may_unload`]).
    pub seen: Instant,
    /// When the last `members` frame went out, and the newest one waiting
    /// (see [`Room::send_members`]).
    members_sent: Option<Instant>,
    members_due: Option<Bytes>,
    /// Open streams per session (by number), for [`Room::end_streams_of`].
    readers: HashMap<u128, usize>,
    /// Notices the room may still make, as of when.
    notices: (f64, Instant),
    /// Edits, deletes and reactions queued and not yet published: what
    /// the next one sees its message as (locally; see `local::amend`).
    pub amending: Vec<Arc<Recorded>>,
    /// How many were ever queued: a read of a message from the store is
    /// made again if another change was queued meanwhile.
    pub amendments: u64,
}

impl Room {
    pub fn new(last_id: u64) -> Room {
        Room {
            last_id,
            published_id: last_id,
            history: Ring::default(),
            updates: OnceLock::new(),
            roster: Roster::default(),
            key: None,
            streams: 0,
            idle_since: Some(Instant::now()),
            seen: Instant::now(),
            members_sent: None,
            members_due: None,
            readers: HashMap::new(),
            notices: (NOTICE_BURST, Instant::now()),
            amending: Vec::new(),
            amendments: 0,
        }
    }

    /// A stored room with its participants, idle since its last activity
    /// (it has no streams yet), holding none of its history yet.
    pub fn restore(stored: StoredRoom) -> Room {
        let mut room = Room::new(stored.last_id);
        room.key = stored.key;
        let idle_for = Duration::from_millis(now_ms().saturating_sub(stored.last_activity_ms));
        room.idle_since = Some(
            Instant::now()
                .checked_sub(idle_for)
                .unwrap_or_else(Instant::now),
        );
        room.history = Ring::forgetting(stored.last_id);
        for (id, part) in &stored.participants {
            room.roster.add(part, id.number());
        }
        room
    }

    /// The room's next event; its id is taken once it is queued.
    pub fn next_event(
        &self,
        code: &RoomCode,
        kind: Kind,
        name: &Name,
        text: Option<&Text>,
    ) -> Arc<Recorded> {
        let event = Event::new(self.last_id + 1, kind, code, name, text);
        Arc::new(Recorded::new(event))
    }

    /// Stored events, in id order, go to every stream (whoever keeps
    /// them in memory does so apart: [`super::state::State::remember`]).
    pub fn publish(&mut self, events: &[Arc<Recorded>]) {
        let Some(last) = events.last() else {
            return;
        };
        self.published_id = last.event.id;
        if self.updates.get().is_none() {
            return; // nobody has ever listened: nothing to build
        }
        for run in events.chunks(EVENTS_PER_UPDATE) {
            self.send(Update::Events(run.into()));
        }
    }

    /// Sends `update` to every stream of the room.
    pub fn send(&self, update: Update) {
        // An error only means nobody is listening right now.
        if let Some(updates) = self.updates.get() {
            let _ = updates.send(update);
        }
    }

    /// Sends the room's `members` frame, at most one per [`MEMBERS_EVERY`]:
    /// one asked for sooner waits, the newest replacing any before it,
    /// until [`Room::flush_members`]. A crowd arriving at once is then a
    /// frame per tenth of a second, not one per arrival, and cannot push
    /// the room's streams past their channel's capacity. True if it waits.
    pub fn send_members(&mut self, frame: Bytes, now: Instant) -> bool {
        let recent = self
            .members_sent
            .is_some_and(|sent| now < sent + MEMBERS_EVERY);
        if recent {
            self.members_due = Some(frame);
            return true;
        }
        self.members_sent = Some(now);
        self.members_due = None;
        self.send(Update::Members(frame));
        false
    }

    /// Sends the waiting `members` frame once its turn has come; true if
    /// one still waits.
    pub fn flush_members(&mut self, now: Instant) -> bool {
        match self.members_due.take() {
            Some(frame) => self.send_members(frame, now),
            None => false,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates
            .get_or_init(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// The oldest id memory holds, or the next one if it holds none.
    pub fn first_held(&self) -> u64 {
        self.history.first_id().unwrap_or(self.published_id + 1)
    }

    /// A stream opened (a session's, if `session`): the room is no longer
    /// idle. True if it is that session's first here: it is online now.
    pub fn stream_opened(&mut self, session: Option<u128>) -> bool {
        self.streams += 1;
        self.idle_since = None;
        let Some(session) = session else {
            return false;
        };
        let open = self.readers.entry(session).or_default();
        *open += 1;
        *open == 1
    }

    /// A stream closed; the idle clock starts if it was the last. (A room
    /// made again under the code of one that expired never counted the
    /// old room's streams: nothing goes below zero.) True if it was its
    /// session's last here: it is away now.
    pub fn stream_closed(&mut self, session: Option<u128>, now: Instant) -> bool {
        self.streams = self.streams.saturating_sub(1);
        self.touched(now);
        let Some(session) = session else {
            return false;
        };
        let Some(open) = self.readers.get_mut(&session) else {
            return false;
        };
        *open -= 1;
        if *open > 0 {
            return false;
        }
        self.readers.remove(&session);
        true
    }

    /// The sessions with a stream open here, by number.
    pub fn online(&self) -> impl Iterator<Item = u128> + '_ {
        self.readers.keys().copied()
    }

    /// Who is in the room (as this node knows it: with Redis, Redis
    /// does), each online or away.
    pub fn names(&self) -> Names {
        self.roster.names(&self.readers)
    }

    /// The `members` frame of [`Room::names`].
    pub fn members_frame(&self, code: &RoomCode) -> Bytes {
        members_frame(code, &self.names())
    }

    /// Whether a join or leave may be announced now (see
    /// [`NOTICE_BURST`]); takes one if so.
    pub fn may_announce(&mut self, now: Instant) -> bool {
        let (tokens, at) = self.notices;
        let refilled = now.saturating_duration_since(at).as_secs_f64() / NOTICE_EVERY.as_secs_f64();
        let tokens = (tokens + refilled).min(NOTICE_BURST);
        let announce = tokens >= 1.0;
        self.notices = (if announce { tokens - 1.0 } else { tokens }, now);
        announce
    }

    /// Ends the session's open streams here, if it has any (a crowd
    /// leaving with no streams open sends nothing down the channel).
    pub fn end_streams_of(&self, session: u128) {
        if self.readers.contains_key(&session) {
            self.send(Update::Left(session));
        }
    }

    /// Whether memory may let go of the room at `now` (it stays stored):
    /// nobody connected, nothing said or asked for since `after`, every
    /// event queued published, no `members` frame waiting.
    pub fn may_unload(&self, now: Instant, after: Duration) -> bool {
        let quiet = |since: Instant| now.saturating_duration_since(since) >= after;
        self.streams == 0
            && self.idle_since.is_some_and(quiet)
            && quiet(self.seen)
            && self.last_id == self.published_id
            && self.members_due.is_none()
    }

    /// Something happened in the room: its idle clock starts now, unless
    /// someone is connected.
    pub fn touched(&mut self, now: Instant) {
        if self.streams == 0 {
            self.idle_since = Some(now);
        }
    }
}

impl AsMut<Ring> for Room {
    fn as_mut(&mut self) -> &mut Ring {
        &mut self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Name {
        Name::parse(n).unwrap()
    }

    #[test]
    fn a_commit_goes_out_as_one_update() {
        let code = RoomCode::parse("ABCD").unwrap();
        let mut room = Room::new(0);
        let mut updates = room.subscribe();
        let event = |id, kind, text: Option<&str>| {
            let text = text.map(|t| Text::parse(t).unwrap());
            Arc::new(Recorded::new(Event::new(
                id,
                kind,
                &code,
                &name("al"),
                text.as_ref(),
            )))
        };
        let batch = vec![
            event(1, Kind::Message, Some("one")),
            event(2, Kind::Join, None),
            event(3, Kind::Message, Some("two")),
            event(4, Kind::Message, Some("three")),
        ];
        room.publish(&batch);
        let mut seen = Vec::new();
        while let Ok(update) = updates.try_recv() {
            seen.push(match update {
                Update::Events(events) => format!(
                    "{:?}",
                    events.iter().map(|e| e.event.id).collect::<Vec<_>>()
                ),
                Update::Members(_) | Update::Frame(..) => "frame".to_string(),
                Update::Left(_) => "left".to_string(),
                Update::Close => "close".to_string(),
            });
        }
        assert_eq!(seen, ["[1, 2, 3, 4]"]);
        assert_eq!(room.published_id, 4);
    }
}
