//! The room registry: which rooms exist, their ids and history, who is in
//! them, the sessions that name people, and the per-room broadcast channel
//! that feeds every open stream. This is the only place with a lock.
//!
//! Everything lives behind one `std::sync::Mutex`. A std mutex is right here
//! because it is never held across an `.await`: each method takes it, does a
//! few map operations and a non-blocking `broadcast::send`, and lets go.
//! Sending under the lock is what keeps ids and fan-out in the same order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::info;
use tokio::sync::broadcast;

use crate::model::{members_json, Event, Kind, Name, Recorded, RoomCode, Text, Update};
use crate::session::{Session, SessionId};
use crate::shutdown::Shutdown;

/// How many updates a stream may fall behind before it is closed and must
/// resume from history. Every room allocates this many slots up front.
const CHANNEL_CAPACITY: usize = 256;

/// How many random codes to try before saying no free code was found.
const CODE_ATTEMPTS: usize = 64;

/// The registry's knobs, taken from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub history: usize,
    pub leave_grace: Duration,
    pub room_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    NotFound(RoomCode),
    NoFreeCode,
    ShuttingDown,
}

/// A cheap, cloneable handle on the one shared registry.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomCode, Room>,
    sessions: HashMap<SessionId, Session>,
    closing: bool,
}

struct Room {
    next_id: u64,
    history: VecDeque<Arc<Recorded>>,
    updates: broadcast::Sender<Update>,
    /// Members by name, including those gone less than the leave grace.
    members: BTreeMap<Name, Member>,
    /// Open streams, members and silent followers alike.
    streams: usize,
    /// Since when nobody has been connected and nothing was said, if so.
    idle_since: Option<Instant>,
}

#[derive(Default)]
struct Member {
    streams: usize,
    /// When the last stream of this member closed, while it has none.
    gone_since: Option<Instant>,
}

/// What a new stream starts from: everything after its resume point, the
/// member list, and a receiver subscribed at that same instant, so nothing
/// falls between history and live updates and nothing comes twice.
pub struct Subscription {
    /// The effective resume point: live updates at or below it are skipped.
    pub since: u64,
    /// Set when the resume point is older than the history still kept:
    /// the ids `missed.0..=missed.1` are gone for good.
    pub missed: Option<(u64, u64)>,
    pub backlog: Vec<Arc<Recorded>>,
    pub members: Arc<str>,
    pub updates: broadcast::Receiver<Update>,
    pub presence: Presence,
}

/// Held by an open stream; dropping it (the client went away, the stream
/// ended) tells the registry, which starts the leave grace if it was the
/// member's last stream.
pub struct Presence {
    registry: Registry,
    room: RoomCode,
    member: Option<Name>,
}

impl Presence {
    pub fn room(&self) -> &RoomCode {
        &self.room
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.registry.disconnect(&self.room, self.member.as_ref());
    }
}

