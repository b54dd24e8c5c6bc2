//! The sessions that name people, indexed both by id and by the name they
//! hold in a room (compared by [`Name::key`], so a lookalike finds the
//! holder), so who holds a name is a map lookup. Plain data, kept
//! under the registry's one lock (see [`super::state`]).

use std::collections::HashMap;

use super::admission::shrink;
use crate::model::{NameKey, RoomCode};
use crate::session::{Session, SessionId};

fn key_of(session: &Session) -> (RoomCode, NameKey) {
    (session.room.clone(), session.name.key())
}

#[derive(Default)]
pub struct Sessions {
    by_id: HashMap<SessionId, Session>,
    by_name: HashMap<(RoomCode, NameKey), SessionId>,
}

impl Sessions {
    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub fn contains(&self, id: &SessionId) -> bool {
        self.by_id.contains_key(id)
    }

    /// The session holding `session`'s name (or one that looks the same)
    /// in its room, if any.
    pub fn holder(&self, session: &Session) -> Option<SessionId> {
        self.by_name.get(&key_of(session)).copied()
    }

    /// Names `session` for `id`, in place of what `id` named before.
    pub fn insert(&mut self, id: SessionId, session: Session) {
        let key = key_of(&session);
        if let Some(old) = self.by_id.insert(id, session) {
            self.by_name.remove(&key_of(&old));
        }
        self.by_name.insert(key, id);
    }

    pub fn remove(&mut self, id: &SessionId) {
        if let Some(old) = self.by_id.remove(id) {
            self.by_name.remove(&key_of(&old));
        }
    }

    /// Ends every session in one of `rooms`.
    pub fn end_in(&mut self, rooms: &[RoomCode]) {
        if rooms.is_empty() {
            return;
        }
        self.by_id.retain(|_, s| !rooms.contains(&s.room));
        self.by_name.retain(|(room, _), _| !rooms.contains(room));
        shrink(&mut self.by_id);
        shrink(&mut self.by_name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Name;

    fn session(room: &str, name: &str) -> Session {
        Session {
            room: RoomCode::parse(room).unwrap(),
            name: Name::parse(name).unwrap(),
        }
    }

    #[test]
    fn a_name_is_found_by_room_and_name_and_freed_when_renamed() {
        let mut sessions = Sessions::default();
        let id = SessionId::random();
        sessions.insert(id, session("ABCD", "al"));
        assert_eq!(sessions.holder(&session("ABCD", "al")), Some(id));
        assert_eq!(sessions.holder(&session("ABCD", "AL")), Some(id), "case");
        assert_eq!(
            sessions.holder(&session("ABCD", "\u{430}l")),
            Some(id),
            "Cyrillic a"
        );
        assert_eq!(sessions.holder(&session("EFGH", "al")), None);
        sessions.insert(id, session("ABCD", "bo"));
        assert_eq!(sessions.holder(&session("ABCD", "al")), None);
        assert_eq!(sessions.holder(&session("ABCD", "bo")), Some(id));
        sessions.end_in(&[RoomCode::parse("ABCD").unwrap()]);
        assert!(!sessions.contains(&id));
        assert_eq!(sessions.holder(&session("ABCD", "bo")), None);
    }
}
