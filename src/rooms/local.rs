//! The local backend: this process holds the truth. Rooms, recent history
//! and members are in memory ([`super::state`]); every change goes to the
//! writer thread ([`crate::store::writer`]), which stores a batch in one
//! transaction (SQLite, or memory with `--db :memory:`) and hands it back
//! to [`publish`]. Only then does the poster get its 201.
//!
//! Ids are given out under the lock in queue order, so the writer stores
//! and publishes them in id order.

use std::collections::HashMap;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use log::{info, warn};
use tokio::sync::oneshot;

use super::backend::{gap, Backend, Opening, Pending, Post, StreamStart, Window, CODE_ATTEMPTS};
use super::error::RoomError;
use super::presence::Tally;
use super::room::Room;
use super::settings::Settings;
use super::state::{Rooms, State, Writer};
use crate::client::VisitorKey;
use crate::model::{Kind, Name, Recorded, RoomCode, Update};
use crate::session::{Session, SessionId};
use crate::store::writer::{self, Job};
use crate::store::{now_ms, Change, Store, StoreError};

pub struct Local {
    rooms: Arc<Rooms>,
}

/// Where a change's outcome arrives.
type Stored = oneshot::Receiver<Result<(), StoreError>>;

impl Local {
    /// Loads every stored room and starts the writer thread. Blocking:
    /// call it before serving or from `spawn_blocking`.
    pub fn open(settings: Settings, mut store: Box<dyn Store>) -> Result<Local, StoreError> {
        let stored = store.load(settings.history)?;
        let rooms: HashMap<RoomCode, Room> = stored
            .into_iter()
            .map(|room| (room.code.clone(), Room::restore(room)))
            .collect();
        if !rooms.is_empty() {
            info!("loaded {} rooms from the store", rooms.len());
        }
        let history = settings.history;
        let rooms = Arc::new_cyclic(|me: &Weak<Rooms>| {
            let me = me.clone();
            let (queue, thread) = writer::spawn(store, history, move |changes| {
                if let Some(rooms) = me.upgrade() {
                    publish(&rooms, changes);
                }
            });
            let rooms = Rooms::new(settings, rooms);
            rooms.lock().writer = Some(Writer { queue, thread });
            rooms
        });
        Ok(Local { rooms })
    }

    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }
}

impl Backend for Local {
    /// Admission, the code and the queue in one hold of the lock, so
    /// `--max-rooms` holds under concurrent creation.
    fn create_room(&self, visitor: VisitorKey) -> Pending<'_, RoomCode> {
        let rooms = &*self.rooms;
        Box::pin(async move {
            let (code, stored) = {
                let mut state = rooms.lock();
                state.admit_room(visitor)?;
                let code = (0..CODE_ATTEMPTS)
                    .map(|_| RoomCode::random())
                    .find(|code| !state.rooms.contains_key(code))
                    .ok_or(RoomError::NoFreeCode)?;
                let change = Change::CreateRoom {
                    code: code.clone(),
                    at_ms: now_ms(),
                };
                let stored = enqueue_awaited(&state, change)?;
                state.rooms.insert(code.clone(), Room::new(0));
                (code, stored)
            };
            match outcome(stored).await {
                Ok(()) => Ok(code),
                Err(err) => {
                    rooms.lock().rooms.remove(&code);
                    Err(err)
                }
            }
        })
    }

    fn find<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, ()> {
        let found = self.rooms.lock().room(code).map(|_| ());
        Box::pin(std::future::ready(found))
    }

    /// Refuses a name another session holds in that room while its member
    /// is there; a holder who has left loses the name to the newcomer (its
    /// session ends, so two people never share one).
    fn open_session(
        &self,
        existing: Option<SessionId>,
        session: Session,
    ) -> Pending<'_, SessionId> {
        let mut state = self.rooms.lock();
        let id = existing
            .filter(|id| state.sessions.contains(id))
            .unwrap_or_else(SessionId::random);
        let named = match state.sessions.holder(&session) {
            Some(holder) if holder != id => match state.room(&session.room) {
                // The holder's own spelling is who is present.
                Ok(room)
                    if state
                        .sessions
                        .get(&holder)
                        .is_some_and(|held| room.members.contains(&held.name)) =>
                {
                    Err(RoomError::NameTaken(session.name.clone()))
                }
                Ok(_) => {
                    state.sessions.remove(&holder);
                    Ok(())
                }
                Err(err) => Err(err),
            },
            _ => Ok(()),
        };
        let named = named.map(|()| {
            state.sessions.insert(id, session);
            id
        });
        Box::pin(std::future::ready(named))
    }

    fn session(&self, id: SessionId) -> Pending<'_, Option<Session>> {
        let session = self.rooms.lock().sessions.get(&id).cloned();
        Box::pin(std::future::ready(Ok(session)))
    }

    /// Admission, the id and the queue in one hold of the lock.
    fn post<'a>(&'a self, post: Post<'a>) -> Pending<'a, Arc<Recorded>> {
        let Post {
            code,
            name,
            text,
            visitor,
        } = post;
        let rooms = &*self.rooms;
        Box::pin(async move {
            let (message, stored) = {
                let mut state = rooms.lock();
                state.admit_post(code, visitor)?;
                let message = state
                    .room(code)?
                    .next_event(code, Kind::Message, name, Some(text));
                let change = Change::Append {
                    code: code.clone(),
                    event: message.clone(),
                    at_ms: now_ms(),
                };
                let stored = enqueue_awaited(&state, change)?;
                let room = state.room_mut(code)?;
                room.last_id = message.event.id;
                room.touched(Instant::now());
                (message, stored)
            };
            outcome(stored).await?;
            Ok(message)
        })
    }

    fn history<'a>(
        &'a self,
        code: &'a RoomCode,
        window: Window,
    ) -> Pending<'a, Vec<Arc<Recorded>>> {
        let Window { since, limit } = window;
        let state = self.rooms.lock();
        let events = state.room(code).map(|room| match since {
            Some(since) => room.after(since).take(limit).cloned().collect(),
            None => room.newest(limit).cloned().collect(),
        });
        Box::pin(std::future::ready(events))
    }

    fn send_frame<'a>(&'a self, code: &'a RoomCode, frame: Bytes) -> Pending<'a, ()> {
        let room = self.rooms.lock();
        let sent = room.room(code).map(|room| room.send(Update::Frame(frame)));
        Box::pin(std::future::ready(sent))
    }

    fn members<'a>(&'a self, code: &'a RoomCode) -> Pending<'a, Vec<Name>> {
        let members = self
            .rooms
            .lock()
            .room(code)
            .map(|room| room.members.names());
        Box::pin(std::future::ready(members))
    }

    fn tally(&self) -> Tally {
        Tally::Members
    }

    fn subscribe<'a>(&'a self, start: StreamStart<'a>) -> Pending<'a, Opening> {
        let StreamStart {
            code,
            since,
            member,
            arrived,
        } = start;
        let mut state = self.rooms.lock();
        let opening = state.check_open().and_then(|()| state.room(code));
        let opening = opening.map(|room| {
            // An id from the future (a client of another room that had
            // this code) resumes from now rather than skipping events until
            // the ids catch up. A stream with no resume point starts live,
            // so it sees its own join.
            let newest = room.published_id;
            let since = since.map_or(newest, |since| since.min(newest));
            Opening {
                since,
                missed: gap(since, room.first_kept()),
                backlog: room.after(since).cloned().collect(),
                members: room.members.frame(),
                updates: room.subscribe(),
            }
        });
        if let (Ok(_), Some(name), true) = (&opening, member, arrived) {
            info!("{name} joined {code}");
            record_notice(&mut state, code, Kind::Join, name);
        }
        Box::pin(std::future::ready(opening))
    }

    fn announce_leave(&self, state: &mut State, code: &RoomCode, name: &Name) {
        info!("{name} left {code}");
        record_notice(state, code, Kind::Leave, name);
    }

    fn room_expired(&self, state: &mut State, code: &RoomCode) {
        match enqueue(state, Change::DeleteRoom { code: code.clone() }, None) {
            Ok(()) => info!("room {code} removed after its TTL with nobody connected"),
            Err(err) => {
                warn!("room {code} expired but stays in the store until next start: {err:?}")
            }
        }
    }

    fn keep_presence(&self) -> Pending<'_, ()> {
        Box::pin(std::future::ready(Ok(()))) // Presence is all in memory here.
    }

    /// Lets the writer store everything queued, and waits for it.
    fn finish(&self) -> Pending<'_, ()> {
        // Dropping the queue lets the writer drain it, then end.
        let writer = self.rooms.lock().writer.take();
        Box::pin(async move {
            if let Some(Writer { queue, thread }) = writer {
                drop(queue);
                // A panic in the writer was already printed; nothing more to do.
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Ok(())
        })
    }

    fn reachable(&self) -> Option<bool> {
        None
    }
}