impl Registry {
    pub fn new(settings: Settings) -> Registry {
        Registry {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should that ever change,
        // the maps are still consistent enough to keep serving.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes a room with a fresh code, unique among live rooms.
    pub fn create_room(&self) -> Result<RoomCode, RoomError> {
        let mut state = self.state();
        if state.closing {
            return Err(RoomError::ShuttingDown);
        }
        let code = (0..CODE_ATTEMPTS)
            .map(|_| RoomCode::random())
            .find(|code| !state.rooms.contains_key(code))
            .ok_or(RoomError::NoFreeCode)?;
        state.rooms.insert(code.clone(), Room::new());
        info!("room {code} created");
        Ok(code)
    }

    pub fn room_exists(&self, code: &RoomCode) -> bool {
        self.state().rooms.contains_key(code)
    }

    /// Names `name` in `room` for this browser: updates the session it
    /// already has, or starts a new one.
    pub fn open_session(&self, existing: Option<SessionId>, session: Session) -> SessionId {
        let mut state = self.state();
        let id = existing
            .filter(|id| state.sessions.contains_key(id))
            .unwrap_or_else(SessionId::random);
        state.sessions.insert(id, session);
        id
    }

    pub fn session(&self, id: SessionId) -> Option<Session> {
        self.state().sessions.get(&id).cloned()
    }

    /// Appends a message to the room's history and sends it to every stream.
    pub fn post(
        &self,
        code: &RoomCode,
        name: &Name,
        text: &Text,
    ) -> Result<Arc<Recorded>, RoomError> {
        let history = self.shared.settings.history;
        let mut state = self.state();
        if state.closing {
            return Err(RoomError::ShuttingDown);
        }
        let room = state.room_mut(code)?;
        if room.streams == 0 {
            room.idle_since = Some(Instant::now());
        }
        Ok(room.record(code, Kind::Message, name, Some(text), history))
    }

    /// History after `since` (or the newest events if `None`), oldest
    /// first, at most `limit` of them.
    pub fn history(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<Recorded>>, RoomError> {
        let state = self.state();
        let room = state.room(code)?;
        let events = match since {
            Some(since) => room.after(since).take(limit).cloned().collect(),
            None => {
                let skip = room.history.len().saturating_sub(limit);
                room.history.iter().skip(skip).cloned().collect()
            }
        };
        Ok(events)
    }

    /// Names of the room's members, sorted.
    pub fn members(&self, code: &RoomCode) -> Result<Vec<Name>, RoomError> {
        Ok(self.state().room(code)?.members.keys().cloned().collect())
    }

    /// Opens a stream on the room, resuming after `since`. A stream with a
    /// `member` name makes that person present (`join` on arrival); one
    /// without is a silent follower.
    pub fn subscribe(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        member: Option<Name>,
    ) -> Result<Subscription, RoomError> {
        let history = self.shared.settings.history;
        let mut state = self.state();
        if state.closing {
            return Err(RoomError::ShuttingDown);
        }
        let room = state.room_mut(code)?;
        // An id from the future (a client of an earlier server) resumes
        // from now rather than skipping events until the ids catch up. A
        // stream with no resume point starts live, with its own join.
        let newest = room.next_id - 1;
        let since = since.map_or(newest, |since| since.min(newest));
        room.streams += 1;
        room.idle_since = None;
        if let Some(name) = &member {
            let arrived = room.connect_member(name);
            if arrived {
                info!("{name} joined {code}");
                room.record(code, Kind::Join, name, None, history);
                room.send_members();
            }
        }
        let first_kept = room.history.front().map_or(room.next_id, |e| e.event.id);
        let missed = (since + 1 < first_kept).then(|| (since + 1, first_kept - 1));
        let backlog = room.after(since).cloned().collect();
        Ok(Subscription {
            since,
            missed,
            backlog,
            members: room.members_json(),
            updates: room.updates.subscribe(),
            presence: Presence {
                registry: self.clone(),
                room: code.clone(),
                member,
            },
        })
    }

    /// A stream closed: start the member's leave grace and the room's idle
    /// clock if it was the last one.
    fn disconnect(&self, code: &RoomCode, member: Option<&Name>) {
        let mut state = self.state();
        let Some(room) = state.rooms.get_mut(code) else {
            return; // The room expired or the server is closing.
        };
        let now = Instant::now();
        room.streams -= 1;
        if room.streams == 0 {
            room.idle_since = Some(now);
        }
        if let Some(member) = member.and_then(|name| room.members.get_mut(name)) {
            member.streams -= 1;
            if member.streams == 0 {
                member.gone_since = Some(now);
            }
        }
    }

    /// Announces the leaves whose grace is over and removes rooms idle for
    /// longer than the room TTL, with their sessions.
    pub fn sweep(&self, now: Instant) {
        let Settings {
            history,
            leave_grace,
            room_ttl,
        } = self.shared.settings;
        let mut state = self.state();
        for (code, room) in state.rooms.iter_mut() {
            let gone: Vec<Name> = room
                .members
                .iter()
                .filter(|(_, m)| m.gone_since.is_some_and(|t| now - t >= leave_grace))
                .map(|(name, _)| name.clone())
                .collect();
            for name in &gone {
                room.members.remove(name);
                info!("{name} left {code}");
                room.record(code, Kind::Leave, name, None, history);
            }
            if !gone.is_empty() {
                room.send_members();
            }
        }
        let expired: Vec<RoomCode> = state
            .rooms
            .iter()
            .filter(|(_, room)| room.idle_since.is_some_and(|t| now - t >= room_ttl))
            .map(|(code, _)| code.clone())
            .collect();
        for code in &expired {
            state.rooms.remove(code);
            info!("room {code} removed after {room_ttl:?} with nobody connected");
        }
        if !expired.is_empty() {
            state.sessions.retain(|_, s| !expired.contains(&s.room));
        }
    }

    /// Runs [`Registry::sweep`] often enough that leaves and expiry happen
    /// within a fifth of their delay, until shutdown.
    pub async fn run_sweeper(self, mut shutdown: Shutdown) {
        let Settings {
            leave_grace,
            room_ttl,
            ..
        } = self.shared.settings;
        let tick = (leave_grace.min(room_ttl) / 5)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.sweep(Instant::now()),
                _ = shutdown.wait() => break,
            }
        }
    }

    /// Refuses new rooms, posts and streams from now on; open streams end
    /// through their own shutdown handle.
    pub fn close(&self) {
        let mut state = self.state();
        if !state.closing {
            state.closing = true;
            info!(
                "closing {} rooms with {} open streams",
                state.rooms.len(),
                state.rooms.values().map(|r| r.streams).sum::<usize>()
            );
        }
    }
}

impl State {
    fn room(&self, code: &RoomCode) -> Result<&Room, RoomError> {
        self.rooms
            .get(code)
            .ok_or_else(|| RoomError::NotFound(code.clone()))
    }

