//! History in memory. The store (or Redis) keeps each room's history by
//! `--history`'s rule; memory keeps the newest part of it, bounded per
//! room in events and bytes and over all rooms in bytes ([`Bounds`]), and
//! says when a read must go to the store instead ([`Ring::holds_after`],
//! [`Ring::holds_newest_before`]). Plain data, kept under the registry's lock.
//!
//! `--history`'s rule, the same in memory, SQLite and Redis's scripts: a
//! room keeps its newest N messages, and beside them its newest N notices
//! (joins and leaves), so a notice never pushes a message out; when a
//! message goes, the notices before it go with it. Memory applies the rule
//! to what it holds, so what it holds is always the newest part of what
//! the store keeps.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::model::{Event, Kind, Recorded, RoomCode};

/// How much history memory holds.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// `--history`: messages kept per room (and as many notices).
    pub keep: usize,
    /// Events one room holds in memory at most.
    pub room_events: usize,
    /// Bytes one room's events take in memory at most.
    pub room_bytes: usize,
    /// Bytes all rooms' events take in memory at most.
    pub total_bytes: usize,
}

/// One room's newest events in memory, oldest first.
#[derive(Debug, Default)]
pub struct Ring {
    events: VecDeque<Arc<Recorded>>,
    /// How many of `events` are messages (the rest are notices).
    messages: usize,
    /// What `events` take in memory (see [`cost`]).
    bytes: usize,
    /// The newest id memory let go of while the store may still keep it
    /// (0 if none): a read of anything at or before it goes to the store.
    forgot: u64,
}

fn is_message(event: &Recorded) -> bool {
    event.event.kind == Kind::Message
}

/// What one event takes in memory: its parts and their headers.
pub fn cost(event: &Recorded) -> usize {
    let e = &event.event;
    let text = e.text.as_ref().map_or(0, String::capacity);
    let strings = [&e.emoji, &e.edited].map(|s| s.as_ref().map_or(0, String::capacity));
    let author = e.author.as_ref().map_or(0, |a| a.as_str().len());
    let reactions: usize = (e.reactions.iter())
        .map(|r| {
            std::mem::size_of_val(r)
                + r.emoji.capacity()
                + (r.names.iter()).map(|n| n.capacity() + 64).sum::<usize>()
        })
        .sum();
    strings.iter().sum::<usize>()
        + author
        + reactions
        + std::mem::size_of::<Recorded>()
        + 2 * std::mem::size_of::<usize>() // the Arc's counts
        + event.json.capacity()
        + event.frame.len()
        + e.room.capacity()
        + e.name.capacity()
        + e.ts.capacity()
        + text
}

impl Ring {
    /// A room loaded from the store, holding none of its events yet: every
    /// read up to `last_id` goes to the store until memory has them.
    pub fn forgetting(last_id: u64) -> Ring {
        Ring {
            forgot: last_id,
            ..Ring::default()
        }
    }

    /// Events read from the store (its newest, oldest first) taken into
    /// memory; `all` if the store holds none older.
    pub fn restore(&mut self, events: Vec<Recorded>, all: bool, bounds: &Bounds) {
        if all {
            self.forgot = 0;
        } else if let Some(first) = events.first() {
            self.forgot = first.event.id - 1;
        }
        for event in events {
            self.push(Arc::new(event));
        }
        self.trim(bounds);
    }

    /// Takes published events (in id order) into memory, then lets go of
    /// what the rule and the room's bounds no longer keep.
    /// An edit, a delete or a reaction changes the message it targets,
    /// if memory holds it (`Event::amended_by`); a delete takes the
    /// message's edits out with its words.
    pub fn keep(&mut self, events: &[Arc<Recorded>], bounds: &Bounds) {
        for event in events {
            if event.event.kind.amends() {
                self.amend(&event.event);
            }
            self.push(event.clone());
        }
        self.trim(bounds);
    }

    fn amend(&mut self, change: &Event) {
        if let Some(target) = change.target.and_then(|id| self.index_of(id)) {
            let old = &self.events[target];
            let new = Arc::new(Recorded::new(old.event.amended_by(change)));
            self.bytes = self.bytes - cost(old) + cost(&new);
            self.events[target] = new;
        }
        // Its changes go whether or not memory still holds the message
        // (an old one, read from the store): an edit holds its words.
        if change.kind == Kind::Delete {
            let gone: Vec<usize> = (self.events.iter().enumerate())
                .filter(|(_, e)| e.event.goes_with(change))
                .map(|(i, _)| i)
                .collect();
            for i in gone.into_iter().rev() {
                if let Some(event) = self.events.remove(i) {
                    self.take(&event);
                }
            }
        }
    }

    /// The message `id` as memory holds it: `None` if memory does not hold
    /// it, `Some(None)` if memory would hold it but it is not there (it
    /// never was a message, or went by the rule).
    pub fn message(&self, id: u64) -> Option<Option<&Arc<Recorded>>> {
        if id <= self.forgot {
            return None;
        }
        let held = self.index_of(id).map(|i| &self.events[i]);
        Some(held.filter(|e| e.event.kind == Kind::Message))
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        (self.events).binary_search_by_key(&id, |e| e.event.id).ok()
    }