/// Called by the writer thread with each stored batch, in queue order:
/// history events become visible and go out to every stream, each room's
/// share of the batch as one update.
fn publish(rooms: &Rooms, changes: &[Change]) {
    let mut by_room: HashMap<&RoomCode, Vec<Arc<Recorded>>> = HashMap::new();
    for change in changes {
        if let Change::Append { code, event, .. } = change {
            by_room.entry(code).or_default().push(event.clone());
        }
    }
    let history = rooms.settings.history;
    let mut state = rooms.lock();
    for (code, events) in by_room {
        // The room may have expired while the events were being stored.
        if let Ok(room) = state.room_mut(code) {
            rooms.metrics.appended(events.len() as u64);
            room.publish(events, history);
        }
    }
}

/// Waits for the writer's answer on a change.
async fn outcome(stored: Stored) -> Result<(), RoomError> {
    match stored.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(RoomError::Store(err.to_string())),
        Err(_) => Err(RoomError::Store("the writer stopped".into())),
    }
}

/// Queues a change for the writer. Called with the lock held, so the
/// queue order is the order ids were given out.
fn enqueue(state: &State, change: Change, done: Option<writer::Done>) -> Result<(), RoomError> {
    let writer = state.writer.as_ref().ok_or(RoomError::ShuttingDown)?;
    writer
        .queue
        .try_send(Job { change, done })
        .map_err(|err| match err {
            TrySendError::Full(_) => RoomError::Busy,
            TrySendError::Disconnected(_) => RoomError::Store("the writer stopped".into()),
        })
}

/// Queues a change and returns where its outcome will arrive.
fn enqueue_awaited(state: &State, change: Change) -> Result<Stored, RoomError> {
    let (done, stored) = oneshot::channel();
    enqueue(state, change, Some(done))?;
    Ok(stored)
}

/// Queues a join or leave; nobody waits for it, so a failure is logged.
fn record_notice(state: &mut State, code: &RoomCode, kind: Kind, name: &Name) {
    let Ok(room) = state.room(code) else {
        return;
    };
    let event = room.next_event(code, kind, name, None);
    let id = event.event.id;
    let change = Change::Append {
        code: code.clone(),
        event,
        at_ms: now_ms(),
    };
    match enqueue(state, change, None) {
        Ok(()) => {
            if let Ok(room) = state.room_mut(code) {
                room.last_id = id;
            }
        }
        Err(err) => warn!("{name}'s {kind} in {code} was not recorded: {err:?}"),
    }
}
