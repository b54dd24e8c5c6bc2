//! The Redis client of the `--redis` backend: one Lua script per change
//! (in this folder), and sessions.
//!
//! Each room is a few keys sharing the hash tag `{CODE}`, all expiring
//! together a room TTL after the last activity:
//! - `roomcast:{CODE}`: the room exists (created at, in ms);
//! - `…:seq`, `…:log`: its last id, and its events as a Redis Stream whose
//!   entry ids are `0-1`, `0-2`, … so an SSE id is the same plain integer
//!   on every node, and Last-Event-ID and `since=` work anywhere;
//! - `…:names`: who takes part, by name key: which session holds which
//!   name, and whether it watches;
//! - `…:posted`, `…:posted-at`: the Idempotency-Keys its messages were
//!   sent with, for a day.
//!
//! A session is `roomcast:session:ID`, a hash of the rooms it joined, kept
//! `--session-ttl` after its last use (see common.lua).
//!
//! Every change is one Lua script (in this folder), so it is atomic: an
//! event's id, its entry and the room's expiry move together, and a 201 is
//! only ever sent for an event Redis has taken. Fan-out does not go through
//! these calls: [`reader`] follows the logs of the rooms this node has
//! streams in and feeds the registry's broadcast channels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use redis::Script;

use super::entries;
use crate::limits::IDEMPOTENCY_WINDOW;
use crate::model::amend::{Amend, Refused};
use crate::model::{
    timestamp, Author, Event, Name, Names, PostKey, Present, Recorded, RoomCode, RoomKey, Text,
    NAME_KEY_VERSION,
};
use crate::rooms::settings::Settings;
use crate::session::{Participation, Session, SessionId};
use crate::store::{now_ms, EndedRoom, KeptPost};

/// How long a node's wake-up stream outlives its last use, so a node that
/// died leaves nothing behind for good.
const WAKE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Every code in use, node-wide (never in a room script): the code, scored
/// by when its room's end and reservation would have passed, in ms. Read
/// to choose a new code's length (see [`RoomCode::length_for`]).
const CODES_KEY: &str = "roomcast:codes";

/// How long a node's word on who has streams open in a room holds: it says
/// it again every sweep (a second at most), so a node that stops or
/// freezes has its people shown as away within this.
const PRESENCE_TTL: Duration = Duration::from_secs(5);

/// How long one command may take before the caller gets a 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a Redis call failed; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisError {
    /// Redis cannot be reached.
    Unreachable,
    /// Redis answered with an error (a bug or a misconfigured server).
    Refused(String),
}

/// A handle on one Redis for this node; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// This process's id among the nodes (random, new at every start).
    node: String,
    pub(super) client: redis::Client,
    pub(super) commands: ConnectionManager,
    /// Whether the last call reached Redis; it changes only on the first
    /// failure and the first success after, which is when it is logged.
    up: AtomicBool,
    settings: Settings,
    scripts: Scripts,
}

struct Scripts {
    create: Script,
    post: Script,
    look: Script,
    keep: Script,
    history: Script,
    amend: Script,
    join: Script,
    leave: Script,
    session: Script,
}

macro_rules! room_script {
    ($file:literal) => {
        Script::new(concat!(include_str!("common.lua"), include_str!($file)))
    };
}

/// A room as Redis has it.
pub struct Looked {
    pub last_id: u64,
    pub names: Names,
    /// A private room's key.
    pub key: Option<RoomKey>,
}

/// The outcome of joining a room.
#[derive(Debug, PartialEq, Eq)]
pub enum Joining {
    Joined,
    /// The session is in the room under this name already.
    Same(Participation),
    /// The session is in the room under another name.
    Already(Name),
    Taken,
    /// A private room, and no key or the wrong one: answered as unknown,
    /// but the room is there (its streams here go on).
    Denied,
    RoomGone,
}

/// The outcome of posting a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Posting {
    /// Stored with this id, under this name.
    Posted(u64, Name),
    /// Stored before under the same key: nothing was stored now.
    Again(KeptPost),
    /// The session holds no member's name in the room.
    NotIn,
    RoomGone,
}

/// The outcome of amending a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Amending {
    /// The change's id (and whether a reaction went on), if anything
    /// changed; the asker's name (a delete names nobody); and the
    /// message as it reads now.
    Done(Option<(u64, bool)>, Name, Box<Event>),
    Refused(Refused),
    /// The session holds no member's name in the room.
    NotIn,
    RoomGone,
}