    fn push(&mut self, event: Arc<Recorded>) {
        self.bytes += cost(&event);
        self.messages += usize::from(is_message(&event));
        self.events.push_back(event);
    }

    fn take(&mut self, event: &Recorded) {
        self.bytes -= cost(event);
        self.messages -= usize::from(is_message(event));
    }

    fn trim(&mut self, bounds: &Bounds) {
        // The rule: the oldest message goes, and the notices before it.
        while self.messages > bounds.keep {
            while let Some(event) = self.events.pop_front() {
                self.take(&event);
                if is_message(&event) {
                    break;
                }
            }
        }
        while self.events.len() - self.messages > bounds.keep {
            let oldest = self.events.iter().position(|e| !is_message(e));
            if let Some(event) = oldest.and_then(|at| self.events.remove(at)) {
                self.take(&event);
            }
        }
        // Memory's own bounds: the store still has what goes here.
        while self.events.len() > bounds.room_events || self.bytes > bounds.room_bytes {
            self.forget_oldest();
        }
    }

    /// Lets go of the oldest event held (the store keeps it); the bytes
    /// it took.
    pub fn forget_oldest(&mut self) -> usize {
        let Some(event) = self.events.pop_front() else {
            return 0;
        };
        self.take(&event);
        self.forgot = self.forgot.max(event.event.id);
        cost(&event)
    }

    /// Whether memory holds every kept event after `since`.
    pub fn holds_after(&self, since: u64) -> bool {
        since >= self.forgot
    }

    /// Whether memory holds the newest `limit` kept events below the id
    /// `before`.
    pub fn holds_newest_before(&self, before: u64, limit: usize) -> bool {
        self.forgot == 0 || self.events.partition_point(|e| e.event.id < before) >= limit
    }

    /// The newest `limit` events held below the id `before`, oldest first.
    pub fn newest_before(&self, before: u64, limit: usize) -> impl Iterator<Item = &Arc<Recorded>> {
        let end = self.events.partition_point(|e| e.event.id < before);
        self.events.range(end.saturating_sub(limit)..end)
    }

    /// Events held with an id above `since`.
    pub fn after(&self, since: u64) -> impl Iterator<Item = &Arc<Recorded>> {
        let start = self.events.partition_point(|e| e.event.id <= since);
        self.events.range(start..)
    }

    /// Whether the event `id` is held.
    fn holds(&self, id: u64) -> bool {
        self.index_of(id).is_some()
    }

    /// The oldest id held.
    pub fn first_id(&self) -> Option<u64> {
        self.events.front().map(|e| e.event.id)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Where events taken into memory stand among those held.
#[derive(Debug, Clone, Copy)]
pub enum Age {
    Newest,
    Oldest,
}

/// All rooms' history in memory, bounded in bytes: past the bound the
/// oldest event any room holds goes first (so quiet rooms let go before
/// busy ones), and reads of it go to the store.
#[derive(Debug, Default)]
pub struct Budget {
    /// What every room's ring takes.
    pub bytes: usize,
    /// Every event taken into memory, in the order it came, while it may
    /// still be held: which room holds the oldest.
    order: VecDeque<(RoomCode, u64)>,
    /// How long `order` was after it was last rid of events gone.
    tidied: usize,
}

impl Budget {
    /// `code`'s ring took the events `ids` (in id order), and went from
    /// `before` bytes to `after`; then the oldest events held anywhere go
    /// until all rooms fit in `bounds.total_bytes`. The events are the
    /// newest held, or with `Age::Oldest` (rooms restored at start, the
    /// most recently active first) older than any held. False if any had
    /// to go.
    pub fn took(
        &mut self,
        code: &RoomCode,
        ids: impl DoubleEndedIterator<Item = u64>,
        (before, after): (usize, usize),
        age: Age,
        rings: &mut HashMap<RoomCode, impl AsMut<Ring>>,
        bounds: &Bounds,
    ) -> bool {
        self.bytes = self.bytes + after - before;
        let fitted = self.bytes <= bounds.total_bytes;
        match age {
            Age::Newest => (self.order).extend(ids.map(|id| (code.clone(), id))),
            Age::Oldest => {
                for id in ids.rev() {
                    self.order.push_front((code.clone(), id));
                }
            }
        }
        while self.bytes > bounds.total_bytes {
            let Some((code, id)) = self.order.pop_front() else {
                break;
            };
            if let Some(ring) = rings.get_mut(&code).map(AsMut::as_mut) {
                if ring.first_id() == Some(id) {
                    self.bytes -= ring.forget_oldest();
                }
            }
        }
        // Entries of events that went some other way (the rule, a room's
        // own bounds, a room that ended) are dropped now and then.
        if self.order.len() > 2 * self.tidied + 4096 {
            self.order.retain(|(code, id)| {
                let ring = rings.get_mut(code).map(AsMut::as_mut);
                ring.is_some_and(|ring| ring.holds(*id))
            });
            self.tidied = self.order.len();
        }
        fitted
    }

    /// A room that held `bytes` of history ended.
    pub fn ended(&mut self, bytes: usize) {
        self.bytes -= bytes;
    }
}

#[cfg(test)]
mod tests;
