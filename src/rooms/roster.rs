//! Who is in a room: its participants by name, members and watchers.
//! Plain data, kept under the registry's one lock (see [`super::state`]).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::model::{members_frame, Name, Names, RoomCode};
use crate::session::Participation;

/// A room's participants, sorted by name; `true` for a watcher.
#[derive(Debug, Default)]
pub struct Roster {
    people: BTreeMap<Name, bool>,
}

impl Roster {
    pub fn add(&mut self, part: &Participation) {
        self.people.insert(part.name.clone(), part.watch);
    }

    pub fn remove(&mut self, name: &Name) {
        self.people.remove(name);
    }

    pub fn names(&self) -> Names {
        let mut names = Names::default();
        for (name, &watch) in &self.people {
            let list = if watch {
                &mut names.watchers
            } else {
                &mut names.members
            };
            list.push(name.clone());
        }
        names
    }

    /// The `members` frame for the current list of `room`.
    pub fn frame(&self, room: &RoomCode) -> Bytes {
        members_frame(room, &self.names())
    }
}