/// The outcome of leaving a room.
#[derive(Debug, PartialEq, Eq)]
pub enum Leaving {
    Left,
    NotIn,
    RoomGone,
}

impl Redis {
    /// Connects to Redis at `url` (`redis://host:port/db`); fails if it
    /// cannot be reached now, so a wrong URL stops the node at start.
    pub async fn connect(url: &str, settings: Settings) -> Result<Redis, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url}: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_max_delay(Duration::from_secs(2));
        let commands = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
        let redis = Redis {
            inner: Arc::new(Inner {
                node: uuid::Uuid::new_v4().simple().to_string(),
                client,
                commands,
                up: AtomicBool::new(true),
                settings,
                scripts: Scripts {
                    create: room_script!("create.lua"),
                    post: room_script!("post.lua"),
                    look: room_script!("look.lua"),
                    keep: room_script!("keep.lua"),
                    history: room_script!("history.lua"),
                    amend: room_script!("amend.lua"),
                    join: room_script!("join.lua"),
                    leave: room_script!("leave.lua"),
                    session: Script::new(include_str!("session.lua")),
                },
            }),
        };
        redis.ping().await?;
        redis.rekey_names().await?;
        info!("node {} sharing rooms through Redis at {url}", redis.node());
        Ok(redis)
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Whether Redis answered the last call (for /healthz).
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Notes a call's outcome, logging only the changes.
    pub(super) fn note<T>(
        &self,
        what: &str,
        result: redis::RedisResult<T>,
    ) -> Result<T, RedisError> {
        match result {
            Ok(value) => {
                if !self.inner.up.swap(true, Ordering::Relaxed) {
                    info!("Redis is reachable again");
                }
                Ok(value)
            }
            Err(err) if unreachable(&err) => {
                if self.inner.up.swap(false, Ordering::Relaxed) {
                    warn!("lost Redis ({what}: {err}); answering 503 until it is back");
                }
                Err(RedisError::Unreachable)
            }
            // Redis answered, with an error: a bug or a misconfigured
            // server, said every time (the caller answers 503).
            Err(err) => Err(RedisError::Refused(format!("Redis refused {what}: {err}"))),
        }
    }

    /// Runs a room script on `code` with the shared arguments first.
    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        code: &RoomCode,
        args: &[&str],
    ) -> Result<T, RedisError> {
        self.run_with(what, script, code, None, args).await
    }

    /// [`Redis::run`], with a session's key after the room's.
    async fn run_with<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        code: &RoomCode,
        session: Option<SessionId>,
        args: &[&str],
    ) -> Result<T, RedisError> {
        let settings = &self.inner.settings;
        let mut call = script.prepare_invoke();
        for key in room_keys(code) {
            call.key(key);
        }
        if let Some(id) = session {
            call.key(session_key(id));
        }
        call.arg(settings.room_ttl.as_millis() as u64)
            .arg(settings.history.keep);
        for arg in args {
            call.arg(*arg);
        }
        // Last, wherever the script's own arguments end (see common.lua).
        call.arg(settings.ended_ttl.as_millis() as u64);
        let mut commands = self.inner.commands.clone();
        let result = call.invoke_async(&mut commands).await;
        self.note(what, result)
    }

    /// Sends one command, noting its outcome.
    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut commands = self.inner.commands.clone();
        let result = command.query_async(&mut commands).await;
        self.note(what, result)
    }

    /// Whether Redis answers: checked once at start.
    async fn ping(&self) -> Result<(), String> {
        let answer: Result<(), _> = self.query("ping", &redis::cmd("PING")).await;
        answer.map_err(|_| "Redis is unreachable".into())
    }

    /// Clears up this node's wake-up stream as it stops.
    pub async fn depart(&self) {
        let del = redis::cmd("DEL").arg(wake_key(self.node())).clone();
        let _: Result<(), _> = self.query("leaving", &del).await;
    }

    /// Claims `code` for a new room (private with `key`); false if some
    /// room has it.
    pub async fn create(
        &self,
        code: &RoomCode,
        key: Option<&RoomKey>,
        at_ms: u64,
    ) -> Result<bool, RedisError> {
        let key = key.map_or("", RoomKey::as_str);
        let created: u8 = self
            .run(
                "creating a room",
                &self.inner.scripts.create,
                code,
                &[&at_ms.to_string(), key],
            )
            .await?;
        if created == 1 {
            // The room is made: a count missed now only lets a new code
            // come out a letter short until the next sweep counts it.
            if let Err(err) = self.count_codes(std::slice::from_ref(code)).await {
                log::warn!("room {code} made but not counted yet: {err:?}");
            }
        }
        Ok(created == 1)
    }

    /// How many codes are in use (rooms, and ended rooms' codes), as
    /// `roomcast:codes` counts them.
    pub async fn codes_in_use(&self) -> Result<usize, RedisError> {
        let mut commands = self.inner.commands.clone();
        let result: redis::RedisResult<(u64, usize)> = redis::pipe()
            .zrembyscore(CODES_KEY, "-inf", now_ms())
            .zcard(CODES_KEY)
            .query_async(&mut commands)
            .await;
        let (_gone, in_use) = self.note("counting codes", result)?;
        Ok(in_use)
    }

    /// Counts `codes` as in use until their rooms' end and reservation
    /// would pass from now: at creation, and while a node has streams in
    /// them. (A room kept alive only by posts with no stream open is
    /// counted again at its next stream: until then its code may be
    /// counted as free, and only a new room's length can come out short.)
    pub async fn count_codes(&self, codes: &[RoomCode]) -> Result<(), RedisError> {
        if codes.is_empty() {
            return Ok(());
        }
        let settings = &self.inner.settings;
        let until = now_ms() + (settings.room_ttl + settings.ended_ttl).as_millis() as u64;
        let members: Vec<(u64, &str)> = codes.iter().map(|c| (until, c.as_str())).collect();
        let zadd = redis::cmd("ZADD").arg(CODES_KEY).arg(&members).clone();
        let _added: u64 = self.query("counting codes", &zadd).await?;
        Ok(())
    }

    /// Session `id` says `text` in `code` at `ts`, under the name it holds
    /// there (checked in the same script that stores it).
    pub async fn post(
        &self,
        code: &RoomCode,
        id: SessionId,
        text: &Text,
        key: Option<&PostKey>,
        ts: &str,
    ) -> Result<Posting, RedisError> {
        let id_text = id.to_string();
        let (key, digest) = key.map_or(("", ""), |k| (k.key.as_str(), k.digest.as_str()));
        let now = now_ms().to_string();
        let window = IDEMPOTENCY_WINDOW.as_millis().to_string();
        let author = id.author();
        let args = [
            id_text.as_str(),
            code.as_str(),
            ts,
            text.as_str(),
            key,
            digest,
            &now,
            &window,
            author.as_str(),
        ];
        let script = &self.inner.scripts.post;
        let reply: Vec<String> = self
            .run_with("posting", script, code, Some(id), &args)
            .await?;
        Ok(match &reply[..] {
            [event_id, name] => {
                let event_id = event_id.parse().map_err(|_| odd("posting"))?;
                let name = Name::parse(name).map_err(|_| odd("posting"))?;
                Posting::Posted(event_id, name)
            }
            [again, event_id, name, ts, digest] if again == "again" => Posting::Again(KeptPost {
                id: event_id.parse().map_err(|_| odd("posting"))?,
                name: name.clone(),
                ts: ts.clone(),
                digest: digest.clone(),
            }),
            [not] if not == "not" => Posting::NotIn,
            _ => Posting::RoomGone,
        })
    }

    /// Publishes a frame that is not history on the room's channel.
    pub async fn publish_frame(&self, code: &RoomCode, frame: &[u8]) -> Result<(), RedisError> {
        let publish = redis::cmd("PUBLISH")
            .arg(frames_key(code))
            .arg(frame)
            .clone();
        let _receivers: u64 = self.query("publishing a frame", &publish).await?;
        Ok(())
    }

    /// The room's last id, who is in it and its key if it is private, or
    /// `None` if it is gone.
    pub async fn look(&self, code: &RoomCode) -> Result<Option<Looked>, RedisError> {
        let args = [code.as_str(), &timestamp(), &frames_key(code)];
        let found: Option<(u64, Vec<String>, Vec<String>, String)> = self
            .run("reading a room", &self.inner.scripts.look, code, &args)
            .await?;
        Ok(found.map(|(last_id, members, watchers, key)| Looked {
            last_id,
            names: Names {
                members: names_of(members),
                watchers: names_of(watchers),
            },
            key: (!key.is_empty()).then(|| RoomKey::stored(key)),
        }))
    }

    /// When the room that had `code` ended and whether it was private, if
    /// its code is still reserved (see common.lua's `mark_end`).
    pub async fn ended(&self, code: &RoomCode) -> Result<Option<EndedRoom>, RedisError> {
        let get = redis::cmd("GET").arg(ends_key(code)).clone();
        let Some(mark): Option<String> = self.query("reading an ended room", &get).await? else {
            return Ok(None);
        };
        let (at_ms, private) = mark.split_once('\t').ok_or_else(|| odd("an ended room"))?;
        let at_ms: u64 = at_ms.parse().map_err(|_| odd("an ended room"))?;
        Ok(Some(EndedRoom {
            // A room gone before its time (deleted by hand) ended now.
            at_ms: at_ms.min(now_ms()),
            private: private == "1",
        }))
    }

    /// History after `since`, oldest first, at most `limit`; or without
    /// `since` the newest `limit` below `before` (of all, without it).
    /// `None` if the room is gone.
    pub async fn history(
        &self,
        code: &RoomCode,
        since: Option<u64>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Option<Vec<Arc<Recorded>>>, RedisError> {
        let since_arg = since.map_or_else(String::new, |id| id.to_string());
        let before_arg = before.map_or_else(String::new, |id| id.to_string());
        if limit == 0 {
            return Ok(self.look(code).await?.map(|_| Vec::new()));
        }
        // Redis counts in signed 64 bits.
        let limit = limit.min(i64::MAX as usize);
        let args = [since_arg.as_str(), &limit.to_string(), &before_arg];
        type Read = (StreamRangeReply, Vec<String>, Vec<String>);
        let read: Option<Read> = self
            .run("reading history", &self.inner.scripts.history, code, &args)
            .await?;
        let Some((entries, states, deleted)) = read else {
            return Ok(None);
        };
        let mut events: Vec<Event> = (entries.ids.iter().zip(&states))
            .filter_map(|(entry, state)| {
                Some(entries::amended(entries::decode(code, entry)?, state))
            })
            .chain(
                deleted
                    .iter()
                    .filter_map(|mark| entries::deleted(code, mark)),
            )
            .collect();
        events.sort_by_key(|e| e.id);
        // What the log had, and the deleted ones among it: `limit` of them.
        if since.is_some() {
            events.truncate(limit);
        } else {
            events.drain(..events.len().saturating_sub(limit));
        }
        Ok(Some(
            events
                .into_iter()
                .map(|e| Arc::new(Recorded::new(e)))
                .collect(),
        ))
    }

    /// Session `id` makes `amend` to message `target` in `code` at `ts`,
    /// under the name it holds there (checked in the same script).
    pub async fn amend(
        &self,
        code: &RoomCode,
        id: SessionId,
        target: u64,
        amend: &Amend,
        ts: &str,
    ) -> Result<Amending, RedisError> {
        let (what, arg) = match amend {
            Amend::Edit(text) => ("edit", text.as_str()),
            Amend::Delete => ("delete", ""),
            Amend::React(emoji) => ("react", emoji.as_str()),
        };
        let (id_text, target_text, author) = (id.to_string(), target.to_string(), id.author());
        let args = [
            &id_text,
            code.as_str(),
            ts,
            &target_text,
            what,
            arg,
            author.as_str(),
        ];
        let script = &self.inner.scripts.amend;
        let reply: Vec<String> = self
            .run_with("amending", script, code, Some(id), &args)
            .await?;
        let number = |n: &str| n.parse::<u64>().map_err(|_| odd("amending"));
        Ok(match &reply[..] {
            [done, change, on, said, name, posted, by, text, state] if done == "done" => {
                let message = Event {
                    id: target,
                    room: code.to_string(),
                    name: name.clone(),
                    text: Some(text.clone()),
                    ts: posted.clone(),
                    author: (!by.is_empty()).then(|| Author::stored(by.clone())),
                    ..Event::default()
                };
                let change = match &change[..] {
                    "" => None,
                    change => Some((number(change)?, on == "1")),
                };
                let said = Name::parse(said).map_err(|_| odd("amending"))?;
                Amending::Done(change, said, Box::new(entries::amended(message, state)))
            }
            [deleted, change, posted] if deleted == "deleted" => {
                let mark = format!("{target}\t{posted}");
                let message = entries::deleted(code, &mark).ok_or_else(|| odd("amending"))?;
                // A delete names nobody: `Event::amendment` keeps no name.
                let nobody = Name::parse("-").map_err(|_| odd("amending"))?;
                Amending::Done(Some((number(change)?, true)), nobody, Box::new(message))
            }
            [not] if not == "not" => Amending::NotIn,
            [none] if none == "none" => Amending::Refused(Refused::NoSuchMessage),
            [theirs] if theirs == "not-yours" => Amending::Refused(Refused::NotYours),
            _ => Amending::RoomGone,
        })
    }

    /// Session `id` joins `code` as `part`, giving `key` (which a private
    /// room needs).
    pub async fn join(
        &self,
        code: &RoomCode,
        id: SessionId,
        part: &Participation,
        key: Option<&str>,
    ) -> Result<Joining, RedisError> {
        let id_text = id.to_string();
        let ttl = self.session_ttl_ms();
        let args = [
            id_text.as_str(),
            part.name.as_str(),
            &part.name.key().0,
            if part.watch { "1" } else { "0" },
            &ttl,
            &timestamp(),
            code.as_str(),
            &frames_key(code),
            key.unwrap_or_default(),
            &NAME_KEY_VERSION.to_string(),
        ];
        let script = &self.inner.scripts.join;
        let reply: Vec<String> = self
            .run_with("joining", script, code, Some(id), &args)
            .await?;
        let said = |i: usize| reply.get(i).map(String::as_str).unwrap_or_default();
        let name = |i: usize| Name::parse(said(i)).map_err(|_| odd("joining"));
        Ok(match said(0) {
            "joined" => Joining::Joined,
            "same" => Joining::Same(Participation {
                name: name(2)?,
                watch: said(1) == "1",
            }),
            "already" => Joining::Already(name(1)?),
            "taken" => Joining::Taken,
            "denied" => Joining::Denied,
            "older" => {
                log::error!("Redis files names under a newer name key than this node: upgrade it");
                return Err(RedisError::Refused(
                    "this node is older than the others".into(),
                ));
            }
            _ => Joining::RoomGone,
        })
    }

    /// A room with streams on this node (or with some until just now)
    /// lives another TTL, and `online` are the sessions with one open here
    /// (`changed`: that changed since the last time, so the roster goes out
    /// to every node); false if it is gone.
    pub async fn keep(
        &self,
        code: &RoomCode,
        online: &[SessionId],
        changed: bool,
    ) -> Result<bool, RedisError> {
        let until = (now_ms() + PRESENCE_TTL.as_millis() as u64).to_string();
        let sessions: Vec<String> = online.iter().map(SessionId::to_string).collect();
        let (ts, frames) = (timestamp(), frames_key(code));
        let changed = if changed { "1" } else { "0" };
        let mut args = vec![code.as_str(), &ts, &until, &frames, self.node(), changed];
        args.extend(sessions.iter().map(String::as_str));
        let kept: u8 = self
            .run("keeping a room", &self.inner.scripts.keep, code, &args)
            .await?;
        Ok(kept == 1)
    }

    /// Session `id` leaves `code`.
    pub async fn leave(&self, code: &RoomCode, id: SessionId) -> Result<Leaving, RedisError> {
        let id_text = id.to_string();
        let args = [
            id_text.as_str(),
            &timestamp(),
            code.as_str(),
            &frames_key(code),
        ];
        let script = &self.inner.scripts.leave;
        let reply: String = self
            .run_with("leaving", script, code, Some(id), &args)
            .await?;
        Ok(match reply.as_str() {
            "left" => Leaving::Left,
            "not" => Leaving::NotIn,
            _ => Leaving::RoomGone,
        })
    }

    /// The session `id` names, if it is live; using it keeps it alive.
    pub async fn session(&self, id: SessionId) -> Result<Option<Session>, RedisError> {
        let mut call = self.inner.scripts.session.prepare_invoke();
        call.key(session_key(id))
            .arg(self.session_ttl_ms())
            .arg(id.to_string());
        let mut commands = self.inner.commands.clone();
        let result: redis::RedisResult<Vec<String>> = call.invoke_async(&mut commands).await;
        let found = self.note("reading a session", result)?;
        let Some((_, rooms)) = found.split_first() else {
            return Ok(None);
        };
        let mut session = Session::default();
        for room in rooms.chunks(3) {
            let [code, watch, name] = room else {
                return Err(odd("reading a session"));
            };
            let (Ok(code), Ok(name)) = (RoomCode::parse(code), Name::parse(name)) else {
                continue; // Not one this version can read: not a way in.
            };
            let watch = watch == "1";
            session.rooms.insert(code, Participation { name, watch });
        }
        Ok(Some(session))
    }

    /// Keeps a device link for `ttl`.
    pub async fn put_link(
        &self,
        secret: &str,
        id: SessionId,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        let set = redis::cmd("SET")
            .arg(link_key(secret))
            .arg(id.to_string())
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .clone();
        self.query("keeping a device link", &set).await
    }

    /// The session a device link names, taking the link away (GETDEL: one
    /// use, even with two nodes asked at once).
    pub async fn take_link(&self, secret: &str) -> Result<Option<SessionId>, RedisError> {
        let getdel = redis::cmd("GETDEL").arg(link_key(secret)).clone();
        let id: Option<String> = self.query("using a device link", &getdel).await?;
        Ok(id.and_then(|id| id.parse().ok()))
    }

    fn session_ttl_ms(&self) -> String {
        self.inner.settings.session_ttl.as_millis().to_string()
    }

    /// Wakes this node's reader so it starts following a room now rather
    /// than at the end of its current wait.
    pub fn wake_reader(&self) {
        let redis = self.clone();
        tokio::spawn(async move {
            let mut commands = redis.inner.commands.clone();
            let key = wake_key(redis.node());
            let result: redis::RedisResult<()> = redis::pipe()
                .cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg(1)
                .arg("*")
                .arg("w")
                .arg(1)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(WAKE_TTL.as_millis() as u64)
                .ignore()
                .query_async(&mut commands)
                .await;
            let _ = redis.note("waking the reader", result);
        });
    }
}

