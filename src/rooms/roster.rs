//! Who is in a room: its participants by name, members and watchers, each
//! with their session, so that whether they are here now can be told from
//! the room's open streams. Plain data, kept under the registry's one lock
//! (see [`super::state`]).

use std::collections::{BTreeMap, HashMap};

use crate::model::{Name, Names, Present};
use crate::session::Participation;

/// A room's participants, sorted by name.
#[derive(Debug, Default)]
pub struct Roster {
    people: BTreeMap<Name, Person>,
}

#[derive(Debug)]
struct Person {
    watch: bool,
    /// Their session's number (see [`crate::session::SessionId::number`]).
    session: u128,
}

impl Roster {
    pub fn add(&mut self, part: &Participation, session: u128) {
        let person = Person {
            watch: part.watch,
            session,
        };
        self.people.insert(part.name.clone(), person);
    }

    pub fn remove(&mut self, name: &Name) {
        self.people.remove(name);
    }

    /// Who is in the room; online if their session has a stream open here
    /// (`readers`: open streams by session number).
    pub fn names(&self, readers: &HashMap<u128, usize>) -> Names {
        let mut names = Names::default();
        for (name, person) in &self.people {
            let list = if person.watch {
                &mut names.watchers
            } else {
                &mut names.members
            };
            list.push(Present {
                name: name.clone(),
                online: readers.contains_key(&person.session),
            });
        }
        names
    }

    /// Every name held here.
    pub fn held(&self) -> impl Iterator<Item = &Name> {
        self.people.keys()
    }
}
