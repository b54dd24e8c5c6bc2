//! The sessions that name people, indexed both by id and by the name they
//! hold in a room, so who holds a name is a map lookup. Plain data, kept
//! under the registry's one lock (see [`super::state`]).

use std::collections::HashMap;

use super::admission::shrink;
use crate::model::{Name, RoomCode};
use crate::session::{Session, SessionId};

#[derive(Default)]
pub struct Sessions {
    by_id: HashMap<SessionId, Session>,
    by_name: HashMap<(RoomCode, Name), SessionId>,
}

impl Sessions {
    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub fn contains(&self, id: &SessionId) -> bool {
        self.by_id.contains_key(id)
    }

    /// The session holding `session`'s name in its room, if any.
    pub fn holder(&self, session: &Session) -> Option<SessionId> {
        let key = (session.room.clone(), session.name.clone());
        self.by_name.get(&key).copied()
    }

    /// Names `session` for `id`, in place of what `id` named before.
    pub fn insert(&mut self, id: SessionId, session: Session) {
        let key = (session.room.clone(), session.name.clone());
        if let Some(old) = self.by_id.insert(id, session) {
            self.by_name.remove(&(old.room, old.name));
        }
        self.by_name.insert(key, id);
    }

    pub fn remove(&mut self, id: &SessionId) {
        if let Some(old) = self.by_id.remove(id) {
            self.by_name.remove(&(old.room, old.name));
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
        assert_eq!(sessions.holder(&session("EFGH", "al")), None);
        sessions.insert(id, session("ABCD", "bo"));
        assert_eq!(sessions.holder(&session("ABCD", "al")), None);
        assert_eq!(sessions.holder(&session("ABCD", "bo")), Some(id));
        sessions.end_in(&[RoomCode::parse("ABCD").unwrap()]);
        assert!(!sessions.contains(&id));
        assert_eq!(sessions.holder(&session("ABCD", "bo")), None);
    }
}
