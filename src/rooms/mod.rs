//! The room registry: which rooms exist, their ids and recent history, who
//! is in them, the sessions that name people, and the per-room broadcast
//! channel that feeds every open stream.
//!
//! [`Registry`] is a thin facade: it checks admission, then makes one call
//! into the [`backend`] that keeps the rooms ([`local`]: this process with
//! SQLite or memory; [`redis`]: Redis, shared by several nodes). (A post
//! or a new room is admitted by the backend, in the same hold of the lock
//! that gives its id or code.) What is in memory lives under one lock, in [`state`]; the other
//! files hold plain data kept there: [`room`] (one room's ring, channel and
//! frames), [`roster`] (who takes part), [`sessions`] (who holds which
//! name in which room),
//! [`admission`] (rate limits and stream counts). [`guard`] is what each
//! open stream holds; [`settings`] and [`error`] what the registry takes
//! and gives.

pub mod admission;
mod backend;
mod error;
mod guard;
mod history;
mod local;
pub mod redis;
mod room;
mod roster;
mod sessions;
mod settings;
mod state;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::info;
use tokio::task::JoinHandle;

use crate::client::VisitorKey;
use crate::metrics::{Gauges, Metrics};
use crate::model::amend::Amend;
use crate::model::{sse_frame, Names, PostKey, Recorded, RoomCode, RoomKey, Text, Words};
use crate::session::{Participation, Session, SessionId};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
pub use backend::{Amended, Opening};
use backend::{Amendment, Backend, Join, Post, Search, Window};
pub use error::RoomError;
pub use guard::StreamGuard;
pub use history::Bounds;
pub use settings::Settings;
use state::Rooms;

/// What an open stream is made of: where it starts in each room it follows
/// (one, or several for a multiplexed stream), and the guard that gives
/// back what it was counted for when it is dropped.
pub struct Subscription {
    pub openings: Vec<(RoomCode, Opening)>,
    pub guard: StreamGuard,
    pub metrics: Arc<Metrics>,
}

/// How often one session's typing in one room is passed on at most.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);

/// A cheap, cloneable handle on the one shared registry.
#[derive(Clone)]
pub struct Registry {
    // One Arc, so a clone (every request clones the routes, and with them
    // the registry, once per filter) is one atomic increment.
    inner: Arc<Inner>,
}

struct Inner {
    rooms: Arc<Rooms>,
    backend: Box<dyn Backend>,
}

impl Registry {
    /// Rooms kept by this process in `store`: loads every stored room and
    /// starts the writer thread. Blocking: call it before serving or from
    /// `spawn_blocking`.
    pub fn open_local(settings: Settings, store: Box<dyn Store>) -> Result<Registry, StoreError> {
        let local = local::Local::open(settings, store)?;
        Ok(Registry::of(local.rooms().clone(), Box::new(local)))
    }

    /// Rooms kept in Redis: the registry starts empty and takes rooms in
    /// as they are asked for; [`Registry::spawn_tasks`] starts the reader
    /// that feeds them.
    pub fn open_redis(settings: Settings, redis: redis::client::Redis) -> Registry {
        let rooms = Arc::new(Rooms::new(settings, Default::default()));
        Registry::of(rooms.clone(), Box::new(redis::Shared::new(redis, rooms)))
    }

