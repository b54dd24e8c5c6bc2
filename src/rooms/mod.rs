//! The room registry: which rooms exist, their ids and recent history, who
//! is in them, the sessions that name people, and the per-room broadcast
//! channel that feeds every open stream. This is the only place with a lock.
//!
//! Everything lives behind one `std::sync::Mutex`. A std mutex is right here
//! because it is never held across an `.await`: each method takes it, does a
//! few map operations and a non-blocking send, and lets go.
//!
//! Every history event takes this path: under the lock it gets the room's
//! next id and joins the writer's queue (so queue order is id order); the
//! writer stores a batch in one transaction and hands it back to
//! `publish`, which appends it to the in-memory history and broadcasts it,
//! still in id order. Only then does the poster get its 201.
//!
//! With `--redis` ([`Cluster`]) the rooms live in Redis and this registry
//! is the node's cache of them: ids, history, members and sessions come
//! from Redis, events arrive through the node's reader ([`Registry::deliver`])
//! and go out on the same broadcast channels; limits and stream counts stay
//! per node, here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};
use tokio::sync::{broadcast, oneshot};

use crate::cluster::{Cluster, Naming};
use crate::limits::{self, Buckets, Rate, VisitorKey};
use crate::metrics::{Gauges, Metrics};
use crate::model::{members_frame, timestamp, Event, Kind, Name, Recorded, RoomCode, Text, Update};
use crate::session::{Session, SessionId};
use crate::shutdown::Shutdown;
use crate::store::writer::{self, Job};
use crate::store::{now_ms, Change, Store, StoreError, StoredRoom};

/// How many updates a stream may fall behind before it is closed and must
/// resume from history. Every room allocates this many slots up front.
/// An update carries all of a room's events from one commit (up to
/// [`EVENTS_PER_UPDATE`]), so under load the channel spans many more
/// events than slots.
const CHANNEL_CAPACITY: usize = 256;

/// Most events in one update, which bounds what a busy room's channel
/// keeps alive: 256 slots of 64 events.
const EVENTS_PER_UPDATE: usize = 64;

/// How many random codes to try before saying no free code was found.
const CODE_ATTEMPTS: usize = 64;

/// The registry's knobs, taken from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub history: usize,
    /// Open streams allowed at once, over all rooms.
    pub max_streams: usize,
    /// Open streams allowed at once for one visitor.
    pub max_streams_per_visitor: usize,
    /// Live rooms allowed at once.
    pub max_rooms: usize,
    /// Posts per visitor.
    pub post_rate: Rate,
    /// Rooms created per visitor.
    pub room_rate: Rate,
    pub leave_grace: Duration,
    pub room_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    NotFound(RoomCode),
    NoFreeCode,
    ShuttingDown,
    /// `--max-streams` are open already.
    TooManyStreams,
    /// `--max-rooms` are live already.
    TooManyRooms,
    /// Another session in the room, still present, has this name.
    NameTaken(Name),
    /// This visitor has `--max-streams-per-visitor` open already.
    TooManyStreamsForVisitor,
    /// This visitor's bucket is empty; a token comes after this long.
    RateLimited(Duration),
    /// The writer's queue is full: too much at once.
    Busy,
    /// The store refused or failed; nothing was kept.
    Store(String),
    /// Redis (with `--redis`) cannot be reached; nothing was changed.
    Unreachable,
}

/// A cheap, cloneable handle on the one shared registry.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    metrics: Arc<Metrics>,
    /// With `--redis`: where the rooms really are.
    cluster: Option<Cluster>,
    state: Mutex<State>,
}

struct State {
    rooms: HashMap<RoomCode, Room>,
    sessions: HashMap<SessionId, Session>,
    closing: bool,
    /// Open streams over all rooms.
    streams: usize,
    /// Open streams per visitor (only visitors with some).
    streams_by_visitor: HashMap<VisitorKey, usize>,
    post_buckets: Buckets,
    room_buckets: Buckets,
    /// The writer's queue; `None` once it has been shut.
    writer: Option<SyncSender<Job>>,
    writer_thread: Option<JoinHandle<()>>,
}

struct Room {
    /// The last id given out, stored or on its way to the store.
    last_id: u64,
    /// The last id stored and published.
    published_id: u64,
    /// The newest published events, at most `history` of them.
    history: VecDeque<Arc<Recorded>>,
    updates: broadcast::Sender<Update>,
    /// Members by name, including those gone less than the leave grace.
    /// (With Redis, kept from the join and leave events read.)
    members: BTreeMap<Name, Member>,
    /// With Redis: this node's streams per member, which its heartbeat
    /// reports (alone, a member's streams are counted in `members`).
    here: HashMap<Name, usize>,
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
    /// The opening `members` frame.
    pub members: bytes::Bytes,
    pub updates: broadcast::Receiver<Update>,
    pub presence: Presence,
    pub metrics: Arc<Metrics>,
}

