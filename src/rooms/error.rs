//! Why the registry refused or failed; each maps to one HTTP status (see
//! `crate::error`).

use std::time::Duration;

use crate::model::amend::Refused;
use crate::model::{Name, RoomCode};
use crate::store::EndedRoom;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    NotFound(RoomCode),
    /// The room ended (its TTL passed with nobody in it) at this time, in
    /// ms since the epoch; its code is not given to a new room for a while.
    Ended(RoomCode, u64),
    NoFreeCode,
    ShuttingDown,
    /// `--max-streams` are open already.
    TooManyStreams,
    /// `--max-rooms` are live already.
    TooManyRooms,
    /// Another participant of the room holds this name (or one that looks
    /// the same).
    NameTaken(Name),
    /// This session is in the room already, under this name.
    AlreadyIn(Name),
    /// This session has not joined the room.
    NotParticipant,
    /// This visitor has `--max-streams-per-visitor` open already.
    TooManyStreamsForVisitor,
    /// This visitor's bucket is empty; a token comes after this long.
    RateLimited(Duration),
    /// This address named too many codes that are no room; it may name
    /// one again after this long.
    Guessing(Duration),
    /// The writer's queue is full: too much at once.
    Busy,
    /// The store refused or failed; nothing was kept.
    Store(String),
    /// Redis (with `--redis`) cannot be reached; nothing was changed.
    Unreachable,
    /// A post's `Idempotency-Key` was sent before with other text.
    KeyReused,
    /// A post with this `Idempotency-Key` is being stored right now.
    KeyInFlight,
    /// The room has no message with this id (any more).
    NoSuchMessage(u64),
    /// Only a message's sender may edit or delete it.
    NotYours,
}

impl RoomError {
    /// Why an amendment of message `id` was refused.
    pub fn refused(id: u64, refused: Refused) -> RoomError {
        match refused {
            Refused::NoSuchMessage => RoomError::NoSuchMessage(id),
            Refused::NotYours => RoomError::NotYours,
        }
    }
}

impl RoomError {
    /// Why `code` is no room: it ended (`ended`), or it never was one. A
    /// private room that ended is told as one that never was: nobody
    /// outside may learn it existed.
    pub fn missing(code: &RoomCode, ended: Option<&EndedRoom>) -> RoomError {
        match ended {
            Some(room) if !room.private => RoomError::Ended(code.clone(), room.at_ms),
            _ => RoomError::NotFound(code.clone()),
        }
    }
}
