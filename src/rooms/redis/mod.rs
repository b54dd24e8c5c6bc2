//! The `--redis` backend: several nodes, one chat. Rooms, their history,
//! presence and sessions live in Redis ([`client`]), and this node's
//! registry is a cache in front of it: a room is taken in when someone
//! asks for it, and its events come from the node's [`reader`] through
//! [`Cache::deliver`], out on the same broadcast channels as locally.
//! Limits and stream counts stay per node, in the registry.
//!
//! Each room is a few keys sharing the hash tag `{CODE}`, all expiring
//! together a room TTL after the last activity:
//! - `roomcast:{CODE}`: the room exists (created at, in ms);
//! - `…:seq`, `…:log`: its last id, and its events as a Redis Stream whose
//!   entry ids are `0-1`, `0-2`, … so an SSE id is the same plain integer
//!   on every node, and Last-Event-ID and `since=` work anywhere;
//! - `…:members`, `…:here`: who is in the room, and on which node;
//! - `…:names`: which session holds which name.
//!
//! Every change is one Lua script, so it is atomic: an event's id, its
//! entry and the room's expiry move together, and a 201 is only ever sent
//! for an event Redis has taken.

pub mod client;
pub mod reader;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use log::info;

use super::backend::{
    gap, Backend, Opening, Pending, Post, StreamStart, Task, Window, CODE_ATTEMPTS,
};
use super::error::RoomError;
use super::presence::{Members, Tally};
use super::room::Room;
use super::state::{Rooms, State};
use crate::client::VisitorKey;
use crate::model::{Event, Kind, MemberChange, Name, Recorded, RoomCode, Update};
use crate::session::{Session, SessionId};
use crate::shutdown::Shutdown;
use crate::store::now_ms;
use client::{Naming, Redis, RedisError};

impl From<RedisError> for RoomError {
    fn from(err: RedisError) -> RoomError {
        match err {
            RedisError::Unreachable => RoomError::Unreachable,
            RedisError::Refused(why) => RoomError::Store(why),
        }
    }
}

/// The backend: Redis, and this node's cache of it.
pub struct Shared {
    redis: Redis,
    /// This node's cache.
    rooms: Arc<Rooms>,
}

impl Shared {
    pub fn new(redis: Redis, rooms: Arc<Rooms>) -> Shared {
        Shared { redis, rooms }
    }

    /// Takes a room kept in Redis into the cache, its events after
    /// `last_id` to come from the reader, which is woken to follow it.
    fn adopt(&self, code: &RoomCode, last_id: u64, members: Vec<Name>) {
        let mut state = self.rooms.lock();
        if state.rooms.contains_key(code) {
            return;
        }
        let mut room = Room::new(last_id);
        room.members = Members::of(members);
        state.rooms.insert(code.clone(), room);
        drop(state);
        self.redis.wake_reader();
    }

    /// Redis says the room is gone: so is its cache entry, which ends its
    /// streams.
    fn forget(&self, code: &RoomCode) -> RoomError {
        self.rooms.lock().rooms.remove(code);
        RoomError::NotFound(code.clone())
    }

    /// The rooms this node has a say in: those with streams here, and
    /// those with members (someone's leave may be due).
    fn presence_report(&self) -> Vec<(RoomCode, bool, Vec<Name>)> {
        let state = self.rooms.lock();
        state
            .rooms
            .iter()
            .filter(|(_, room)| room.streams > 0 || !room.members.is_empty())
            .map(|(code, room)| (code.clone(), room.streams > 0, room.members.here()))
            .collect()
    }
}