/// Held by an open stream; dropping it (the client went away, the stream
/// ended) tells the registry, which starts the leave grace if it was the
/// member's last stream.
pub struct Presence {
    registry: Registry,
    room: RoomCode,
    member: Option<Name>,
    visitor: VisitorKey,
}

impl Presence {
    pub fn room(&self) -> &RoomCode {
        &self.room
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.registry
            .disconnect(&self.room, self.member.as_ref(), self.visitor);
    }
}

impl Registry {
    /// Loads every stored room and starts the writer thread. Blocking: call
    /// it before serving or from `spawn_blocking`.
    pub fn open(settings: Settings, mut store: Box<dyn Store>) -> Result<Registry, StoreError> {
        let stored = store.load(settings.history)?;
        let rooms: HashMap<RoomCode, Room> = stored
            .into_iter()
            .map(|room| (room.code.clone(), Room::restore(room)))
            .collect();
        if !rooms.is_empty() {
            info!("loaded {} rooms from the store", rooms.len());
        }
        let history = settings.history;
        let shared = Arc::new_cyclic(|shared: &Weak<Shared>| {
            let shared = shared.clone();
            let (writer, writer_thread) = writer::spawn(store, history, move |changes| {
                if let Some(shared) = shared.upgrade() {
                    publish(&shared, changes);
                }
            });
            let mut state = State::new(&settings);
            state.rooms = rooms;
            state.writer = Some(writer);
            state.writer_thread = Some(writer_thread);
            Shared {
                settings,
                metrics: Arc::default(),
                cluster: None,
                state: Mutex::new(state),
            }
        });
        Ok(Registry { shared })
    }