/// Whether `err` means Redis could not be reached (rather than that it
/// answered with an error).
fn unreachable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
}

/// A reply no script of this version gives.
fn odd(what: &str) -> RedisError {
    RedisError::Refused(format!("Redis gave an unexpected reply {what}"))
}

/// A room's keys, in the order the scripts expect (see common.lua).
fn room_keys(code: &RoomCode) -> [String; 4] {
    let base = format!("roomcast:{{{code}}}");
    [
        base.clone(),
        format!("{base}:seq"),
        format!("{base}:log"),
        format!("{base}:names"),
    ]
}

/// When the room ends (if nothing happens first), and whether it is
/// private: kept past the room's end for `--ended-ttl`.
fn ends_key(code: &RoomCode) -> String {
    format!("roomcast:{{{code}}}:ends")
}

pub(crate) fn log_key(code: &RoomCode) -> String {
    format!("roomcast:{{{code}}}:log")
}

/// The room of a log key.
pub(crate) fn room_of_log(key: &str) -> Option<RoomCode> {
    let code = key.strip_prefix("roomcast:{")?.strip_suffix("}:log")?;
    RoomCode::parse(code).ok()
}

/// The channel of a room's frames that are not history.
fn frames_key(code: &RoomCode) -> String {
    format!("roomcast:{{{code}}}:frames")
}

