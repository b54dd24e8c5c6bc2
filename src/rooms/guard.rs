//! The guard every open stream holds: it sits above the lock
//! ([`super::state`]), which it takes once, when the stream ends.

use std::sync::Arc;

use super::presence::Tally;
use super::state::Rooms;
use crate::client::VisitorKey;
use crate::model::{Name, RoomCode};

/// Held by an open stream; dropping it (the client went away, the stream
/// ended) gives back what the stream was counted for, which starts the
/// member's leave grace if it was their last stream.
pub struct StreamGuard {
    rooms: Arc<Rooms>,
    room: RoomCode,
    member: Option<Name>,
    tally: Tally,
    visitor: VisitorKey,
}

impl StreamGuard {
    pub(super) fn new(
        rooms: Arc<Rooms>,
        room: RoomCode,
        member: Option<Name>,
        tally: Tally,
        visitor: VisitorKey,
    ) -> StreamGuard {
        StreamGuard {
            rooms,
            room,
            member,
            tally,
            visitor,
        }
    }

    pub fn room(&self) -> &RoomCode {
        &self.room
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let member = self.member.as_ref().map(|name| (name, self.tally));
        self.rooms.stream_closed(&self.room, member, self.visitor);
    }
}
