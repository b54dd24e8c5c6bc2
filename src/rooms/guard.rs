//! The guard every open stream holds: it sits above the lock
//! ([`super::state`]), which it takes once, when the stream ends.

use std::sync::Arc;

use super::state::Rooms;
use crate::client::VisitorKey;
use crate::model::RoomCode;

/// Held by an open stream; dropping it (the client went away, the stream
/// ended) gives back what the stream was counted for.
pub struct StreamGuard {
    rooms: Arc<Rooms>,
    /// The rooms the stream follows: one, or several when multiplexed.
    codes: Vec<RoomCode>,
    visitor: VisitorKey,
}

impl StreamGuard {
    pub(super) fn new(rooms: Arc<Rooms>, codes: Vec<RoomCode>, visitor: VisitorKey) -> StreamGuard {
        StreamGuard {
            rooms,
            codes,
            visitor,
        }
    }

    /// The rooms the stream follows, for log lines.
    pub fn rooms(&self) -> &[RoomCode] {
        &self.codes
    }

    /// Whether this stream is read by the session numbered `session`.
    pub fn is_of(&self, session: u128) -> bool {
        self.visitor
            .session
            .is_some_and(|id| id.number() == session)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.rooms.stream_closed(&self.codes, self.visitor);
    }
}