    fn of(rooms: Arc<Rooms>, backend: Box<dyn Backend>) -> Registry {
        Registry {
            inner: Arc::new(Inner { rooms, backend }),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.rooms.metrics
    }

    pub fn gauges(&self) -> Gauges {
        let state = self.inner.rooms.lock();
        let redis_up = self.inner.backend.reachable();
        Gauges {
            rooms: state.rooms.len(),
            rooms_stored: redis_up.is_none().then_some(state.codes.len()),
            streams: state.admission.streams(),
            history_bytes: state.budget.bytes,
            redis_up,
        }
    }

    /// Whether the backend is reachable, for one that can be out of reach.
    /// Whether a request from `ip` may name a code now: not while its
    /// allowance for codes that are no room is spent.
    pub fn may_name_a_code(&self, ip: IpAddr) -> Result<(), RoomError> {
        self.inner.rooms.lock().admission.may_name_a_code(ip)
    }

    /// What to answer `ip` for `err`: a code that is no room spends from
    /// its miss allowance, and once that is spent the answer is 429, not
    /// 404 (so guessing codes runs at the allowance's rate).
    pub fn charge_miss(&self, ip: IpAddr, err: RoomError) -> RoomError {
        if !matches!(err, RoomError::NotFound(_) | RoomError::Ended(..)) {
            return err;
        }
        match self.inner.rooms.lock().admission.missed(ip) {
            Ok(()) => err,
            Err(limited) => limited,
        }
    }

    pub fn reachable(&self) -> Option<bool> {
        self.inner.backend.reachable()
    }

    /// Makes a room with a fresh code, unique among live rooms, and returns
    /// once it is stored.
    pub async fn create_room(&self, visitor: VisitorKey) -> Result<RoomCode, RoomError> {
        // Admitted by the backend, in the hold of the lock that takes the
        // code, so concurrent creations cannot pass --max-rooms together.
        let code = self.inner.backend.create_room(visitor, None).await?;
        info!("room {code} created");
        Ok(code)
    }

    /// [`Registry::create_room`], for a private room: joining it needs the
    /// key returned with its code.
    pub async fn create_private_room(
        &self,
        visitor: VisitorKey,
    ) -> Result<(RoomCode, RoomKey), RoomError> {
        let key = RoomKey::random();
        let code = self
            .inner
            .backend
            .create_room(visitor, Some(key.clone()))
            .await?;
        info!("private room {code} created");
        Ok((code, key))
    }

    /// Ok if the room exists, else `NotFound`.
    pub async fn require_room(&self, code: &RoomCode) -> Result<(), RoomError> {
        self.inner.backend.find(code).await.map(|_| ())
    }

    /// The room's key if it is private (for its participants' invite link).
    pub async fn room_key(&self, code: &RoomCode) -> Result<Option<RoomKey>, RoomError> {
        self.inner.backend.find(code).await
    }

    /// Makes `part` a participant of `code`, in `session` (a browser's or
    /// a script's, if it has one that is live) or a new one; returns the
    /// session and the part it has there. Refuses a name someone else
    /// holds in the room (or one that looks like it), and another name
    /// for a session that is in the room already.
    pub async fn join(
        &self,
        code: &RoomCode,
        session: Option<SessionId>,
        part: &Participation,
        key: Option<&str>,
        visitor: VisitorKey,
    ) -> Result<(SessionId, Participation), RoomError> {
        // Whether a code is a room shows in a join's answer: a code that is
        // none spends from the address's miss allowance.
        self.may_name_a_code(visitor.address)?;
        let join = Join {
            code,
            session,
            part,
            key,
            visitor,
        };
        let joined = self.inner.backend.join(join).await;
        joined.map_err(|err| self.charge_miss(visitor.address, err))
    }

    /// Ends session `id`'s part in `code`: its name there is free again.
    pub async fn leave(&self, id: SessionId, code: &RoomCode) -> Result<(), RoomError> {
        self.inner.backend.leave(id, code).await
    }

    /// A one-time link (its secret) that signs another browser in to
    /// session `id`, for ten minutes.
    pub async fn link_device(&self, id: SessionId) -> Result<String, RoomError> {
        self.inner.backend.link_device(id).await
    }

    /// The session a device link names, using the link up; `None` if it
    /// was used, is too old, or never was.
    pub async fn use_device_link(&self, secret: &str) -> Result<Option<SessionId>, RoomError> {
        self.inner.backend.use_device_link(secret).await
    }

    /// The session `id` names, if it is live (this counts as its use).
    pub async fn session(&self, id: SessionId) -> Result<Option<Arc<Session>>, RoomError> {
        self.inner.backend.session(id).await
    }

    /// The rooms `session` is in that still exist, each with the name it
    /// has there and the time of its newest event, newest activity first.
    pub async fn rooms_of(
        &self,
        session: &Session,
    ) -> Result<Vec<(RoomCode, Participation, Option<Arc<Recorded>>)>, RoomError> {
        let mut found = Vec::with_capacity(session.rooms.len());
        for (code, part) in &session.rooms {
            match self.history(code, None, 1).await {
                Ok(newest) => found.push((code.clone(), part.clone(), newest.into_iter().next())),
                // Gone since the session was read.
                Err(RoomError::NotFound(_) | RoomError::Ended(..)) => {}
                Err(err) => return Err(err),
            }
        }
        // RFC 3339 times in UTC sort as text; a room with no event last.
        let time = |newest: &Option<Arc<Recorded>>| newest.as_ref().map(|e| e.event.ts.clone());
        found.sort_by_key(|room| std::cmp::Reverse(time(&room.2)));
        Ok(found)
    }

    /// Stores a message and sends it to every stream; returns once both
    /// are done. With `key`, a message this session stored under the same
    /// key within the window is returned instead (stored once, published
    /// once), and the key with other text is refused.
    pub async fn post(
        &self,
        code: &RoomCode,
        session: SessionId,
        text: &Text,
        key: Option<&PostKey>,
        visitor: VisitorKey,
    ) -> Result<Arc<Recorded>, RoomError> {
        // Admitted by the backend, in the same hold of the lock that gives
        // the message its id: one lock fewer per post, which showed in the
        // benchmark's posts/memory p99.
        let post = Post {
            code,
            session,
            text,
            key,
            visitor,
        };
        self.inner.backend.post(post).await
    }

    /// Session `session` makes `amend` to message `target` (see
    /// [`Amendment`]).
    pub async fn amend(
        &self,
        code: &RoomCode,
        session: SessionId,
        target: u64,
        amend: &Amend,
        visitor: VisitorKey,
    ) -> Result<Amended, RoomError> {
        let amendment = Amendment {
            code,
            session,
            target,
            amend,
            visitor,
        };
        self.inner.backend.amend(amendment).await
    }

    /// The newest `limit` messages with `words` (below `before`), newest
    /// first.
    pub async fn search(
        &self,
        code: &RoomCode,
        words: Words,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<Recorded>>, RoomError> {
        let search = Search {
            words,
            before,
            limit,
        };
        self.inner.backend.search(code, search).await
    }

    /// History after `since` (or the newest events if `None`), oldest
    /// first, at most `limit` of them.
    pub async fn history(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<Recorded>>, RoomError> {
        let window = Window {
            since,
            before: None,
            limit,
        };
        self.inner.backend.history(code, window).await
    }

    /// The newest `limit` events before the id `before`, oldest first:
    /// history paged backwards.
    pub async fn history_before(
        &self,
        code: &RoomCode,
        before: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Recorded>>, RoomError> {
        let window = Window {
            since: None,
            before: Some(before),
            limit,
        };
        self.inner.backend.history(code, window).await
    }

    /// Sends a frame that is not history (no id, never kept or replayed)
    /// to every stream open on the room, on every node, but those of the
    /// session it is `from` (if any): `event` names it (a constant of
    /// ours, so no user text reaches the `event:` line) and `json` is its
    /// data.
    pub async fn send_frame(
        &self,
        code: &RoomCode,
        event: &'static str,
        json: &str,
        from: Option<SessionId>,
    ) -> Result<(), RoomError> {
        self.require_room(code).await?;
        let frame = sse_frame(None, event, json);
        let from = from.map(|id| id.number());
        self.inner.backend.send_frame(code, frame, from).await
    }

    /// `session` is typing in the room as `name` (a speaker's: the
    /// caller checked): every other stream there hears it, at most once
    /// per [`TYPING_EVERY`] for each session and room (more are dropped,
    /// not refused: a page says it as often as keys are pressed).
    pub async fn typing(
        &self,
        code: &RoomCode,
        session: SessionId,
        name: &crate::model::Name,
    ) -> Result<(), RoomError> {
        let now = Instant::now();
        {
            let mut state = self.inner.rooms.lock();
            let said = state.typing.get(&(code.clone(), session.number()));
            if said.is_some_and(|at| now.saturating_duration_since(*at) < TYPING_EVERY) {
                return Ok(());
            }
            state.typing.insert((code.clone(), session.number()), now);
        }
        let json = serde_json::json!({ "room": code.as_str(), "name": name.as_str() });
        self.send_frame(code, "typing", &json.to_string(), Some(session))
            .await
    }

    /// Who is in the room: members and watchers, each sorted by name.
    pub async fn members(&self, code: &RoomCode) -> Result<Names, RoomError> {
        self.inner.backend.members(code).await
    }

    /// Opens a stream on the room, resuming after `since`. (Who may is the
    /// routes' business: a participant.)
    pub async fn subscribe(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        visitor: VisitorKey,
    ) -> Result<Subscription, RoomError> {
        self.follow(&[(code.clone(), since)], visitor).await
    }

    /// Opens one stream on several rooms, each resuming after its own
    /// point: counted as one stream against the visitor's allowance, and
    /// as one open stream in each room.
    pub async fn follow(
        &self,
        rooms: &[(RoomCode, Option<u64>)],
        visitor: VisitorKey,
    ) -> Result<Subscription, RoomError> {
        for (code, _) in rooms {
            self.require_room(code).await?;
        }
        let codes: Vec<RoomCode> = rooms.iter().map(|(code, _)| code.clone()).collect();
        {
            let mut state = self.inner.rooms.lock();
            state.check_open()?;
            let state = &mut *state;
            if let Some(gone) = codes.iter().find(|code| !state.rooms.contains_key(*code)) {
                // Ended since it was found (or never was).
                return Err(RoomError::missing(gone, state.ended.get(gone)));
            }
            state.admission.admit_stream(visitor)?;
            // Counted only once nothing can fail: the guard gives it back.
            state.admission.stream_opened(visitor);
            for code in &codes {
                if let Some(room) = state.rooms.get_mut(code) {
                    if room.stream_opened(visitor.session.map(|id| id.number())) {
                        state.presence_changed.insert(code.clone());
                    }
                }
            }
        }
        // From here on, dropping the guard gives back what was counted.
        let guard = StreamGuard::new(self.inner.rooms.clone(), codes, visitor);
        let mut openings = Vec::with_capacity(rooms.len());
        for (code, since) in rooms {
            let opening = self
                .inner
                .backend
                .subscribe(code, *since, visitor.session)
                .await?;
            openings.push((code.clone(), opening));
        }
        Ok(Subscription {
            openings,
            guard,
            metrics: self.inner.rooms.metrics.clone(),
        })
    }

    /// Ends sessions unused for longer than the session TTL (announcing
    /// their leaves), ends rooms idle for longer than the room TTL with
    /// everyone's part in them (their codes reserved for `ended_ttl`), lets
    /// memory go of rooms and sessions unused for `--unload-after`, and
    /// forgets what visitors left behind. (What memory does not hold ends
    /// in [`Backend::keep_rooms`], which runs after.)
    /// `now_ms` is the wall clock (sessions are kept across restarts),
    /// `now` the same moment on the monotonic one.
    pub fn sweep(&self, now: Instant, now_ms: u64) {
        let Settings {
            room_ttl,
            ended_ttl,
            session_ttl,
            unload_after,
            ..
        } = self.inner.rooms.settings;
        let mut state = self.inner.rooms.lock();
        let cutoff_ms = now_ms.saturating_sub(session_ttl.as_millis() as u64);
        let ended = state.sessions.take_unused(cutoff_ms);
        if !ended.is_empty() {
            self.inner.backend.sessions_ended(&mut state, ended);
        }
        for (code, private) in state.take_expired(now, room_ttl) {
            self.inner.backend.room_expired(&mut state, &code, private);
        }
        for code in state.take_freed(now_ms, ended_ttl) {
            self.inner.backend.code_freed(&mut state, &code);
        }
        for (code, room) in state.take_idle(now, unload_after) {
            self.inner.backend.room_unloaded(&mut state, &code, &room);
        }
        let unused_since = now_ms.saturating_sub(unload_after.as_millis() as u64);
        let state = &mut *state;
        let rooms = &state.rooms;
        let idle = (state.sessions).take_idle(unused_since, |code| rooms.contains_key(code));
        if !idle.is_empty() {
            state.session_unloads += 1;
        }
        for (id, used_ms) in idle {
            self.inner.backend.session_unloaded(state, id, used_ms);
        }
        state.links.retain(|_, (_, until)| now < *until);
        state
            .typing
            .retain(|_, at| now.saturating_duration_since(*at) < TYPING_EVERY);
        state.admission.forget_idle();
    }

    /// Starts what runs beside the requests until shutdown: the sweeper,
    /// and with Redis the reader that feeds the rooms.
    pub fn spawn_tasks(&self, shutdown: Shutdown) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(self.clone().run_sweeper(shutdown.clone())),
            tokio::spawn(self.clone().run_members_flusher(shutdown.clone())),
        ];
        if let Some(reading) = self.inner.backend.reader(shutdown) {
            tasks.push(tokio::spawn(reading));
        }
        tasks
    }

    /// Runs [`Registry::sweep`] often enough that expiry happens within a
    /// fifth of its delay, until shutdown.
    async fn run_sweeper(self, mut shutdown: Shutdown) {
        let Settings {
            room_ttl,
            session_ttl,
            ..
        } = self.inner.rooms.settings;
        let tick = (room_ttl.min(session_ttl) / 5)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.wait() => break,
            }
            self.sweep(Instant::now(), crate::store::now_ms());
            tokio::select! {
                // A failure was logged by the backend; the next tick tries again.
                _ = self.inner.backend.keep_rooms() => {}
                _ = shutdown.wait() => break,
            }
        }
    }

    /// Every [`room::MEMBERS_EVERY`] until shutdown: tells the backend of
    /// the rooms where someone came online or went away (it sends their
    /// new `members` frames), then sends the frames that waited their turn.
    async fn run_members_flusher(self, mut shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(room::MEMBERS_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.wait() => break,
            }
            let changed = {
                let mut state = self.inner.rooms.lock();
                state.settle_away(Instant::now());
                std::mem::take(&mut state.presence_changed)
            };
            if !changed.is_empty() {
                tokio::select! {
                    // A failure was logged; the next sweep says it again.
                    _ = self.inner.backend.presence_changed(changed) => {}
                    _ = shutdown.wait() => break,
                }
            }
            self.inner.rooms.lock().flush_members();
        }
    }

    /// Refuses new rooms, posts and streams from now on, and tells every
    /// open stream to end.
    pub fn close(&self) {
        self.inner.rooms.close();
    }

    /// Closes, lets the backend keep everything queued, and waits for it.
    pub async fn finish(&self) {
        self.close();
        // Nothing is left to answer; a failure was logged where it happened.
        let _ = self.inner.backend.finish().await;
    }
}

#[cfg(test)]
pub(crate) mod tests;