    fn room_mut(&mut self, code: &RoomCode) -> Result<&mut Room, RoomError> {
        self.rooms
            .get_mut(code)
            .ok_or_else(|| RoomError::NotFound(code.clone()))
    }
}

impl Room {
    fn new() -> Room {
        let (updates, _) = broadcast::channel(CHANNEL_CAPACITY);
        Room {
            next_id: 1,
            history: VecDeque::new(),
            updates,
            members: BTreeMap::new(),
            streams: 0,
            idle_since: Some(Instant::now()),
        }
    }

    /// Gives the event the next id, keeps it in history and sends it.
    fn record(
        &mut self,
        code: &RoomCode,
        kind: Kind,
        name: &Name,
        text: Option<&Text>,
        history: usize,
    ) -> Arc<Recorded> {
        let event = Event::new(self.next_id, kind, code, name, text);
        self.next_id += 1;
        let recorded = Arc::new(Recorded::new(event));
        self.history.push_back(recorded.clone());
        while self.history.len() > history {
            self.history.pop_front();
        }
        // An error only means nobody is listening right now.
        let _ = self.updates.send(Update::Event(recorded.clone()));
        recorded
    }

    /// History events with an id above `since`.
    fn after(&self, since: u64) -> impl Iterator<Item = &Arc<Recorded>> {
        let start = self.history.partition_point(|e| e.event.id <= since);
        self.history.range(start..)
    }

    /// Counts a new stream of `name`; true if this is an arrival (not a
    /// second tab, nor a return within the leave grace).
    fn connect_member(&mut self, name: &Name) -> bool {
        let arrived = !self.members.contains_key(name);
        let member = self.members.entry(name.clone()).or_default();
        member.streams += 1;
        member.gone_since = None;
        arrived
    }

    fn members_json(&self) -> Arc<str> {
        members_json(self.members.keys())
    }

    fn send_members(&self) {
        // An error only means nobody is listening right now.
        let _ = self.updates.send(Update::Members(self.members_json()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(leave_grace_ms: u64, room_ttl_ms: u64) -> Registry {
        Registry::new(Settings {
            history: 1000,
            leave_grace: Duration::from_millis(leave_grace_ms),
            room_ttl: Duration::from_millis(room_ttl_ms),
        })
    }

    fn name(n: &str) -> Name {
        Name::parse(n).unwrap()
    }

    fn kinds(registry: &Registry, code: &RoomCode) -> Vec<Kind> {
        let history = registry.history(code, Some(0), usize::MAX).unwrap();
        history.iter().map(|e| e.event.kind).collect()
    }

    #[test]
    fn sweep_announces_leaves_after_the_grace_only() {
        let registry = registry(1000, 60_000);
        let code = registry.create_room().unwrap();
        let start = Instant::now();
        let tab = registry.subscribe(&code, None, Some(name("al"))).unwrap();
        drop(tab);
        registry.sweep(start + Duration::from_millis(500));
        assert_eq!(kinds(&registry, &code), vec![Kind::Join]);
        registry.sweep(Instant::now() + Duration::from_millis(1001));
        assert_eq!(kinds(&registry, &code), vec![Kind::Join, Kind::Leave]);
        assert!(registry.members(&code).unwrap().is_empty());
    }

    #[test]
    fn sweep_removes_idle_rooms_and_their_sessions() {
        let registry = registry(10, 1000);
        let code = registry.create_room().unwrap();
        let session = Session {
            name: name("al"),
            room: code.clone(),
        };
        let id = registry.open_session(None, session);
        let stream = registry.subscribe(&code, None, None).unwrap();
        registry.sweep(Instant::now() + Duration::from_secs(10));
        assert!(registry.room_exists(&code), "a room with a stream lives on");
        drop(stream);
        registry.sweep(Instant::now() + Duration::from_millis(999));
        assert!(registry.room_exists(&code));
        registry.sweep(Instant::now() + Duration::from_millis(1001));
        assert!(!registry.room_exists(&code));
        assert!(registry.session(id).is_none());
    }

    #[test]
    fn a_closing_registry_refuses_new_work() {
        let registry = registry(10, 1000);
        let code = registry.create_room().unwrap();
        registry.close();
        assert_eq!(registry.create_room(), Err(RoomError::ShuttingDown));
        let text = Text::parse("hi").unwrap();
        assert_eq!(
            registry.post(&code, &name("al"), &text).unwrap_err(),
            RoomError::ShuttingDown
        );
        assert!(registry.subscribe(&code, None, None).is_err());
    }
}
