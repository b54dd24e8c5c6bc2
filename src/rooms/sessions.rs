//! The sessions, indexed both by id and by the names they hold (room and
//! [`Name::key`], so a lookalike finds the holder): who holds a name is a
//! map lookup. A name is held for as long as its participation lasts.
//! Plain data, kept under the registry's one lock (see [`super::state`]).
//!
//! [`Name::key`]: crate::model::Name::key

use std::collections::HashMap;
use std::sync::Arc;

use super::admission::shrink;
use crate::model::{Name, NameKey, RoomCode};
use crate::session::{Participation, Session, SessionId};
use crate::store::StoredSession;

/// The sessions holding one name key in one room: almost always one.
type Holders = Vec<SessionId>;

/// A session and when it was last used (ms since the epoch), and when the
/// store last heard of that use.
struct Held {
    /// Shared with the requests reading it: a request takes a handle, not
    /// a copy of every room (changes copy it only while one is out).
    session: Arc<Session>,
    used_ms: u64,
    stored_used_ms: u64,
}

#[derive(Default)]
pub struct Sessions {
    by_id: HashMap<SessionId, Held>,
    /// Who holds each name key in each room: one session, but more where
    /// lookalikes were let in before a change to [`Name::key`] (restored
    /// from the store): then the name stays held while any of them does.
    ///
    /// [`Name::key`]: crate::model::Name::key
    by_name: HashMap<(RoomCode, NameKey), Holders>,
}

impl Sessions {
    pub fn get(&self, id: &SessionId) -> Option<&Arc<Session>> {
        self.by_id.get(id).map(|held| &held.session)
    }

    /// The name `id` speaks under in `room`: a member's, never a
    /// watcher's.
    pub fn speaker(&self, id: &SessionId, room: &RoomCode) -> Option<&Name> {
        let part = self.get(id)?.in_room(room)?;
        (!part.watch).then_some(&part.name)
    }

    /// The session holding a name that looks like `part.name` in `room`.
    pub fn holder(&self, room: &RoomCode, part: &Participation) -> Option<SessionId> {
        let holders = self.by_name.get(&(room.clone(), part.name.key()))?;
        holders.first().copied()
    }

    /// A session as the store kept it, taken into memory. Its names are
    /// held by the rooms it is in, as each is taken in ([`Sessions::hold_name`]).
    pub fn restore(&mut self, id: SessionId, stored: StoredSession) {
        let session = Session {
            rooms: stored.rooms.into_iter().collect(),
        };
        self.by_id.entry(id).or_insert(Held {
            session: Arc::new(session),
            used_ms: stored.used_ms,
            stored_used_ms: stored.used_ms,
        });
    }

    /// `id` holds `part`'s name in `room` (a room taken into memory holds
    /// every participant's, whether their session is in memory or not).
    pub fn hold_name(&mut self, id: SessionId, room: &RoomCode, part: &Participation) {
        let holders = self
            .by_name
            .entry((room.clone(), part.name.key()))
            .or_default();
        if !holders.contains(&id) {
            holders.push(id);
        }
    }

    /// Nobody holds `name` in `room` in memory any more: the room left it.
    pub fn forget_name(&mut self, room: &RoomCode, name: &Name) {
        self.by_name.remove(&(room.clone(), name.key()));
    }

    /// `id` (made if new) takes part in `room` as `part`.
    pub fn join(&mut self, id: SessionId, room: &RoomCode, part: Participation, now_ms: u64) {
        self.hold_name(id, room, &part);
        let held = self.by_id.entry(id).or_insert(Held {
            session: Arc::default(),
            used_ms: now_ms,
            stored_used_ms: now_ms,
        });
        Arc::make_mut(&mut held.session)
            .rooms
            .insert(room.clone(), part);
    }

    /// `id` leaves `room`; its name there is free again.
    pub fn leave(&mut self, id: &SessionId, room: &RoomCode) -> Option<Participation> {
        let held = self.by_id.get_mut(id)?;
        held.session.in_room(room)?;
        let part = Arc::make_mut(&mut held.session).rooms.remove(room)?;
        self.release(*id, room, &part);
        Some(part)
    }

    /// Frees the name `id` held in `room`: it stays held while another
    /// holder of it remains (lookalikes restored from before a change to
    /// [`Name::key`]).
    ///
    /// [`Name::key`]: crate::model::Name::key
    fn release(&mut self, id: SessionId, room: &RoomCode, part: &Participation) {
        let held = (room.clone(), part.name.key());
        if let Some(holders) = self.by_name.get_mut(&held) {
            holders.retain(|holder| *holder != id);
            if holders.is_empty() {
                self.by_name.remove(&held);
            }
        }
    }

    /// Notes a use of `id` at `now_ms`; true if the store should hear of
    /// it (once every `every_ms`, so a busy session is not a write per
    /// request).
    pub fn used(&mut self, id: &SessionId, now_ms: u64, every_ms: u64) -> bool {
        let Some(held) = self.by_id.get_mut(id) else {
            return false;
        };
        held.used_ms = held.used_ms.max(now_ms);
        let due = held.used_ms.saturating_sub(held.stored_used_ms) >= every_ms;
        if due {
            held.stored_used_ms = held.used_ms;
        }
        due
    }

    /// Takes out the sessions unused since before `cutoff_ms`.
    pub fn take_unused(&mut self, cutoff_ms: u64) -> Vec<(SessionId, Session)> {
        let gone: Vec<(SessionId, Session)> = self
            .by_id
            .extract_if(|_, held| held.used_ms < cutoff_ms)
            .map(|(id, held)| (id, Arc::unwrap_or_clone(held.session)))
            .collect();
        for (id, session) in &gone {
            self.release_all(*id, session);
        }
        if !gone.is_empty() {
            shrink(&mut self.by_id);
            shrink(&mut self.by_name);
        }
        gone
    }