/// Every room's frames channel, as a pattern.
pub(crate) const FRAMES_PATTERN: &str = "roomcast:{*}:frames";

/// The room of a frames channel.
pub(crate) fn room_of_frames(channel: &str) -> Option<RoomCode> {
    let code = channel
        .strip_prefix("roomcast:{")?
        .strip_suffix("}:frames")?;
    RoomCode::parse(code).ok()
}

pub(crate) fn wake_key(node: &str) -> String {
    format!("roomcast:node:{node}:wake")
}

fn link_key(secret: &str) -> String {
    format!("roomcast:device:{secret}")
}

fn session_key(id: SessionId) -> String {
    format!("roomcast:session:{id}")
}

/// Names as look.lua gives them, '1NAME' (online) or '0NAME' (away).
fn names_of(names: Vec<String>) -> Vec<Present> {
    let mut present: Vec<Present> = names
        .iter()
        .filter_map(|flagged| {
            let (online, name) = (flagged.strip_prefix('1'), flagged.strip_prefix('0'));
            let (name, online) = online.map(|n| (n, true)).or(name.map(|n| (n, false)))?;
            let name = Name::parse(name).ok()?;
            Some(Present { name, online })
        })
        .collect();
    present.sort_by(|a, b| a.name.cmp(&b.name));
    present
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_name_their_room() {
        let code = RoomCode::parse("ABCD").unwrap();
        assert_eq!(room_of_log(&log_key(&code)), Some(code.clone()));
        assert_eq!(room_keys(&code)[2], log_key(&code));
        assert_eq!(room_of_log("roomcast:{AB}:log"), None);
        assert_eq!(room_of_log("other"), None);
        assert_eq!(room_of_frames(&frames_key(&code)), Some(code.clone()));
        assert_eq!(room_of_frames("roomcast:{ABCD}:log"), None);
    }
}
