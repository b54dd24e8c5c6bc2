//! The `--redis` backend: several nodes, one chat. Rooms, their history,
//! participants and sessions live in Redis ([`client`]), and this node's
//! registry is a cache in front of it: a room is taken in when someone
//! asks for it, and its events come from the node's [`reader`] through
//! [`Cache::deliver`], out on the same broadcast channels as locally. Who
//! is in a room is Redis's alone: every change of it publishes the room's
//! `members` frame to every node's streams.
//! Limits and stream counts stay per node, in the registry.
//!
//! Each room is a few keys sharing the hash tag `{CODE}`, all expiring
//! together a room TTL after the last activity:
//! - `roomcast:{CODE}`: the room exists (created at, in ms);
//! - `…:seq`, `…:log`: its last id, and its events as a Redis Stream whose
//!   entry ids are `0-1`, `0-2`, … so an SSE id is the same plain integer
//!   on every node, and Last-Event-ID and `since=` work anywhere;
//! - `…:names`: who takes part: which session holds which name.
//!
//! Every change is one Lua script, so it is atomic: an event's id, its
//! entry and the room's expiry move together, and a 201 is only ever sent
//! for an event Redis has taken.

pub mod client;
mod entries;
pub mod reader;
mod rekey;
mod settle;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use log::info;

use super::backend::{
    gap, repeated, Amended, Amendment, Backend, Join, Opening, Pending, Post, Search, Task, Window,
    CODE_ATTEMPTS, DEVICE_LINK_TTL,
};
use super::error::RoomError;
use super::room::Room;
use super::state::{Rooms, State};
use crate::client::VisitorKey;
use crate::model::{
    members_frame, timestamp, Event, Kind, Names, Recorded, RoomCode, RoomKey, Update,
};
use crate::session::{Participation, Session, SessionId};
use crate::shutdown::Shutdown;
use crate::store::now_ms;
use crate::store::writer::Reads;
use client::{Amending, Joining, Leaving, Posting, Redis, RedisError};
use settle::settled;

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
    /// Searches under way on this node: each is many reads, so at most
    /// [`READS_LIMIT`](crate::store::writer::READS_LIMIT) run at once (past it, 503).
    searches: Reads,
}

impl Shared {
    pub fn new(redis: Redis, rooms: Arc<Rooms>) -> Shared {
        Shared {
            redis,
            rooms,
            searches: Reads::default(),
        }
    }

    /// Takes a room kept in Redis into the cache, its events after
    /// `last_id` to come from the reader, which is woken to follow it.
    fn adopt(&self, code: &RoomCode, last_id: u64, key: Option<RoomKey>) {
        let mut state = self.rooms.lock();
        if state.rooms.contains_key(code) {
            return;
        }
        let mut room = Room::new(last_id);
        room.key = key;
        state.rooms.insert(code.clone(), room);
        drop(state);
        self.redis.wake_reader();
    }

    /// Redis says the room is gone: so is its cache entry, which ends its
    /// streams.
    fn forget(&self, code: &RoomCode) {
        self.rooms.lock().rooms.remove(code);
    }

    /// [`Shared::forget`], and why it is gone: it ended, or never was.
    async fn gone(&self, code: &RoomCode) -> RoomError {
        self.forget(code);
        // Unreadable now, it is no room all the same.
        let ended = self.redis.ended(code).await.ok().flatten();
        RoomError::missing(code, ended.as_ref())
    }
}

