//! Edits, deletes and reactions, locally. The message is read as it is
//! now (memory, else the store, with the changes queued and not yet
//! published laid over it: `Room::amending`), checked, and the change
//! gets its id and joins the writer's queue in one hold of the lock, as
//! a post does; memory changes the message when the change is published
//! (`Ring::keep`), the store in the change's transaction.

use std::sync::Arc;
use std::time::Instant;

use super::{enqueue_awaited, outcome, read, speaker, took, Local, LOAD_ATTEMPTS};
use crate::model::amend::Amend;
use crate::model::{Event, Kind, Recorded};
use crate::rooms::backend::{Amended, Amendment};
use crate::rooms::error::RoomError;
use crate::store::writer::Query;
use crate::store::{now_ms, Change, Range};

impl Local {
    pub(super) async fn amend_message(&self, a: Amendment<'_>) -> Result<Amended, RoomError> {
        self.loaded(a.code).await?;
        // Charged before the checks, as with Redis (whose script makes
        // them): a refused change costs as much as one made, so probing
        // for others' messages is as slow as posting.
        self.rooms.lock().admit_post(a.code, a.visitor)?;
        for _ in 0..LOAD_ATTEMPTS {
            // The message as memory holds it, or as the store does.
            let step = {
                let mut state = self.rooms.lock();
                let room = state.room(a.code)?;
                if a.target == 0 || a.target > room.published_id {
                    return Err(RoomError::NoSuchMessage(a.target));
                }
                if let Some(held) = room.history.message(a.target) {
                    let held = held.map(|m| m.event.clone());
                    Err(self.amend_held(&mut state, a, held))
                } else {
                    let range = Range {
                        after: Some(a.target - 1),
                        before: a.target + 1,
                        limit: 1,
                    };
                    self.rooms.metrics.read_from_store();
                    let read = read(&state, a.code, Query::Range(range))?;
                    Ok((read, (state.unloads, room.amendments)))
                }
            };
            let (stored, seen) = match step {
                Ok(reading) => reading,
                Err(queued) => return queued.await,
            };
            let stored = stored.await?;
            let message = stored.into_iter().find(|e| e.event.id == a.target);
            let message = message
                .map(|m| m.event.clone())
                .filter(|m| m.kind == Kind::Message);
            let queued = {
                let mut state = self.rooms.lock();
                let room = state.room(a.code)?;
                if (state.unloads, room.amendments) != seen {
                    continue; // another change was queued meanwhile: read again
                }
                self.amend_held(&mut state, a, message)
            };
            return queued.await;
        }
        Err(RoomError::Busy)
    }

    /// Checks and queues the change of `message` (as last stored, if it
    /// is one), with the lock held; then awaits its outcome without it.
    fn amend_held<'s>(
        &'s self,
        state: &mut crate::rooms::state::State,
        a: Amendment<'_>,
        message: Option<Event>,
    ) -> impl std::future::Future<Output = Result<Amended, RoomError>> + 's {
        let queued = self.queue_amendment(state, a, message);
        let rooms = self.rooms.clone();
        let code = a.code.clone();
        async move {
            let (amended, stored) = queued?;
            let Some(stored) = stored else {
                return Ok(amended); // nothing to change
            };
            let outcome = outcome(stored).await;
            if outcome.is_err() {
                // Never published: the next change must not see it.
                let id = amended.change.as_ref().map(|c| c.event.id);
                if let Ok(room) = rooms.lock().room_mut(&code) {
                    room.amending.retain(|e| Some(e.event.id) != id);
                }
            }
            outcome.map(|()| amended)
        }
    }

    fn queue_amendment(
        &self,
        state: &mut crate::rooms::state::State,
        a: Amendment<'_>,
        message: Option<Event>,
    ) -> Result<(Amended, Option<super::Stored>), RoomError> {
        let name = speaker(state, a.code, a.session)?;
        let room = state.room(a.code)?;
        let mut message = message.ok_or(RoomError::NoSuchMessage(a.target))?;
        for queued in room
            .amending
            .iter()
            .filter(|e| e.event.target == Some(a.target))
        {
            message = message.amended_by(&queued.event);
        }
        let author = a.session.author();
        let on =
            (message.may_amend(&author, a.amend)).map_err(|r| RoomError::refused(a.target, r))?;
        if matches!(a.amend, Amend::Edit(text) if message.text.as_deref() == Some(text.as_str())) {
            let message = Arc::new(Recorded::new(message));
            return Ok((
                Amended {
                    change: None,
                    message,
                },
                None,
            ));
        }
        state.check_open()?;
        let room = state.room(a.code)?;
        let id = room.last_id + 1;
        let change = Event::amendment(id, a.code, a.target, (&name, &author), a.amend, on);
        let message = Arc::new(Recorded::new(message.amended_by(&change)));
        let change = Arc::new(Recorded::new(change));
        let append = Change::Append {
            code: a.code.clone(),
            event: change.clone(),
            key: None,
            at_ms: now_ms(),
        };
        let stored = enqueue_awaited(state, append)?;
        took(state, a.code, Some(id));
        let room = state.room_mut(a.code)?;
        room.amending.push(change.clone());
        room.amendments += 1;
        room.touched(Instant::now());
        let amended = Amended {
            change: Some(change),
            message,
        };
        Ok((amended, Some(stored)))
    }
}
