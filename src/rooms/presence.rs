//! Who is in a room: its members and their open streams, and the leave
//! grace. Plain data, kept under the registry's one lock (see
//! [`super::state`]); the stream's side of it is [`super::guard`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::model::{members_frame, Name};

/// A room's members.
#[derive(Default)]
pub struct Members {
    /// Members by name, including those gone less than the leave grace.
    /// (With Redis, kept from the join and leave events read.)
    present: BTreeMap<Name, Member>,
    /// With Redis: this node's streams per member, which its heartbeat
    /// reports (alone, a member's streams are counted in `present`).
    here: HashMap<Name, usize>,
}

#[derive(Default)]
struct Member {
    streams: usize,
    /// When the last stream of this member closed, while it has none.
    gone_since: Option<Instant>,
}

/// Where a member's open streams are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// In the member itself: the last one closing starts the leave grace.
    Members,
    /// On this node, for its heartbeat (with Redis, where the grace runs).
    Here,
}

impl Members {
    pub fn of(names: Vec<Name>) -> Members {
        Members {
            present: names.into_iter().map(|n| (n, Member::default())).collect(),
            here: HashMap::new(),
        }
    }

    pub fn contains(&self, name: &Name) -> bool {
        self.present.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// Names, sorted.
    pub fn names(&self) -> Vec<Name> {
        self.present.keys().cloned().collect()
    }

    /// The `members` frame for the current list.
    pub fn frame(&self) -> Bytes {
        members_frame(self.present.keys())
    }

    /// Counts a new stream of `name`; true if this is an arrival (not a
    /// second tab, nor a return within the leave grace).
    pub fn connect(&mut self, name: &Name, tally: Tally) -> bool {
        if tally == Tally::Here {
            *self.here.entry(name.clone()).or_default() += 1;
            return false; // Redis says who arrives.
        }
        let arrived = !self.present.contains_key(name);
        let member = self.present.entry(name.clone()).or_default();
        member.streams += 1;
        member.gone_since = None;
        arrived
    }

    /// A stream of `name` closed; the last one starts the leave grace.
    pub fn disconnect(&mut self, name: &Name, tally: Tally, now: Instant) {
        match tally {
            Tally::Here => {
                if let Some(streams) = self.here.get_mut(name) {
                    *streams -= 1;
                    if *streams == 0 {
                        self.here.remove(name);
                    }
                }
            }
            Tally::Members => {
                if let Some(member) = self.present.get_mut(name) {
                    member.streams -= 1;
                    if member.streams == 0 {
                        member.gone_since = Some(now);
                    }
                }
            }
        }
    }

    /// With Redis: a join or leave read from the room's log.
    pub fn joined(&mut self, name: Name) {
        self.present.entry(name).or_default();
    }

    pub fn left(&mut self, name: &Name) {
        self.present.remove(name);
    }

    /// Takes out the members gone for at least `grace`.
    pub fn take_gone(&mut self, grace: Duration, now: Instant) -> Vec<Name> {
        let gone = self
            .present
            .extract_if(.., |_, m| m.gone_since.is_some_and(|t| now - t >= grace));
        gone.map(|(name, _)| name).collect()
    }

    /// With Redis: the members with a stream on this node.
    pub fn here(&self) -> Vec<Name> {
        self.here.keys().cloned().collect()
    }
}