impl Backend for Shared {
    /// Claims a free code in Redis, which every node then sees.
    fn create_room(&self, visitor: VisitorKey, key: Option<RoomKey>) -> Pending<'_, RoomCode> {
        Box::pin(async move {
            self.rooms.lock().admit_room(visitor)?;
            let in_use = self.redis.codes_in_use().await?;
            let length = RoomCode::length_for(in_use, self.rooms.settings.short_codes);
            for _ in 0..CODE_ATTEMPTS {
                let code = RoomCode::random(length);
                if self.redis.create(&code, key.as_ref(), now_ms()).await? {
                    self.adopt(&code, 0, key);
                    return Ok(code);
                }
            }
            Err(RoomError::NoFreeCode)
        })
    }

    /// A room this node has not seen yet is looked up in Redis and taken
    /// into the cache; one that is not there may have ended.
    fn find<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Option<RoomKey>> {
        Box::pin(async move {
            if let Some(room) = self.rooms.lock().rooms.get_mut(code) {
                room.seen = std::time::Instant::now();
                return Ok(room.key.clone());
            }
            match self.redis.look(code).await? {
                Some(looked) => {
                    // (Redis keeps it all: letting a room go loses nothing.)
                    self.rooms
                        .lock()
                        .place_for_one_more(std::time::Instant::now())?;
                    self.rooms.metrics.room_loaded();
                    self.adopt(code, looked.last_id, looked.key.clone());
                    Ok(looked.key)
                }
                None => Err(self.gone(code).await),
            }
        })
    }

    /// One script checks the name and takes it, so two nodes can never
    /// give it to two people.
    fn join<'a>(&'a self, join: Join<'a>) -> Pending<'a, (SessionId, Participation)> {
        let Join {
            code,
            session,
            part,
            key,
            visitor,
        } = join;
        Box::pin(async move {
            let id = session.unwrap_or_else(SessionId::random);
            {
                // Charged before Redis is asked, which is not undone: a
                // refused join spends a join all the same.
                let mut state = self.rooms.lock();
                state.check_open()?;
                state.admission.admit_join(visitor)?;
            }
            let (joining, _) = settled(|| self.redis.join(code, id, part, key)).await?;
            match joining {
                Joining::Joined => Ok((id, part.clone())),
                Joining::Same(current) => Ok((id, current)),
                Joining::Already(name) => Err(RoomError::AlreadyIn(name)),
                Joining::Taken => Err(RoomError::NameTaken(part.name.clone())),
                Joining::Denied => Err(RoomError::NotFound(code.clone())),
                Joining::RoomGone => Err(self.gone(code).await),
            }
        })
    }

    fn leave<'a>(&'a self, id: SessionId, code: &'a RoomCode) -> Pending<'a, ()> {
        Box::pin(async move {
            self.rooms.lock().check_open()?;
            let (leaving, retried) = settled(|| self.redis.leave(code, id)).await?;
            let left = match leaving {
                Leaving::Left => true,
                // A retry that finds them out found the first try's work
                // (the handler saw them in the room).
                Leaving::NotIn => retried,
                Leaving::RoomGone => return Err(self.gone(code).await),
            };
            if !left {
                return Err(RoomError::NotParticipant);
            }
            // The script told every node's streams (see
            // `Cache::deliver_frame`); this node's at once, too.
            if let Ok(room) = self.rooms.lock().room(code) {
                room.end_streams_of(id.number());
            }
            Ok(())
        })
    }

    fn link_device(&self, id: SessionId) -> Pending<'_, String> {
        Box::pin(async move {
            let secret = RoomKey::random().as_str().to_string();
            self.redis.put_link(&secret, id, DEVICE_LINK_TTL).await?;
            Ok(secret)
        })
    }

    fn use_device_link<'a>(&'a self, secret: &'a str) -> Pending<'a, Option<SessionId>> {
        Box::pin(async move {
            let Some(id) = self.redis.take_link(secret).await? else {
                return Ok(None);
            };
            Ok(self.redis.session(id).await?.map(|_| id))
        })
    }

    fn session(&self, id: SessionId) -> Pending<'_, Option<Arc<Session>>> {
        Box::pin(async move { Ok(self.redis.session(id).await?.map(Arc::new)) })
    }

    fn post<'a>(&'a self, post: Post<'a>) -> Pending<'a, Arc<Recorded>> {
        let (code, text) = (post.code, post.text);
        Box::pin(async move {
            self.rooms.lock().admit_post(code, post.visitor)?;
            let ts = timestamp();
            match self
                .redis
                .post(code, post.session, text, post.key, &ts)
                .await?
            {
                Posting::Posted(id, name) => {
                    let mut event = Event::new(id, Kind::Message, code, &name, Some(text));
                    event.ts = ts; // the stored one, to the millisecond
                    event.author = Some(post.session.author());
                    Ok(Arc::new(Recorded::new(event)))
                }
                // (Only ever the answer to a post with a key.)
                Posting::Again(kept) => {
                    let digest = post.key.map_or("", |key| key.digest.as_str());
                    repeated(code, text, digest, kept)
                }
                Posting::NotIn => Err(RoomError::NotParticipant),
                Posting::RoomGone => Err(self.gone(code).await),
            }
        })
    }

    fn amend<'a>(&'a self, a: Amendment<'a>) -> Pending<'a, Amended> {
        Box::pin(async move {
            self.rooms.lock().admit_post(a.code, a.visitor)?;
            let ts = timestamp();
            match (self.redis)
                .amend(a.code, a.session, a.target, a.amend, &ts)
                .await?
            {
                Amending::Done(change, said, message) => {
                    let author = a.session.author();
                    let change = change.map(|(id, on)| {
                        let who = (&said, &author);
                        let change = Event::amendment(id, a.code, a.target, who, a.amend, on);
                        Arc::new(Recorded::new(Event {
                            ts: ts.clone(),
                            ..change
                        }))
                    });
                    let message = Arc::new(Recorded::new(*message));
                    Ok(Amended { change, message })
                }
                Amending::Refused(refused) => Err(RoomError::refused(a.target, refused)),
                Amending::NotIn => Err(RoomError::NotParticipant),
                Amending::RoomGone => Err(self.gone(a.code).await),
            }
        })
    }

    fn history<'a>(
        &'a self,
        code: &'a RoomCode,
        window: Window,
    ) -> Pending<'a, Vec<Arc<Recorded>>> {
        Box::pin(async move {
            let Window {
                since,
                before,
                limit,
            } = window;
            match self.redis.history(code, since, before, limit).await? {
                Some(events) => Ok(events),
                None => Err(self.gone(code).await),
            }
        })
    }

    /// A scan of the room's kept log, newest first, a page at a time
    /// (Redis keeps no index of words), until `limit` are found or the
    /// log's start is reached: at most the --history kept.
    fn search<'a>(&'a self, code: &'a RoomCode, search: Search) -> Pending<'a, Vec<Arc<Recorded>>> {
        const PAGE: usize = 500;
        Box::pin(async move {
            let _ticket = self.searches.take().ok_or(RoomError::Busy)?;
            let mut found = Vec::new();
            let mut before = search.before;
            while found.len() < search.limit {
                let Some(page) = self.redis.history(code, None, before, PAGE).await? else {
                    return Err(self.gone(code).await);
                };
                // Only an empty page is the log's start: one short of
                // PAGE may be short of an entry that did not decode.
                let Some(oldest) = page.first() else { break };
                before = Some(oldest.event.id);
                let hits = page.into_iter().rev().filter(|e| {
                    let text = e.event.text.as_deref();
                    e.event.kind == Kind::Message && text.is_some_and(|t| search.words.found_in(t))
                });
                found.extend(hits.take(search.limit - found.len()));
            }
            Ok(found)
        })
    }

    /// Published on the room's channel; every node's reader (this one's
    /// too) hands it to the streams it has in the room.
    /// Published with the sender's session number in front (see
    /// [`FROM_PREFIX`]), if any.
    fn send_frame<'a>(
        &'a self,
        code: &'a RoomCode,
        frame: Bytes,
        from: Option<u128>,
    ) -> Pending<'a, ()> {
        let message = match from {
            Some(from) => {
                let mut message = FROM_PREFIX.to_vec();
                message.extend_from_slice(format!("{from:032x} ").as_bytes());
                message.extend_from_slice(&frame);
                Bytes::from(message)
            }
            None => frame,
        };
        Box::pin(async move { Ok(self.redis.publish_frame(code, &message).await?) })
    }

    fn members<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Names> {
        Box::pin(async move {
            match self.redis.look(code).await? {
                Some(looked) => Ok(looked.names),
                None => Err(self.gone(code).await),
            }
        })
    }

    fn subscribe<'a>(
        &'a self,
        code: &'a RoomCode,
        since: Option<u64>,
        reader: Option<SessionId>,
    ) -> Pending<'a, Opening> {
        Box::pin(async move {
            // Subscribed before history is read, so whatever the reader
            // sends later is either in the backlog (and skipped by id) or
            // after it: nothing falls between.
            let updates = {
                let state = self.rooms.lock();
                state.check_open()?;
                state.room(code)?.subscribe()
            };
            // The reader is still in the room now that its leave would
            // reach this receiver: one that left since the handler looked
            // (a multiplexed stream opens its rooms one after another)
            // gets no stream of it.
            let mut reading = None;
            if let Some(reader) = reader {
                let session = self.redis.session(reader).await?;
                match session.as_ref().and_then(|s| s.in_room(code)) {
                    Some(part) => reading = Some(part.name.clone()),
                    None => return Err(RoomError::NotParticipant),
                }
            }
            let Some(looked) = self.redis.look(code).await? else {
                return Err(self.gone(code).await);
            };
            let (newest, mut names) = (looked.last_id, looked.names);
            // The reader is online now, whether or not Redis has heard it
            // yet (the members flusher tells it within a tenth of a second).
            let everyone = names.members.iter_mut().chain(names.watchers.iter_mut());
            for present in everyone.filter(|p| Some(&p.name) == reading.as_ref()) {
                present.online = true;
            }
            let since = since.map_or(newest, |since| since.min(newest));
            let Some(backlog) = self
                .redis
                .history(code, Some(since), None, usize::MAX)
                .await?
            else {
                return Err(self.gone(code).await);
            };
            let first_kept = backlog.first().map_or(newest + 1, |e| e.event.id);
            Ok(Opening {
                since,
                missed: gap(since, first_kept),
                backlog,
                members: members_frame(code, &names),
                updates,
            })
        })
    }

    fn sessions_ended(&self, _state: &mut State, _ended: Vec<(SessionId, Session)>) {
        // Never any: with Redis, sessions are not kept in memory, and
        // Redis expires them on its own (the room scripts free their names).
    }

    fn room_expired(&self, _state: &mut State, code: &RoomCode, _private: bool) {
        info!("room {code} left this node's cache"); // Redis expires it on its own.
    }

    /// Every room with a stream here lives another TTL in Redis (else a
    /// quiet room everyone is connected to would expire under them); one
    /// Redis says is gone leaves the cache, which ends its streams.
    fn keep_rooms(&self) -> Pending<'_, ()> {
        Box::pin(async move {
            let open: Vec<(RoomCode, Vec<SessionId>)> = {
                let state = self.rooms.lock();
                let rooms = state.rooms.iter().filter(|(_, room)| room.streams > 0);
                rooms
                    .map(|(code, room)| (code.clone(), online(room)))
                    .collect()
            };
            let mut kept = Vec::with_capacity(open.len());
            for (code, online) in open {
                if self.redis.keep(&code, &online, false).await? {
                    kept.push(code);
                } else {
                    self.forget(&code);
                }
            }
            Ok(self.redis.count_codes(&kept).await?)
        })
    }

    /// This node's word on who is online in each room goes to Redis at
    /// once, and the room's roster to every node.
    fn presence_changed(&self, codes: HashSet<RoomCode>) -> Pending<'_, ()> {
        Box::pin(async move {
            for code in codes {
                let Some(online) = self.rooms.lock().room(&code).ok().map(online) else {
                    continue; // left the cache meanwhile
                };
                if !self.redis.keep(&code, &online, true).await? {
                    self.forget(&code);
                }
            }
            Ok(())
        })
    }

    fn reader(&self, shutdown: Shutdown) -> Option<Task> {
        let (redis, rooms) = (self.redis.clone(), self.rooms.clone());
        Some(Box::pin(async move {
            let cache = || Cache {
                rooms: rooms.clone(),
                redis: redis.clone(),
            };
            let logs = reader::run(redis.clone(), cache(), shutdown.clone());
            let frames = reader::follow_frames(redis.clone(), cache(), shutdown);
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

/// The sessions with a stream open in the room on this node.
fn online(room: &Room) -> Vec<SessionId> {
    room.online().map(SessionId::from_number).collect()
}

/// How leave.lua marks the message that ends a session's streams.
const LEFT_PREFIX: &[u8] = b"\0left ";

/// How a frame that is not for its sender's own streams is published:
/// this, the session's number in 32 hex digits and a space, the frame.
const FROM_PREFIX: &[u8] = b"\0from ";

/// How a `members` frame starts, as common.lua publishes it.
const MEMBERS_FRAME: &[u8] = b"event: members\n";

/// This node's cache of rooms, as the reader feeds it.
pub struct Cache {
    pub rooms: Arc<Rooms>,
    pub redis: Redis,
}

impl Cache {
    /// Reads the room's roster and sends it to the streams here: after a
    /// join or leave read from the log, so a `members` frame published
    /// while this node's frame subscription was not up (at start, after
    /// losing Redis) is made good by the next one that is.
    fn refresh_roster(&self, code: &RoomCode) {
        let (rooms, redis, code) = (self.rooms.clone(), self.redis.clone(), code.clone());
        tokio::spawn(async move {
            // A failure was noted by the client; the next change tries again.
            if let Ok(Some(looked)) = redis.look(&code).await {
                rooms
                    .lock()
                    .send_members(&code, members_frame(&code, &looked.names));
            }
        });
    }
}

impl reader::Follower for Cache {
    fn cursors(&self) -> Vec<(RoomCode, u64)> {
        let state = self.rooms.lock();
        let rooms = state.rooms.iter();
        rooms
            .map(|(code, r)| (code.clone(), r.published_id))
            .collect()
    }

    /// A frame for the streams here; or, from leave.lua, word that a
    /// session left (`LEFT_PREFIX` and its id: never an SSE frame, which
    /// starts with a field name), which ends that session's streams.
    fn deliver_frame(&self, code: &RoomCode, frame: Bytes) {
        let mut state = self.rooms.lock();
        if let Some(id) = frame.strip_prefix(LEFT_PREFIX) {
            let id: Option<SessionId> = std::str::from_utf8(id).ok().and_then(|id| id.parse().ok());
            if let (Some(id), Ok(room)) = (id, state.room(code)) {
                room.end_streams_of(id.number());
            }
        } else if frame.starts_with(MEMBERS_FRAME) {
            // The roster, as the scripts publish it: one a tenth of a
            // second at most, as locally.
            state.send_members(code, frame);
        } else if let Some(rest) = frame.strip_prefix(FROM_PREFIX) {
            let from = rest.get(..32).and_then(|hex| std::str::from_utf8(hex).ok());
            let from = from.and_then(|hex| u128::from_str_radix(hex, 16).ok());
            if let (Some(from), Some(b' '), Ok(room)) = (from, rest.get(32), state.room(code)) {
                room.send(Update::Frame(
                    frame.slice(FROM_PREFIX.len() + 33..),
                    Some(from),
                ));
            }
        } else if let Ok(room) = state.room(code) {
            room.send(Update::Frame(frame, None));
        }
    }

    /// Events read from a room's log go out to every stream here; after a
    /// join or leave, so does the roster (see [`Cache::refresh_roster`]).
    fn deliver(&self, code: &RoomCode, events: Vec<Arc<Recorded>>) {
        let mut state = self.rooms.lock();
        let Ok(room) = state.room_mut(code) else {
            return; // Forgotten meanwhile.
        };
        let fresh: Vec<_> = events
            .into_iter()
            .filter(|e| e.event.id > room.published_id)
            .collect();
        if fresh.is_empty() {
            return;
        }
        // Ids are given by Redis: the cache's last is the newest it saw
        // (so that, everything seen published, it may let the room go).
        let newest = fresh.last().map_or(0, |e| e.event.id);
        room.last_id = room.last_id.max(newest);
        let roster_changed =
            (fresh.iter()).any(|e| matches!(e.event.kind, Kind::Join | Kind::Leave));
        self.rooms.metrics.appended(fresh.len() as u64);
        room.publish(&fresh);
        room.touched(Instant::now());
        drop(state);
        if roster_changed {
            self.refresh_roster(code);
        }
    }
}