    /// Frees every name `session` (ended) held.
    pub fn release_all(&mut self, id: SessionId, session: &Session) {
        for (room, part) in &session.rooms {
            self.release(id, room, part);
        }
    }

    /// Lets go of the sessions unused since before `cutoff_ms` that are in
    /// no room held in memory (`in_memory`): they stay stored. Each with
    /// when it was last used, if the store has not heard of it yet.
    pub fn take_idle(
        &mut self,
        cutoff_ms: u64,
        in_memory: impl Fn(&RoomCode) -> bool,
    ) -> Vec<(SessionId, Option<u64>)> {
        let idle: Vec<(SessionId, Option<u64>)> = self
            .by_id
            .extract_if(|_, held| {
                held.used_ms < cutoff_ms && !held.session.rooms.keys().any(&in_memory)
            })
            .map(|(id, held)| {
                (
                    id,
                    (held.used_ms > held.stored_used_ms).then_some(held.used_ms),
                )
            })
            .collect();
        if !idle.is_empty() {
            shrink(&mut self.by_id);
        }
        idle
    }

    /// When `id` was last used, if it is in memory.
    pub fn used_ms(&self, id: &SessionId) -> Option<u64> {
        self.by_id.get(id).map(|held| held.used_ms)
    }

    /// Ends every participation in one of `rooms` (they are gone).
    pub fn end_in(&mut self, rooms: &[RoomCode]) {
        if rooms.is_empty() {
            return;
        }
        for held in self.by_id.values_mut() {
            if held.session.rooms.keys().any(|code| rooms.contains(code)) {
                let session = Arc::make_mut(&mut held.session);
                session.rooms.retain(|code, _| !rooms.contains(code));
            }
        }
        self.by_name.retain(|(room, _), _| !rooms.contains(room));
        shrink(&mut self.by_name);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Name;

    fn code(c: &str) -> RoomCode {
        RoomCode::parse(c).unwrap()
    }

    fn part(name: &str) -> Participation {
        Participation {
            name: Name::parse(name).unwrap(),
            watch: false,
        }
    }

    #[test]
    fn a_name_is_held_by_room_and_lookalike_until_its_holder_leaves() {
        let mut sessions = Sessions::default();
        let id = SessionId::random();
        sessions.join(id, &code("ABCD"), part("al"), 0);
        sessions.join(id, &code("EFGH"), part("bo"), 0);
        let abcd = code("ABCD");
        assert_eq!(sessions.holder(&abcd, &part("al")), Some(id));
        assert_eq!(sessions.holder(&abcd, &part("AL")), Some(id), "case");
        assert_eq!(
            sessions.holder(&abcd, &part("\u{430}l")),
            Some(id),
            "Cyrillic a"
        );
        assert_eq!(sessions.holder(&code("EFGH"), &part("al")), None);
        assert_eq!(
            sessions.get(&id).unwrap().rooms.len(),
            2,
            "one session, two rooms"
        );
        assert_eq!(sessions.leave(&id, &abcd), Some(part("al")));
        assert_eq!(sessions.holder(&abcd, &part("al")), None);
        sessions.end_in(&[code("EFGH")]);
        assert!(sessions.get(&id).unwrap().rooms.is_empty());
        assert_eq!(sessions.holder(&code("EFGH"), &part("bo")), None);
    }

    #[test]
    fn use_is_stored_now_and_then_and_unused_sessions_end() {
        let mut sessions = Sessions::default();
        let (old, busy) = (SessionId::random(), SessionId::random());
        sessions.join(old, &code("ABCD"), part("al"), 0);
        sessions.join(busy, &code("ABCD"), part("bo"), 0);
        assert!(!sessions.used(&busy, 500, 1000), "not yet worth a write");
        assert!(sessions.used(&busy, 1000, 1000));
        assert!(!sessions.used(&busy, 1500, 1000));
        let gone = sessions.take_unused(800);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, old);
        assert_eq!(
            sessions.holder(&code("ABCD"), &part("al")),
            None,
            "name freed"
        );
        assert!(sessions.get(&busy).is_some());
    }

    #[test]
    fn leaving_never_frees_a_name_someone_else_holds() {
        // Two lookalikes in one room, as a store from before a change to
        // the name key can hold them: the one who leaves frees nothing.
        let mut sessions = Sessions::default();
        let (first, second) = (SessionId::random(), SessionId::random());
        let abcd = code("ABCD");
        sessions.join(first, &abcd, part("al"), 0);
        sessions.join(second, &abcd, part("AL"), 0);
        assert_eq!(sessions.leave(&first, &abcd), Some(part("al")));
        assert_eq!(sessions.holder(&abcd, &part("al")), Some(second));
        // The other way round too: the one restored last leaving leaves
        // the name held by the first (who would else be unprotected, and
        // the leaver free to come back as an exact twin).
        sessions.join(first, &abcd, part("al"), 0);
        assert_eq!(sessions.leave(&second, &abcd), Some(part("AL")));
        assert_eq!(sessions.holder(&abcd, &part("al")), Some(first));
        let third = SessionId::random();
        sessions.join(third, &code("WXYZ"), part("bo"), 0);
        sessions.join(second, &code("WXYZ"), part("BO"), 0);
        assert_eq!(sessions.leave(&second, &code("WXYZ")), Some(part("BO")));
        assert_eq!(sessions.holder(&code("WXYZ"), &part("bo")), Some(third));
        assert_eq!(sessions.leave(&first, &abcd), Some(part("al")));
        assert_eq!(sessions.take_unused(1).len(), 3);
        assert_eq!(sessions.holder(&abcd, &part("al")), None);
    }
}