    /// A registry in front of rooms kept in Redis: it starts empty and
    /// takes rooms in as they are asked for. Start [`crate::cluster::reader`]
    /// beside it, or no event reaches a stream.
    pub fn open_shared(settings: Settings, cluster: Cluster) -> Registry {
        let state = Mutex::new(State::new(&settings));
        let shared = Shared {
            settings,
            metrics: Arc::default(),
            cluster: Some(cluster),
            state,
        };
        Registry {
            shared: Arc::new(shared),
        }
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.shared.cluster.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    pub fn gauges(&self) -> Gauges {
        let state = self.state();
        Gauges {
            rooms: state.rooms.len(),
            streams: state.streams,
            redis_up: self.cluster().map(Cluster::is_up),
        }
    }

    /// Makes a room with a fresh code, unique among live rooms, and returns
    /// once it is stored.
    pub async fn create_room(&self, visitor: VisitorKey) -> Result<RoomCode, RoomError> {
        if let Some(cluster) = self.cluster() {
            self.state().admit_room(&self.shared.settings, visitor)?;
            return self.create_shared_room(cluster).await;
        }
        let (code, stored) = {
            let mut state = self.state();
            state.admit_room(&self.shared.settings, visitor)?;
            let code = (0..CODE_ATTEMPTS)
                .map(|_| RoomCode::random())
                .find(|code| !state.rooms.contains_key(code))
                .ok_or(RoomError::NoFreeCode)?;
            let at_ms = now_ms();
            let change = Change::CreateRoom {
                code: code.clone(),
                at_ms,
            };
            let stored = state.enqueue_awaited(change)?;
            state.rooms.insert(code.clone(), Room::new(0));
            (code, stored)
        };
        match outcome(stored).await {
            Ok(()) => {
                info!("room {code} created");
                Ok(code)
            }
            Err(err) => {
                self.state().rooms.remove(&code);
                Err(err)
            }
        }
    }

    /// Claims a free code in Redis, which every node then sees.
    async fn create_shared_room(&self, cluster: &Cluster) -> Result<RoomCode, RoomError> {
        for _ in 0..CODE_ATTEMPTS {
            let code = RoomCode::random();
            if cluster.create(&code, now_ms()).await? {
                self.adopt(&code, 0, Vec::new());
                info!("room {code} created");
                return Ok(code);
            }
        }
        Err(RoomError::NoFreeCode)
    }

    /// Ok if the room exists. With Redis, a room this node has not seen yet
    /// is looked up there and taken into the cache.
    pub async fn find(&self, code: &RoomCode) -> Result<(), RoomError> {
        if self.state().rooms.contains_key(code) {
            return Ok(());
        }
        let Some(cluster) = self.cluster() else {
            return Err(RoomError::NotFound(code.clone()));
        };
        match cluster.look(code).await? {
            Some((last_id, members)) => {
                self.adopt(code, last_id, members);
                Ok(())
            }
            None => Err(RoomError::NotFound(code.clone())),
        }
    }

    /// Takes a room kept in Redis into the cache, its events after
    /// `last_id` to come from the reader, which is woken to follow it.
    fn adopt(&self, code: &RoomCode, last_id: u64, members: Vec<Name>) {
        let mut state = self.state();
        if state.rooms.contains_key(code) {
            return;
        }
        let mut room = Room::new(last_id);
        room.members = members
            .into_iter()
            .map(|n| (n, Member::default()))
            .collect();
        state.rooms.insert(code.clone(), room);
        drop(state);
        if let Some(cluster) = self.cluster() {
            cluster.wake_reader();
        }
    }

    /// Redis says the room is gone: so is its cache entry, which ends its
    /// streams.
    fn forget(&self, code: &RoomCode) -> RoomError {
        self.state().rooms.remove(code);
        RoomError::NotFound(code.clone())
    }

    /// Names `name` in `room` for this browser: updates the session it
    /// already has, or starts a new one.
    /// Refuses a name another session holds in that room while its member
    /// is there; a holder who has left loses the name to the newcomer (its
    /// session ends, so two people never share one).
    pub async fn open_session(
        &self,
        existing: Option<SessionId>,
        session: Session,
    ) -> Result<SessionId, RoomError> {
        if let Some(cluster) = self.cluster() {
            let id = existing.unwrap_or_else(SessionId::random);
            return match cluster.name_session(id, &session).await? {
                Naming::Done => Ok(id),
                Naming::Taken => Err(RoomError::NameTaken(session.name)),
                Naming::RoomGone => Err(self.forget(&session.room)),
            };
        }
        let mut state = self.state();
        let id = existing
            .filter(|id| state.sessions.contains_key(id))
            .unwrap_or_else(SessionId::random);
        let holder = state
            .sessions
            .iter()
            .find(|(other, s)| **other != id && **s == session)
            .map(|(other, _)| *other);
        if let Some(holder) = holder {
            let present = state
                .room(&session.room)?
                .members
                .contains_key(&session.name);
            if present {
                return Err(RoomError::NameTaken(session.name));
            }
            state.sessions.remove(&holder);
        }
        state.sessions.insert(id, session);
        Ok(id)
    }

    /// The session `id` names, if it is live.
    pub async fn session(&self, id: SessionId) -> Result<Option<Session>, RoomError> {
        match self.cluster() {
            Some(cluster) => cluster.session(id).await,
            None => Ok(self.state().sessions.get(&id).cloned()),
        }
    }

    /// Stores a message and sends it to every stream; returns once both
    /// are done.
    pub async fn post(
        &self,
        code: &RoomCode,
        name: &Name,
        text: &Text,
        visitor: VisitorKey,
    ) -> Result<Arc<Recorded>, RoomError> {
        if let Some(cluster) = self.cluster() {
            self.state().admit_post(code, visitor)?;
            let ts = timestamp();
            let Some(id) = cluster.post(code, name, &ts, text).await? else {
                return Err(self.forget(code));
            };
            let event = Event {
                ts,
                ..Event::new(id, Kind::Message, code, name, Some(text))
            };
            return Ok(Arc::new(Recorded::new(event)));
        }
        let (message, stored) = {
            let mut state = self.state();
            state.admit_post(code, visitor)?;
            let room = state.room(code)?;
            let message = room.next_event(code, Kind::Message, name, Some(text));
            let change = Change::Append {
                code: code.clone(),
                event: message.clone(),
                at_ms: now_ms(),
            };
            let stored = state.enqueue_awaited(change)?;
            let room = state.room_mut(code)?;
            room.last_id = message.event.id;
            if room.streams == 0 {
                room.idle_since = Some(Instant::now());
            }
            (message, stored)
        };
        outcome(stored).await?;
        Ok(message)
    }

    /// History after `since` (or the newest events if `None`), oldest
    /// first, at most `limit` of them.
    pub async fn history(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<Recorded>>, RoomError> {
        if let Some(cluster) = self.cluster() {
            return match cluster.history(code, since, limit).await? {
                Some(events) => Ok(events),
                None => Err(self.forget(code)),
            };
        }
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
    pub async fn members(&self, code: &RoomCode) -> Result<Vec<Name>, RoomError> {
        if let Some(cluster) = self.cluster() {
            return match cluster.look(code).await? {
                Some((_, members)) => Ok(members),
                None => Err(self.forget(code)),
            };
        }
        Ok(self.state().room(code)?.members.keys().cloned().collect())
    }

    /// Opens a stream on the room, resuming after `since`. A stream with a
    /// `member` name makes that person present (`join` on arrival); one
    /// without is a silent follower.
    pub async fn subscribe(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        member: Option<Name>,
        visitor: VisitorKey,
    ) -> Result<Subscription, RoomError> {
        let Some(cluster) = self.cluster() else {
            return self.subscribe_here(code, since, member, visitor);
        };
        self.find(code).await?;
        let (updates, presence) = {
            let mut state = self.state();
            state.admit_stream(&self.shared.settings, code, visitor)?;
            let room = state.room_mut(code)?;
            room.streams += 1;
            room.idle_since = None;
            if let Some(name) = &member {
                *room.here.entry(name.clone()).or_default() += 1;
            }
            let updates = room.updates.subscribe();
            state.count_stream(visitor);
            (updates, self.presence(code, member.clone(), visitor))
        };
        // From here on, dropping `presence` gives back what was counted.
        // The receiver is subscribed before history is read, so whatever
        // the reader sends later is either in the backlog (and skipped by
        // id) or after it: nothing falls between.
        let Some((newest, members)) = cluster.connect_stream(code, member.as_ref()).await? else {
            return Err(self.forget(code));
        };
        let since = since.map_or(newest, |since| since.min(newest));
        let Some(backlog) = cluster.history(code, Some(since), usize::MAX).await? else {
            return Err(self.forget(code));
        };
        let first_kept = backlog.first().map_or(newest + 1, |e| e.event.id);
        Ok(Subscription {
            since,
            missed: gap(since, first_kept),
            backlog,
            members: members_frame(&members),
            updates,
            presence,
            metrics: self.shared.metrics.clone(),
        })
    }

    fn presence(&self, code: &RoomCode, member: Option<Name>, visitor: VisitorKey) -> Presence {
        Presence {
            registry: self.clone(),
            room: code.clone(),
            member,
            visitor,
        }
    }

    /// [`Registry::subscribe`] on this node's own rooms.
    fn subscribe_here(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        member: Option<Name>,
        visitor: VisitorKey,
    ) -> Result<Subscription, RoomError> {
        let mut state = self.state();
        state.admit_stream(&self.shared.settings, code, visitor)?;
        let room = state.room_mut(code)?;
        // An id from the future (a client of another room that had this
        // code) resumes from now rather than skipping events until the ids
        // catch up. A stream with no resume point starts live, so it sees
        // its own join.
        let newest = room.published_id;
        let since = since.map_or(newest, |since| since.min(newest));
        room.streams += 1;
        room.idle_since = None;
        let arrived = member
            .as_ref()
            .is_some_and(|name| room.connect_member(name));
        let first_kept = room.history.front().map_or(newest + 1, |e| e.event.id);
        let subscription = Subscription {
            since,
            missed: gap(since, first_kept),
            backlog: room.after(since).cloned().collect(),
            members: room.members_frame(),
            updates: room.updates.subscribe(),
            presence: self.presence(code, member.clone(), visitor),
            metrics: self.shared.metrics.clone(),
        };
        state.count_stream(visitor);
        if let (true, Some(name)) = (arrived, &member) {
            info!("{name} joined {code}");
            state.record_notice(code, Kind::Join, name);
        }
        Ok(subscription)
    }

    /// A stream closed: start the member's leave grace and the room's idle
    /// clock if it was the last one.
    fn disconnect(&self, code: &RoomCode, member: Option<&Name>, visitor: VisitorKey) {
        let mut state = self.state();
        state.streams -= 1;
        if let Some(count) = state.streams_by_visitor.get_mut(&visitor) {
            *count -= 1;
            if *count == 0 {
                state.streams_by_visitor.remove(&visitor);
            }
        }
        let Ok(room) = state.room_mut(code) else {
            return; // The room expired or the server is closing.
        };
        let now = Instant::now();
        room.streams -= 1;
        if room.streams == 0 {
            room.idle_since = Some(now);
        }
        let Some(name) = member else {
            return;
        };
        if self.shared.cluster.is_some() {
            // The next heartbeat tells Redis; the leave grace runs there.
            if let Some(streams) = room.here.get_mut(name) {
                *streams -= 1;
                if *streams == 0 {
                    room.here.remove(name);
                }
            }
        } else if let Some(member) = room.members.get_mut(name) {
            member.streams -= 1;
            if member.streams == 0 {
                member.gone_since = Some(now);
            }
        }
    }

    /// Announces the leaves whose grace is over, removes rooms idle for
    /// longer than the room TTL with their history and sessions, and
    /// forgets rate-limit buckets that have refilled.
    pub fn sweep(&self, now: Instant) {
        let Settings {
            leave_grace,
            room_ttl,
            ..
        } = self.shared.settings;
        let mut state = self.state();
        let gone: Vec<(RoomCode, Name)> = state
            .rooms
            .iter()
            .flat_map(|(code, room)| {
                room.members
                    .iter()
                    .filter(|(_, m)| m.gone_since.is_some_and(|t| now - t >= leave_grace))
                    .map(|(name, _)| (code.clone(), name.clone()))
            })
            .collect();
        for (code, name) in gone {
            if let Ok(room) = state.room_mut(&code) {
                room.members.remove(&name);
            }
            info!("{name} left {code}");
            state.record_notice(&code, Kind::Leave, &name);
        }
        let expired: Vec<RoomCode> = state
            .rooms
            .iter()
            .filter(|(_, room)| room.idle_since.is_some_and(|t| now - t >= room_ttl))
            .map(|(code, _)| code.clone())
            .collect();
        for code in &expired {
            state.rooms.remove(code);
            if self.shared.cluster.is_some() {
                continue; // Redis expires it on its own.
            }
            if let Err(err) = state.enqueue(Change::DeleteRoom { code: code.clone() }, None) {
                warn!("room {code} expired but stays in the store until next start: {err:?}");
            }
            info!("room {code} removed after {room_ttl:?} with nobody connected");
        }
        if !expired.is_empty() {
            state.sessions.retain(|_, s| !expired.contains(&s.room));
        }
        // What visitors and rooms left behind goes back to the allocator.
        state.post_buckets.forget_idle(now);
        state.room_buckets.forget_idle(now);
        limits::shrink(&mut state.rooms);
        limits::shrink(&mut state.sessions);
        limits::shrink(&mut state.streams_by_visitor);
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
                _ = ticks.tick() => {}
                _ = shutdown.wait() => break,
            }
            self.sweep(Instant::now());
            if let Some(cluster) = self.cluster() {
                tokio::select! {
                    _ = self.keep_presence(cluster) => {}
                    _ = shutdown.wait() => break,
                }
            }
        }
    }

    /// Tells Redis this node is alive and who has streams here, room by
    /// room; the scripts announce the leaves whose grace is over.
    async fn keep_presence(&self, cluster: &Cluster) {
        if cluster.heartbeat().await.is_err() {
            return; // Logged once by the cluster; the next tick tries again.
        }
        let now = now_ms();
        for (code, streams_here, here) in self.presence_report() {
            if cluster
                .settle_presence(&code, streams_here, &here, now)
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Rooms this node has a say in: those with streams here, and those
    /// with members (someone's leave may be due).
    fn presence_report(&self) -> Vec<(RoomCode, bool, Vec<Name>)> {
        let state = self.state();
        state
            .rooms
            .iter()
            .filter(|(_, room)| room.streams > 0 || !room.members.is_empty())
            .map(|(code, room)| {
                let here = room.here.keys().cloned().collect();
                (code.clone(), room.streams > 0, here)
            })
            .collect()
    }

    /// With Redis: the rooms the reader follows, each with the last id it
    /// has delivered.
    pub fn cursors(&self) -> Vec<(RoomCode, u64)> {
        let state = self.state();
        let rooms = state.rooms.iter();
        rooms
            .map(|(code, r)| (code.clone(), r.published_id))
            .collect()
    }

    /// With Redis: events the reader read from a room's log, in id order,
    /// go out to every stream here; joins and leaves update the members.
    pub fn deliver(&self, code: &RoomCode, events: Vec<Arc<Recorded>>) {
        let mut state = self.state();
        let Ok(room) = state.room_mut(code) else {
            return; // Forgotten meanwhile.
        };
        let fresh: Vec<_> = events
            .into_iter()
            .filter(|e| e.event.id > room.published_id)
            .collect();
        for event in &fresh {
            if let Ok(name) = Name::parse(&event.event.name) {
                match event.event.kind {
                    Kind::Join => {
                        room.members.entry(name).or_default();
                    }
                    Kind::Leave => {
                        room.members.remove(&name);
                    }
                    Kind::Message => {}
                }
            }
        }
        if fresh.is_empty() {
            return;
        }
        self.shared.metrics.appended(fresh.len() as u64);
        room.publish(fresh, 0);
        if room.streams == 0 {
            room.idle_since = Some(Instant::now());
        }
    }

    /// Returns once every change queued so far is stored and published.
    pub async fn flush(&self) -> Result<(), RoomError> {
        if self.cluster().is_some() {
            return Ok(()); // Nothing waits: each change is in Redis when it returns.
        }
        let stored = self.state().enqueue_awaited(Change::Flush)?;
        outcome(stored).await
    }

    /// Refuses new rooms, posts and streams from now on, and tells every
    /// open stream to end.
    pub fn close(&self) {
        let mut state = self.state();
        if !state.closing {
            state.closing = true;
            info!(
                "closing {} rooms with {} open streams",
                state.rooms.len(),
                state.rooms.values().map(|r| r.streams).sum::<usize>()
            );
            for room in state.rooms.values() {
                // An error only means nobody is listening.
                room.send(Update::Close);
            }
        }
    }

    /// Closes, lets the writer store everything queued, and waits for it.
    pub async fn finish(&self) {
        self.close();
        let thread = {
            let mut state = self.state();
            state.writer = None; // The writer drains its queue, then ends.
            state.writer_thread.take()
        };
        if let Some(thread) = thread {
            // A panic in the writer was already printed; nothing more to do.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(cluster) = self.cluster() {
            cluster.depart().await;
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // Nothing panics while holding the lock; should that ever change, the
    // maps are still consistent enough to keep serving.
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Called by the writer thread with each stored batch, in queue order:
/// history events become visible and go out to every stream, each room's
/// share of the batch as one update.
fn publish(shared: &Shared, changes: &[Change]) {
    let mut by_room: HashMap<&RoomCode, Vec<Arc<Recorded>>> = HashMap::new();
    for change in changes {
        if let Change::Append { code, event, .. } = change {
            by_room.entry(code).or_default().push(event.clone());
        }
    }
    let history = shared.settings.history;
    let mut state = lock(shared);
    for (code, events) in by_room {
        // The room may have expired while the events were being stored.
        if let Ok(room) = state.room_mut(code) {
            shared.metrics.appended(events.len() as u64);
            room.publish(events, history);
        }
    }
}

/// The ids lost for good to a client resuming after `since` when the
/// oldest event still kept is `first_kept`, if any.
fn gap(since: u64, first_kept: u64) -> Option<(u64, u64)> {
    (since + 1 < first_kept).then(|| (since + 1, first_kept - 1))
}

/// Waits for the writer's answer on a change.
async fn outcome(stored: oneshot::Receiver<Result<(), StoreError>>) -> Result<(), RoomError> {
    match stored.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(RoomError::Store(err.to_string())),
        Err(_) => Err(RoomError::Store("the writer stopped".into())),
    }
}

impl State {
    fn new(settings: &Settings) -> State {
        State {
            rooms: HashMap::new(),
            sessions: HashMap::new(),
            closing: false,
            streams: 0,
            streams_by_visitor: HashMap::new(),
            post_buckets: Buckets::new(settings.post_rate),
            room_buckets: Buckets::new(settings.room_rate),
            writer: None,
            writer_thread: None,
        }
    }

    /// Whether this visitor may open one more stream on this room.
    fn admit_stream(
        &self,
        settings: &Settings,
        code: &RoomCode,
        visitor: VisitorKey,
    ) -> Result<(), RoomError> {
        self.check_open()?;
        self.room(code)?;
        if self.streams >= settings.max_streams {
            return Err(RoomError::TooManyStreams);
        }
        let visitor_streams = self.streams_by_visitor.get(&visitor).copied().unwrap_or(0);
        if visitor_streams >= settings.max_streams_per_visitor {
            return Err(RoomError::TooManyStreamsForVisitor);
        }
        Ok(())
    }

    /// Counts an open stream (given back by [`Registry::disconnect`]).
    fn count_stream(&mut self, visitor: VisitorKey) {
        self.streams += 1;
        *self.streams_by_visitor.entry(visitor).or_default() += 1;
    }

    /// Whether this visitor may post in this room now; takes its token.
    fn admit_post(&mut self, code: &RoomCode, visitor: VisitorKey) -> Result<(), RoomError> {
        self.check_open()?;
        self.room(code)?;
        self.post_buckets
            .take(visitor, Instant::now())
            .map_err(RoomError::RateLimited)
    }

    /// Whether this visitor may create a room now; takes its token.
    fn admit_room(&mut self, settings: &Settings, visitor: VisitorKey) -> Result<(), RoomError> {
        self.check_open()?;
        if self.rooms.len() >= settings.max_rooms {
            return Err(RoomError::TooManyRooms);
        }
        self.room_buckets
            .take(visitor, Instant::now())
            .map_err(RoomError::RateLimited)
    }

    fn check_open(&self) -> Result<(), RoomError> {
        if self.closing {
            Err(RoomError::ShuttingDown)
        } else {
            Ok(())
        }
    }

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

    /// Queues a change for the writer. Called with the lock held, so the
    /// queue order is the order ids were given out.
    fn enqueue(&self, change: Change, done: Option<writer::Done>) -> Result<(), RoomError> {
        let writer = self.writer.as_ref().ok_or(RoomError::ShuttingDown)?;
        writer
            .try_send(Job { change, done })
            .map_err(|err| match err {
                TrySendError::Full(_) => RoomError::Busy,
                TrySendError::Disconnected(_) => RoomError::Store("the writer stopped".into()),
            })
    }

    /// Queues a change and returns where its outcome will arrive.
    fn enqueue_awaited(
        &self,
        change: Change,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, RoomError> {
        let (done, stored) = oneshot::channel();
        self.enqueue(change, Some(done))?;
        Ok(stored)
    }

    /// Queues a join or leave; nobody waits for it, so a failure is logged.
    fn record_notice(&mut self, code: &RoomCode, kind: Kind, name: &Name) {
        let Ok(room) = self.room(code) else {
            return;
        };
        let event = room.next_event(code, kind, name, None);
        let id = event.event.id;
        let change = Change::Append {
            code: code.clone(),
            event,
            at_ms: now_ms(),
        };
        match self.enqueue(change, None) {
            Ok(()) => {
                if let Ok(room) = self.room_mut(code) {
                    room.last_id = id;
                }
            }
            Err(err) => warn!(
                "{name}'s {} in {code} was not recorded: {err:?}",
                kind.as_str()
            ),
        }
    }
}

impl Room {
    fn new(last_id: u64) -> Room {
        let (updates, _) = broadcast::channel(CHANNEL_CAPACITY);
        Room {
            last_id,
            published_id: last_id,
            history: VecDeque::new(),
            updates,
            members: BTreeMap::new(),
            here: HashMap::new(),
            streams: 0,
            idle_since: Some(Instant::now()),
        }
    }

    /// A stored room, idle since its last activity (it has no streams yet).
    fn restore(stored: StoredRoom) -> Room {
        let mut room = Room::new(stored.last_id);
        let idle_for = Duration::from_millis(now_ms().saturating_sub(stored.last_activity_ms));
        room.idle_since = Some(
            Instant::now()
                .checked_sub(idle_for)
                .unwrap_or_else(Instant::now),
        );
        room.history = stored.events.into_iter().map(Arc::new).collect();
        room
    }

    /// The room's next event; its id is taken once it is queued.
    fn next_event(
        &self,
        code: &RoomCode,
        kind: Kind,
        name: &Name,
        text: Option<&Text>,
    ) -> Arc<Recorded> {
        let event = Event::new(self.last_id + 1, kind, code, name, text);
        Arc::new(Recorded::new(event))
    }

    /// Stored events, in id order: keep them in history and send them to
    /// every stream; a join or leave also sends the new member list,
    /// right after it.
    fn publish(&mut self, events: Vec<Arc<Recorded>>, history: usize) {
        let mut run = Vec::with_capacity(events.len().min(EVENTS_PER_UPDATE));
        for event in events {
            self.published_id = event.event.id;
            self.history.push_back(event.clone());
            let notice = event.event.kind != Kind::Message;
            run.push(event);
            if notice || run.len() == EVENTS_PER_UPDATE {
                self.send_events(&mut run);
            }
            if notice {
                self.send(Update::Members(self.members_frame()));
            }
        }
        self.send_events(&mut run);
        while self.history.len() > history {
            self.history.pop_front();
        }
    }

    fn send_events(&self, run: &mut Vec<Arc<Recorded>>) {
        if !run.is_empty() {
            self.send(Update::Events(std::mem::take(run).into()));
        }
    }

    fn send(&self, update: Update) {
        // An error only means nobody is listening right now.
        let _ = self.updates.send(update);
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

    fn members_frame(&self) -> bytes::Bytes {
        members_frame(self.members.keys())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteStore, IN_MEMORY};

    pub(crate) fn registry(leave_grace_ms: u64, room_ttl_ms: u64) -> Registry {
        let lavish = Rate {
            burst: 1e9,
            per_second: 1e9,
        };
        let settings = Settings {
            history: 1000,
            max_streams: 100,
            max_streams_per_visitor: 100,
            max_rooms: 100,
            post_rate: lavish,
            room_rate: lavish,
            leave_grace: Duration::from_millis(leave_grace_ms),
            room_ttl: Duration::from_millis(room_ttl_ms),
        };
        let store = SqliteStore::open(IN_MEMORY).unwrap();
        Registry::open(settings, Box::new(store)).unwrap()
    }

    /// The visitor every request in these tests comes from.
    pub(crate) fn someone() -> VisitorKey {
        VisitorKey::Address(std::net::Ipv4Addr::LOCALHOST.into())
    }

    fn name(n: &str) -> Name {
        Name::parse(n).unwrap()
    }

    async fn kinds(registry: &Registry, code: &RoomCode) -> Vec<Kind> {
        registry.flush().await.unwrap();
        let history = registry.history(code, Some(0), usize::MAX).await.unwrap();
        history.iter().map(|e| e.event.kind).collect()
    }

    #[tokio::test]
    async fn sweep_announces_leaves_after_the_grace_only() {
        let registry = registry(1000, 60_000);
        let code = registry.create_room(someone()).await.unwrap();
        let start = Instant::now();
        let tab = registry
            .subscribe(&code, None, Some(name("al")), someone())
            .await
            .unwrap();
        drop(tab);
        registry.sweep(start + Duration::from_millis(500));
        assert_eq!(kinds(&registry, &code).await, vec![Kind::Join]);
        registry.sweep(Instant::now() + Duration::from_millis(1001));
        assert_eq!(kinds(&registry, &code).await, vec![Kind::Join, Kind::Leave]);
        assert!(registry.members(&code).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sweep_removes_idle_rooms_and_their_sessions() {
        let registry = registry(10, 1000);
        let code = registry.create_room(someone()).await.unwrap();
        let session = Session {
            name: name("al"),
            room: code.clone(),
        };
        let id = registry.open_session(None, session).await.unwrap();
        let stream = registry
            .subscribe(&code, None, None, someone())
            .await
            .unwrap();
        registry.sweep(Instant::now() + Duration::from_secs(10));
        assert!(
            registry.find(&code).await.is_ok(),
            "a room with a stream lives on"
        );
        drop(stream);
        registry.sweep(Instant::now() + Duration::from_millis(999));
        assert!(registry.find(&code).await.is_ok());
        registry.sweep(Instant::now() + Duration::from_millis(1001));
        assert!(registry.find(&code).await.is_err());
        assert!(registry.session(id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_closing_registry_refuses_new_work_and_finishes_its_queue() {
        let registry = registry(10, 1000);
        let code = registry.create_room(someone()).await.unwrap();
        let _stream = registry
            .subscribe(&code, None, Some(name("al")), someone())
            .await
            .unwrap();
        registry.close();
        assert_eq!(
            registry.create_room(someone()).await,
            Err(RoomError::ShuttingDown)
        );
        let text = Text::parse("hi").unwrap();
        let refused = registry.post(&code, &name("al"), &text, someone()).await;
        assert_eq!(refused.unwrap_err(), RoomError::ShuttingDown);
        assert!(registry
            .subscribe(&code, None, None, someone())
            .await
            .is_err());
        registry.finish().await;
        let history = registry.history(&code, Some(0), 10).await.unwrap();
        assert_eq!(history.len(), 1, "the queued join was stored and published");
    }

    #[tokio::test]
    async fn a_post_is_published_before_it_is_acknowledged() {
        let registry = registry(10, 1000);
        let code = registry.create_room(someone()).await.unwrap();
        let mut sub = registry
            .subscribe(&code, None, None, someone())
            .await
            .unwrap();
        let text = Text::parse("hi").unwrap();
        let posted = registry
            .post(&code, &name("al"), &text, someone())
            .await
            .unwrap();
        match sub.updates.try_recv() {
            Ok(Update::Events(events)) => assert_eq!(events[0].event.id, posted.event.id),
            other => panic!("not yet sent: {other:?}"),
        }
        assert_eq!(registry.history(&code, None, 10).await.unwrap().len(), 1);
    }

    #[test]
    fn a_commit_goes_out_as_one_update_with_members_after_each_join() {
        let code = RoomCode::parse("ABCD").unwrap();
        let mut room = Room::new(0);
        let mut updates = room.updates.subscribe();
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
        room.publish(batch, 3);
        let mut seen = Vec::new();
        while let Ok(update) = updates.try_recv() {
            seen.push(match update {
                Update::Events(events) => format!(
                    "{:?}",
                    events.iter().map(|e| e.event.id).collect::<Vec<_>>()
                ),
                Update::Members(_) => "members".to_string(),
                Update::Close => "close".to_string(),
            });
        }
        assert_eq!(seen, ["[1, 2]", "members", "[3, 4]"]);
        let kept: Vec<u64> = room.history.iter().map(|e| e.event.id).collect();
        assert_eq!(kept, [2, 3, 4], "history is trimmed to its length");
    }
}