impl Backend for Shared {
    /// Claims a free code in Redis, which every node then sees.
    fn create_room(&self, visitor: VisitorKey) -> Pending<'_, RoomCode> {
        Box::pin(async move {
            self.rooms.lock().admit_room(visitor)?;
            for _ in 0..CODE_ATTEMPTS {
                let code = RoomCode::random();
                if self.redis.create(&code, now_ms()).await? {
                    self.adopt(&code, 0, Vec::new());
                    return Ok(code);
                }
            }
            Err(RoomError::NoFreeCode)
        })
    }

    /// A room this node has not seen yet is looked up in Redis and taken
    /// into the cache.
    fn find<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, ()> {
        Box::pin(async move {
            if self.rooms.lock().rooms.contains_key(code) {
                return Ok(());
            }
            match self.redis.look(code).await? {
                Some((last_id, members)) => {
                    self.adopt(code, last_id, members);
                    Ok(())
                }
                None => Err(RoomError::NotFound(code.clone())),
            }
        })
    }

    fn open_session(
        &self,
        existing: Option<SessionId>,
        session: Session,
    ) -> Pending<'_, SessionId> {
        Box::pin(async move {
            let id = existing.unwrap_or_else(SessionId::random);
            match self.redis.name_session(id, &session).await? {
                Naming::Done => Ok(id),
                Naming::Taken => Err(RoomError::NameTaken(session.name)),
                Naming::RoomGone => Err(self.forget(&session.room)),
            }
        })
    }

    fn session(&self, id: SessionId) -> Pending<'_, Option<Session>> {
        Box::pin(async move { Ok(self.redis.session(id).await?) })
    }

    fn post<'a>(&'a self, post: Post<'a>) -> Pending<'a, Arc<Recorded>> {
        let (code, name, text) = (post.code, post.name, post.text);
        Box::pin(async move {
            self.rooms.lock().admit_post(code, post.visitor)?;
            let mut event = Event::new(0, Kind::Message, code, name, Some(text));
            let Some(id) = self.redis.append(code, &event).await? else {
                return Err(self.forget(code));
            };
            event.id = id;
            Ok(Arc::new(Recorded::new(event)))
        })
    }

    fn history<'a>(
        &'a self,
        code: &'a RoomCode,
        window: Window,
    ) -> Pending<'a, Vec<Arc<Recorded>>> {
        Box::pin(async move {
            match self.redis.history(code, window.since, window.limit).await? {
                Some(events) => Ok(events),
                None => Err(self.forget(code)),
            }
        })
    }

    /// Published on the room's channel; every node's reader (this one's
    /// too) hands it to the streams it has in the room.
    fn send_frame<'a>(&'a self, code: &'a RoomCode, frame: Bytes) -> Pending<'a, ()> {
        Box::pin(async move { Ok(self.redis.publish_frame(code, &frame).await?) })
    }

    fn members<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Vec<Name>> {
        Box::pin(async move {
            match self.redis.look(code).await? {
                Some((_, members)) => Ok(members),
                None => Err(self.forget(code)),
            }
        })
    }

    fn tally(&self) -> Tally {
        Tally::Here
    }

    fn subscribe<'a>(&'a self, start: StreamStart<'a>) -> Pending<'a, Opening> {
        let (code, since, member) = (start.code, start.since, start.member);
        Box::pin(async move {
            // Subscribed before history is read, so whatever the reader
            // sends later is either in the backlog (and skipped by id) or
            // after it: nothing falls between.
            let updates = {
                let state = self.rooms.lock();
                state.check_open()?;
                state.room(code)?.subscribe()
            };
            let Some((newest, members)) = self.redis.connect_stream(code, member).await? else {
                return Err(self.forget(code));
            };
            let since = since.map_or(newest, |since| since.min(newest));
            let Some(backlog) = self.redis.history(code, Some(since), usize::MAX).await? else {
                return Err(self.forget(code));
            };
            let first_kept = backlog.first().map_or(newest + 1, |e| e.event.id);
            Ok(Opening {
                since,
                missed: gap(since, first_kept),
                backlog,
                members: crate::model::members_frame(&members),
                updates,
            })
        })
    }

    fn announce_leave(&self, _state: &mut State, _code: &RoomCode, _name: &Name) {
        // Never called: with Redis the grace runs there (see keep_presence).
    }

    fn room_expired(&self, _state: &mut State, code: &RoomCode) {
        info!("room {code} left this node's cache"); // Redis expires it on its own.
    }

    /// Tells Redis this node is alive and who has streams here, room by
    /// room; the scripts announce the leaves whose grace is over.
    fn keep_presence(&self) -> Pending<'_, ()> {
        Box::pin(async move {
            if self.redis.heartbeat().await.is_err() {
                return Ok(()); // Logged once by the client; the next tick tries again.
            }
            let now = now_ms();
            for (code, streams_here, here) in self.presence_report() {
                self.redis
                    .settle_presence(&code, streams_here, &here, now)
                    .await?;
            }
            Ok(())
        })
    }

    fn reader(&self, shutdown: Shutdown) -> Option<Task> {
        let (redis, rooms) = (self.redis.clone(), self.rooms.clone());
        Some(Box::pin(async move {
            let logs = reader::run(redis.clone(), Cache(rooms.clone()), shutdown.clone());
            let frames = reader::follow_frames(redis, Cache(rooms), shutdown);
            tokio::join!(logs, frames);
        }))
    }

    fn finish(&self) -> Pending<'_, ()> {
        Box::pin(async move {
            self.redis.depart().await;
            Ok(())
        })
    }

    fn reachable(&self) -> Option<bool> {
        Some(self.redis.is_up())
    }
}

/// This node's cache of rooms, as the reader feeds it.
pub struct Cache(pub Arc<Rooms>);

impl reader::Follower for Cache {
    fn cursors(&self) -> Vec<(RoomCode, u64)> {
        let state = self.0.lock();
        let rooms = state.rooms.iter();
        rooms
            .map(|(code, r)| (code.clone(), r.published_id))
            .collect()
    }

    fn deliver_frame(&self, code: &RoomCode, frame: Bytes) {
        if let Ok(room) = self.0.lock().room(code) {
            room.send(Update::Frame(frame));
        }
    }

    /// Events read from a room's log go out to every stream here; joins
    /// and leaves update the members.
    fn deliver(&self, code: &RoomCode, events: Vec<Arc<Recorded>>) {
        let mut state = self.0.lock();
        let Ok(room) = state.room_mut(code) else {
            return; // Forgotten meanwhile.
        };
        let fresh: Vec<_> = events
            .into_iter()
            .filter(|e| e.event.id > room.published_id)
            .collect();
        for event in &fresh {
            let change = event.event.kind.member_change();
            match (change, Name::parse(&event.event.name)) {
                (Some(MemberChange::Joined), Ok(name)) => room.members.joined(name),
                (Some(MemberChange::Left), Ok(name)) => room.members.left(&name),
                _ => {}
            }
        }
        if fresh.is_empty() {
            return;
        }
        self.0.metrics.appended(fresh.len() as u64);
        room.publish(fresh, 0);
        room.touched(Instant::now());
    }
}
